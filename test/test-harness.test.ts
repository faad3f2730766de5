import test from 'ava';
import { bufferCount, concatMap, map, throwError, timer } from 'rxjs';
import {
  compose,
  downstream,
  type Middleware,
  RedirectError,
  splits,
  type TargetAddress,
  testMiddleware,
  upstream,
} from '../lib/index';
import { bypass } from '../middleware/index';
import { throwsCode, throwsCodeAsync } from './helpers/expect';
import { collect, dial, listenTcp, nextClose, startRedirect } from './helpers/net';

test('runs chains in the server order: upstream in array order, downstream reversed', async (t) => {
  const tag =
    (name: string): Middleware =>
    () => ({
      upstream: map((c: Buffer) => Buffer.concat([c, Buffer.from(name)])),
      downstream: map((c: Buffer) => Buffer.concat([c, Buffer.from(name)])),
    });
  const r = await testMiddleware([tag('1'), tag('2'), compose(tag('3'))], { upstream: ['u'], downstream: ['d'] });
  t.is(r.upstreamBytes.toString(), 'u123');
  t.is(r.downstreamBytes.toString(), 'd321');
  t.is(r.ended, 'complete');
  t.is(r.error, undefined);
  t.true(r.ctx.signal.aborted);
});

test('passes bytes through a direction without middleware and keeps chunks apart', async (t) => {
  const r = await testMiddleware(upstream(map((c: Buffer) => c)), { upstream: ['a', 'b'], downstream: ['x', 'y'] });
  t.deepEqual(
    r.upstream.map((b) => b.toString()),
    ['a', 'b'],
  );
  t.deepEqual(
    r.downstream.map((b) => b.toString()),
    ['x', 'y'],
  );
});

test('waits for asynchronous chains and flushes what they hold at the end', async (t) => {
  const r = await testMiddleware(
    [
      upstream(concatMap((c: Buffer) => timer(5).pipe(map(() => c)))),
      upstream((s) =>
        s.pipe(
          bufferCount(2),
          map((bs: Buffer[]) => Buffer.concat(bs)),
        ),
      ),
    ],
    { upstream: ['a', 'b', 'c'] },
  );
  t.deepEqual(
    r.upstream.map((b) => b.toString()),
    ['ab', 'c'],
  );
  t.is(r.ended, 'complete');
});

test('an error is coded the way the server reports it and stops the other direction', async (t) => {
  const r = await testMiddleware(
    [upstream(concatMap(() => throwError(() => new Error('boom')))), downstream(map((c: Buffer) => c))],
    { upstream: ['a'], downstream: ['x'] },
  );
  t.is(r.ended, 'error');
  t.true(r.error instanceof RedirectError);
  t.is(r.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
  t.regex(r.error?.message ?? '', /boom/);
  t.is(r.downstream.length, 0);
  const coded = await testMiddleware(
    upstream(concatMap(() => throwError(() => new RedirectError('ERR_REDIRECT_DENIED', 'no')))),
    { upstream: ['a'] },
  );
  t.is(coded.error?.code, 'ERR_REDIRECT_DENIED');
});

test('a non-Buffer output, a throwing middleware and a bad return value are errors', async (t) => {
  const r1 = await testMiddleware(upstream(map(() => 'text' as unknown as Buffer)), { upstream: ['a'] });
  t.is(r1.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
  const r2 = await testMiddleware(() => {
    throw new Error('at build');
  });
  t.is(r2.ended, 'error');
  t.regex(r2.error?.message ?? '', /at build/);
  const r3 = await testMiddleware((() => 42) as unknown as Middleware);
  t.is(r3.ended, 'error');
});

test('record, state and context reach the middleware; an open direction reports open', async (t) => {
  let seen: unknown;
  const m: Middleware = (ctx) => {
    seen = { dest: ctx.record.destination.port, id: ctx.id, proxy: ctx.proxyId, pre: ctx.state.get('pre') };
    ctx.state.set('post', 1);
  };
  const r = await testMiddleware(m, {
    record: { destination: { address: '10.0.0.1', port: 443 } },
    state: [['pre', 'x']],
    id: 7,
    proxyId: 'p',
    endUpstream: false,
    upstream: ['a'],
  });
  t.deepEqual(seen, { dest: 443, id: 7, proxy: 'p', pre: 'x' });
  t.is(r.state.get('post'), 1);
  t.is(r.ended, 'open');
  t.is(r.upstreamBytes.toString(), 'a');
});

test('the signal aborts at the end, so middleware timers are cleared', async (t) => {
  let aborted = false;
  const m: Middleware = (ctx) => {
    ctx.signal.addEventListener('abort', () => {
      aborted = true;
    });
    return { downstream: map((c: Buffer) => c) };
  };
  await testMiddleware(m);
  t.true(aborted);
});

test('splits() gives every cut', (t) => {
  t.deepEqual(
    splits('abc').map((p) => p.map((b) => b.toString())),
    [['abc'], ['a', 'bc'], ['ab', 'c']],
  );
  t.is(splits('abcd', 3).length, 1 + 3 + 3);
  t.notThrows(() => downstream(map((c: Buffer) => c)));
});

/** A seeded generator (mulberry32), so a failing run can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** `total` pseudo-random bytes cut into pieces of 1 byte to `maxPiece`. */
function randomPieces(random: () => number, total: number, maxPiece: number): { data: Buffer; pieces: Buffer[] } {
  const data = Buffer.alloc(total);
  for (let i = 0; i < total; i++) data[i] = Math.floor(random() * 256);
  const pieces: Buffer[] = [];
  for (let at = 0; at < total; ) {
    const size = Math.min(total - at, 1 + Math.floor(random() * maxPiece));
    pieces.push(data.subarray(at, at + size));
    at += size;
  }
  return { data, pieces };
}

const identity: Middleware = both((c: Buffer) => c);

function both(fn: (c: Buffer) => Buffer): Middleware {
  return () => ({ upstream: map(fn), downstream: map(fn) });
}

test('the close summary: a graceful flow ends client-end with its byte counts; an open one is destroyed', async (t) => {
  const r = await testMiddleware(identity, { upstream: ['ab', 'c'], downstream: ['xyz'] });
  t.is(r.ended, 'complete');
  t.is(r.summary.reason, 'client-end');
  t.is(r.summary.error, undefined);
  t.like(r.summary.upstream, { bytesRead: 3, reads: 2, bytesWritten: 3, pauses: 0, path: 'js' });
  t.like(r.summary.downstream, { bytesRead: 3, bytesWritten: 3, pauses: 0, path: 'js' });
  t.is(r.summary.path, 'js');
  t.is(r.ctx.signal.reason, 'client-end');
  const first = await testMiddleware(identity, {
    upstream: ['a'],
    downstream: ['b'],
    endUpstream: false,
    timeoutMs: 0,
  });
  t.is(first.ended, 'open');
  t.is(first.summary.reason, 'destroyed');
  t.is(first.upstreamBytes.toString(), 'a');
  t.is(first.downstreamBytes.toString(), 'b');
});

test('backpressure: a slow reader makes the pump stop reading at the high-water mark, either way', async (t) => {
  const hwm = 16 * 1024;
  const { data, pieces } = randomPieces(prng(1), 256 * 1024, 4096);
  for (const chain of [[identity], []] as Middleware[][]) {
    for (const direction of ['upstream', 'downstream'] as const) {
      const r = await testMiddleware(chain, {
        [direction]: pieces,
        highWaterMark: hwm,
        readPace: { [direction]: { bytes: 4096 } },
      });
      const note = `${chain.length} middleware, ${direction}`;
      const summary = r.summary[direction];
      t.is(r.ended, 'complete', note);
      t.true((direction === 'upstream' ? r.upstreamBytes : r.downstreamBytes).equals(data), note);
      t.true(summary.pauses >= 1, `${note}: pauses ${summary.pauses}`);
      // Reading stops once a read brings the held bytes to the mark: at most one read over it.
      t.true(summary.peakBuffered >= hwm, note);
      t.true(summary.peakBuffered < hwm + 4096, `${note}: peak ${summary.peakBuffered}`);
      t.is(summary.bytesWritten, data.length, note);
    }
  }
  const quick = await testMiddleware(identity, { upstream: pieces.slice(0, 3), highWaterMark: hwm });
  t.is(quick.summary.upstream.pauses, 0);
});

test('bytes keep their order and integrity through sync and async chains with slow readers', async (t) => {
  const random = prng(42);
  const up = randomPieces(random, 2 * 1024 * 1024, 64 * 1024);
  const down = randomPieces(random, 2 * 1024 * 1024, 64 * 1024);
  const flip = (c: Buffer) => Buffer.from(c.map((b) => b ^ 0x5a));
  const r = await testMiddleware(
    [
      upstream(concatMap((c: Buffer) => timer(0).pipe(map(() => c)))),
      downstream(map(flip)),
      both((c) => Buffer.from(c)),
    ],
    {
      upstream: up.pieces,
      downstream: down.pieces,
      highWaterMark: 64 * 1024,
      readPace: { upstream: { bytes: 16 * 1024 }, downstream: { bytes: 24 * 1024 } },
    },
  );
  t.is(r.ended, 'complete');
  t.true(r.upstreamBytes.equals(up.data));
  t.true(flip(r.downstreamBytes).equals(down.data));
  t.like(r.summary.upstream, { bytesRead: up.data.length, bytesWritten: up.data.length });
  t.like(r.summary.downstream, { bytesRead: down.data.length, bytesWritten: down.data.length });
});

test('bypass: the rest of a direction moves raw, past the chain; at build time nothing enters it', async (t) => {
  const upper = (c: Buffer) => Buffer.from(c.toString().toUpperCase());
  const afterFirst: Middleware = (ctx) => ({
    upstream: map((c: Buffer) => {
      ctx.bypass('upstream');
      return upper(c);
    }),
    downstream: map(upper),
  });
  const r = await testMiddleware(afterFirst, { upstream: ['ab', 'cd', 'ef'], downstream: ['xy', 'z'] });
  t.is(r.ended, 'complete');
  t.is(r.upstreamBytes.toString(), 'ABcdef');
  t.is(r.downstreamBytes.toString(), 'XYZ');
  t.like(r.summary.upstream, { bytesRead: 6, bytesWritten: 6, path: 'js' });

  let seen = 0;
  const atBuild: Middleware = (ctx) => {
    ctx.bypass();
    return both((c) => {
      seen += c.length;
      return upper(c);
    })(ctx);
  };
  const raw = await testMiddleware(atBuild, { upstream: ['ab'], downstream: ['cd'] });
  t.is(raw.upstreamBytes.toString(), 'ab');
  t.is(raw.downstreamBytes.toString(), 'cd');
  t.is(seen, 0);

  const sideways = await testMiddleware((ctx) => {
    throwsCode(t, () => ctx.bypass('sideways' as never), 'ERR_REDIRECT_INVALID_OPTION');
  });
  t.is(sideways.ended, 'complete');
});

/** Defers the connect and releases it on the first client chunk with `target`. */
function releaseOnData(target: unknown): Middleware {
  return (ctx) => {
    const release = ctx.deferConnect();
    return {
      upstream: map((c: Buffer) => {
        release(target as TargetAddress);
        return c;
      }),
    };
  };
}

test('deferConnect: a bad release target ends the flow with middleware-error before any connect', async (t) => {
  const r = await testMiddleware(releaseOnData({ host: '', port: 80 }), { upstream: ['hello'], downstream: ['no'] });
  t.is(r.ended, 'error');
  t.is(r.error?.code, 'ERR_REDIRECT_INVALID_OPTION');
  t.regex(r.error?.message ?? '', /release\(target\)/);
  t.is(r.summary.reason, 'middleware-error');
  t.is(r.summary.target, undefined);
  t.is(r.upstreamBytes.length, 0);
  t.is(r.downstreamBytes.length, 0);
  t.is(r.connect, 'pending');
  t.is(r.ctx.signal.reason, r.error);
});

test('deferConnect: bytes sent while deferred are held by flow control and delivered in order once released', async (t) => {
  const hwm = 8 * 1024;
  const { data, pieces } = randomPieces(prng(7), 128 * 1024, 2048);
  // Releases once the chain has passed `after` bytes: the pump stops reading at the mark while
  // the connect is held, so a middleware that waits for more than the mark waits for ever.
  const releaseAfter =
    (after: number): Middleware =>
    (ctx) => {
      const release = ctx.deferConnect();
      let held = 0;
      return {
        upstream: map((c: Buffer) => {
          held += c.length;
          if (held >= after) release({ host: '10.0.0.9', port: 8443 });
          return c;
        }),
      };
    };
  const r = await testMiddleware(releaseAfter(hwm), { upstream: pieces, highWaterMark: hwm });
  t.is(r.ended, 'complete');
  t.is(r.connect, 'released');
  t.deepEqual(r.target, { host: '10.0.0.9', port: 8443 });
  t.deepEqual(r.summary.target, { host: '10.0.0.9', port: 8443 });
  t.true(r.upstreamBytes.equals(data));
  t.true(r.summary.upstream.pauses >= 1);

  const stalled = await testMiddleware(releaseAfter(2 * hwm), { upstream: pieces, highWaterMark: hwm, timeoutMs: 50 });
  t.is(stalled.ended, 'open');
  t.is(stalled.connect, 'pending');
  t.is(stalled.summary.upstream.pauses, 1);
  t.true(stalled.summary.upstream.bytesRead >= hwm);
  t.true(stalled.summary.upstream.bytesRead < hwm + 2048);
  t.is(stalled.upstreamBytes.length, 0);

  const never = await testMiddleware((ctx) => void ctx.deferConnect(), { upstream: ['x'], connectTimeoutMs: 20 });
  t.is(never.summary.reason, 'connect-timeout');
  t.is(never.error?.code, 'ERR_REDIRECT_CONNECT_TIMEOUT');
  t.is(never.connect, 'pending');
  t.is(never.upstreamBytes.length, 0);
  t.is(never.summary.upstream.bytesRead, 1);
});

test('a throwing middleware gives middleware-error; a fault code gives its own reason', async (t) => {
  const atBuild = await testMiddleware(() => {
    throw new Error('at build');
  });
  t.is(atBuild.summary.reason, 'middleware-error');
  t.is(atBuild.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
  const inChain = await testMiddleware(
    upstream(
      map(() => {
        throw new Error('in chain');
      }),
    ),
    { upstream: ['a'], downstream: ['b'] },
  );
  t.is(inChain.ended, 'error');
  t.is(inChain.summary.reason, 'middleware-error');
  t.is(inChain.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
  t.regex(inChain.error?.message ?? '', /in chain/);
  const reset = await testMiddleware(
    upstream(concatMap(() => throwError(() => new RedirectError('ERR_REDIRECT_FAULT_RESET', 'toxic')))),
    { upstream: ['a'] },
  );
  t.is(reset.summary.reason, 'fault-reset');
});

test('bad harness options are coded errors', async (t) => {
  await throwsCodeAsync(t, testMiddleware(identity, { highWaterMark: 0 }), 'ERR_REDIRECT_INVALID_OPTION');
  await throwsCodeAsync(
    t,
    testMiddleware(identity, { readPace: { upstream: { bytes: -1 } } }),
    'ERR_REDIRECT_INVALID_OPTION',
  );
  await throwsCodeAsync(t, testMiddleware(identity, { connectTimeoutMs: 1.5 }), 'ERR_REDIRECT_INVALID_OPTION');
  // Each of these used to run anyway: a NaN or negative wait, a state that threw a TypeError, an id
  // or proxy id no server would accept, an end flag read as truthy, a chunk that was not bytes.
  const bad: Record<string, unknown>[] = [
    { timeoutMs: -1 },
    { timeoutMs: Number.NaN },
    { timeoutMs: 2 ** 31 },
    { gapMs: 0.5 },
    { gapMs: '10' },
    { state: 42 },
    { state: 'ab' },
    {
      state: [
        ['ok', 1],
        [7, 2],
      ],
    },
    { id: -1 },
    { id: 1.5 },
    { proxyId: '' },
    { proxyId: 'has space' },
    { endUpstream: 'no' },
    { upstream: 'abc' },
    { downstream: [1, 2] },
  ];
  for (const options of bad) {
    await throwsCodeAsync(t, testMiddleware(identity, options as never), 'ERR_REDIRECT_INVALID_OPTION');
  }
  const fine = await testMiddleware(identity, {
    state: new Map([['k', 1]]),
    id: 0,
    proxyId: 'edge-1',
    upstream: ['x'],
  });
  t.is(fine.state.get('k'), 1);
  t.is(fine.ctx.id, 0);
});

test('two drivers: one chain over real sockets and in the harness gives the same bytes and summary', async (t) => {
  const upper = (c: Buffer) => Buffer.from(c.toString('latin1').toUpperCase(), 'latin1');
  // The downstream chain is bypassed at build: those bytes must come out raw on both drivers.
  const chain: Middleware[] = [bypass({ direction: 'downstream' }), both(upper)];
  const destination = await listenTcp(t, (s) => {
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    s.on('end', () => {
      received = Buffer.concat(got).toString();
      s.end('pong and more');
    });
  });
  let received = '';
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: destination.port },
    middleware: chain,
    zeroCopy: 'off',
  });
  const closed = nextClose(server);
  const client = await dial(port);
  const answer = collect(client);
  client.end('ping, then FIN');
  const [onSockets, reply] = await Promise.all([closed, answer]);

  const inMemory = await testMiddleware(chain, { upstream: ['ping, then FIN'], downstream: ['pong and more'] });
  t.is(received, 'PING, THEN FIN');
  t.is(inMemory.upstreamBytes.toString(), received);
  t.is(reply.data?.toString(), 'pong and more');
  t.is(inMemory.downstreamBytes.toString(), 'pong and more');
  for (const summary of [onSockets, inMemory.summary]) {
    t.is(summary.reason, 'client-end');
    t.is(summary.error, undefined);
    t.is(summary.path, 'js');
  }
  for (const direction of ['upstream', 'downstream'] as const) {
    const { bytesRead, bytesWritten, pauses } = onSockets[direction];
    t.like(inMemory.summary[direction], { bytesRead, bytesWritten, pauses }, direction);
  }
});
