import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { bufferCount, concatMap, filter, map, scan } from 'rxjs';
import { type CloseSummary, compose, downstream, type Middleware, upstream } from '../lib/index';
import { unansweringListener } from './helpers/silent';
import {
  collect,
  dial,
  dialRaw,
  drain,
  echoUpstream,
  listenTcp,
  closedAtLeast,
  nextClose,
  nextConnection,
  readAtLeast,
  sendRandom,
  sha256,
  startRedirect,
} from './helpers/net';
import { MODES, requireEngineUnderCi } from './helpers/modes';

const MiB = 1024 * 1024;

requireEngineUnderCi();

for (const mode of MODES)
  test(`relays bytes both ways and reports the record and a close summary [${mode.name}]`, async (t) => {
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, { ...mode.options, resolve: { host: '127.0.0.1', port: up.port } });
    const seen = new Promise<import('../lib/index').Connection>((r) => server.once('connection', r));
    const dialedAt = performance.now();
    const client = await dial(port);
    const conn = await seen;
    t.is(conn.record.mechanism, 'static');
    t.deepEqual(conn.record.destination, { address: '127.0.0.1', port: up.port, family: 'IPv4' });
    t.is(conn.record.source.port, client.localPort!);
    t.deepEqual(conn.record.chain, []);
    t.true(Object.isFrozen(conn.record));
    const closed = new Promise<CloseSummary>((r) => conn.once('close', r));
    const got = collect(client);
    client.end('hello');
    t.is((await got).data?.toString(), 'hello');
    const summary = await closed;
    const lifetime = performance.now() - dialedAt;
    t.is(summary.reason, 'client-end');
    t.is(summary.upstream.bytesRead, 5);
    t.is(summary.downstream.bytesWritten, 5);
    t.is(summary.path, mode.path);
    // Measured by the proxy from accept to close: inside the client's own view of the flow.
    t.true(summary.durationMs > 0 && summary.durationMs <= lifetime, `${summary.durationMs} of ${lifetime} ms`);
    const stats = server.stats();
    t.is(stats.total.connections, 1);
    t.is(stats.total.bytesUpstream, 5);
    t.is(stats.reasons['client-end'], 1);
    t.is(stats.live.connections, 0);
  });

test('sha256-checked multi-MiB transfer both ways through a chain with async middleware', async (t) => {
  const up = await echoUpstream(t);
  const delayEveryChunk: Middleware = () => ({
    // The delays make the chain asynchronous (the subject here), not synchronise the test.
    upstream: concatMap(async (c: Buffer) => {
      await sleep(0);
      return c;
    }),
    downstream: concatMap(async (c: Buffer) => {
      if (c.length % 3 === 0) await sleep(1);
      return c;
    }),
  });
  const splitter = upstream(
    concatMap((c: Buffer) => (c.length > 10 ? [c.subarray(0, 7), c.subarray(7)] : [c])), // more chunks out than in
  );
  const merger = downstream(
    // fewer chunks out than in
    (source) =>
      source.pipe(
        bufferCount(3),
        map((bufs: Buffer[]) => Buffer.concat(bufs)),
      ),
  );
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [delayEveryChunk, splitter, merger],
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = drain(client);
  const sent = await sendRandom(client, 24 * MiB, 61_000);
  const result = await got;
  t.is(result.bytes, 24 * MiB);
  t.is(result.sha256, sent);
  const s = await closed;
  t.is(s.reason, 'client-end');
  t.is(s.upstream.bytesRead, 24 * MiB);
  t.is(s.downstream.bytesWritten, 24 * MiB);
});

test('plain RxJS operators transform bytes in each direction, upstream in order, downstream reversed', async (t) => {
  const up = await listenTcp(t, (s) => {
    s.on('data', (d) => s.write(`[${d.toString()}]`));
    s.on('end', () => s.end());
  });
  const order: string[] = [];
  const tagged =
    (name: string): Middleware =>
    () => ({
      upstream: map((c: Buffer) => Buffer.from(`${c.toString()}${name}`)),
      downstream: map((c: Buffer) => {
        order.push(name);
        return Buffer.from(`${c.toString()}${name}`);
      }),
    });
  const { port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [compose(tagged('a'), tagged('b')), tagged('c')],
  });
  const client = await dial(port);
  const got = collect(client);
  // 'x' makes its round trip before the FIN, so the reply is one chunk each way.
  const answered = readAtLeast(client, 1);
  client.write('x');
  await answered;
  client.end();
  t.is((await got).data?.toString(), '[xabc]cba');
  t.deepEqual(order, ['c', 'b', 'a']);
});

test('filter and scan work as middleware; filter can drop everything without stalling the sender', async (t) => {
  const up = await listenTcp(t, (s) => {
    let n = 0;
    s.on('data', (d) => {
      n += d.length;
    });
    s.on('end', () => s.end(String(n)));
  });
  const counted: number[] = [];
  const { port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    limits: { highWaterMark: 64 * 1024 },
    middleware: [
      upstream((source) =>
        source.pipe(
          scan((acc: number, c: Buffer) => {
            counted.push(acc + c.length);
            return acc + c.length;
          }, 0),
          filter(() => false),
          map(() => Buffer.alloc(0)),
        ),
      ),
    ],
  });
  const client = await dial(port);
  const got = collect(client);
  await sendRandom(client, 8 * MiB);
  t.is((await got).data?.toString(), '0');
  t.true(counted.length > 0);
});

for (const mode of MODES)
  test(`half-close: the client ends its side and the upstream can still answer in full [${mode.name}]`, async (t) => {
    const reply = randomBytes(3 * MiB);
    let clientHasFirstPart: Promise<void> = Promise.resolve();
    const up = await listenTcp(t, (s) => {
      let got = 0;
      s.on('data', (d) => {
        got += d.length;
      });
      s.on('end', async () => {
        // Only after the client's FIN does the server answer, in two parts: the
        // second once the first has reached the client, then FIN.
        s.write(`got ${got}\n`);
        await clientHasFirstPart;
        s.end(reply);
      });
    });
    const { server, port } = await startRedirect(t, { ...mode.options, resolve: { host: '127.0.0.1', port: up.port } });
    const client = await dial(port);
    const closed = nextClose(server);
    const got = collect(client);
    clientHasFirstPart = readAtLeast(client, 'got 1000\n'.length);
    client.end(Buffer.alloc(1000, 1));
    const r = await got;
    t.is(r.data?.subarray(0, 9).toString(), 'got 1000\n');
    t.is(r.bytes, 9 + reply.length);
    t.is(sha256(r.data?.subarray(9) ?? Buffer.alloc(0)), sha256(reply));
    const s = await closed;
    t.is(s.reason, 'client-end');
    t.is(s.path, mode.path);
  });

for (const mode of MODES)
  test(`half-close: the upstream ends first and the client can still send [${mode.name}]`, async (t) => {
    const up = await listenTcp(t, (s) => {
      s.end('bye\n');
    });
    let upstreamGot = 0;
    const upstreamHash = createHash('sha256');
    let upstreamEnded: Promise<unknown> = Promise.resolve();
    up.server.on('connection', (s) => {
      upstreamEnded = once(s, 'end');
      s.on('data', (d: Buffer) => {
        upstreamGot += d.length;
        upstreamHash.update(d);
      });
    });
    const { server, port } = await startRedirect(t, { ...mode.options, resolve: { host: '127.0.0.1', port: up.port } });
    const client = await dial(port);
    const closed = nextClose(server);
    const got = collect(client);
    await once(client, 'end');
    // The upstream has sent FIN; our side is still open for writing.
    const sent = await sendRandom(client, 200_000);
    t.is((await got).data?.toString(), 'bye\n');
    const s = await closed;
    t.is(s.path, mode.path);
    t.is(s.reason, 'upstream-end');
    t.is(s.upstream.bytesWritten, 200_000);
    await upstreamEnded;
    t.is(upstreamGot, 200_000);
    t.is(upstreamHash.digest('hex'), sent);
  });

for (const mode of MODES)
  test(`a reset from the upstream becomes a reset to the client, never a FIN [${mode.name}]`, async (t) => {
    const up = await listenTcp(t, (s) => {
      s.once('data', () => s.resetAndDestroy());
    });
    const { server, port } = await startRedirect(t, { ...mode.options, resolve: { host: '127.0.0.1', port: up.port } });
    const client = await dial(port);
    const closed = nextClose(server);
    const got = drain(client);
    client.write('trigger');
    const r = await got;
    t.is(r.error?.code, 'ECONNRESET');
    const s = await closed;
    t.is(s.path, mode.path);
    t.is(s.reason, 'upstream-reset');
    t.is(s.error?.code, 'ERR_REDIRECT_UPSTREAM_RESET');
    t.is(s.error?.syscallCode, 'ECONNRESET');
  });

test('an upstream that refuses closes the client at once with the reason', async (t) => {
  const gone = await listenTcp(t, () => {});
  const port0 = gone.port;
  await new Promise((resolve) => gone.server.close(resolve));
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: port0 } });
  const closed = nextClose(server);
  const r = await drain(dialRaw(port));
  t.is(r.error?.code, 'ECONNRESET');
  const s = await closed;
  t.is(s.reason, 'upstream-refused');
  t.is(s.error?.code, 'ERR_REDIRECT_UPSTREAM_REFUSED');
  t.is(server.stats().errors['upstream-refused'], 1);
});

test('a connect timeout closes the client with reason connect-timeout', async (t) => {
  const { port: silentPort, fill } = await unansweringListener(t);
  await fill();
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: silentPort },
    limits: { connectTimeoutMs: 300 },
  });
  const closed = nextClose(server);
  const started = Date.now();
  const r = await drain(dialRaw(port));
  t.is(r.error?.code, 'ECONNRESET');
  const s = await closed;
  t.is(s.reason, 'connect-timeout');
  t.is(s.error?.code, 'ERR_REDIRECT_CONNECT_TIMEOUT');
  t.true(Date.now() - started >= 250);
});

// Serial: a timer test must not share its event loop with this file's bulk transfers.
for (const mode of MODES)
  test.serial(`the idle timeout ends a quiet connection [${mode.name}]`, async (t) => {
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      ...mode.options,
      resolve: { host: '127.0.0.1', port: up.port },
      limits: { idleTimeoutMs: 1500 },
    });
    const closed = nextClose(server);
    const client = await dial(port);
    const echoed = (): Promise<unknown> => once(client, 'data');
    const a = echoed();
    client.write('a');
    await a;
    // The subject here is time itself: 'b' comes well inside the timeout, so a timer
    // that was not re-armed by it would fire before bAt + idleTimeoutMs.
    await sleep(600);
    const bAt = performance.now();
    client.write('b'); // activity re-arms the timer
    const s = await closed;
    t.is(s.path, mode.path);
    t.is(s.reason, 'idle-timeout');
    t.is(s.error?.code, 'ERR_REDIRECT_IDLE_TIMEOUT');
    // It ended at least idleTimeoutMs after the last byte (the proxy saw 'b' after bAt), not after the first.
    t.true(performance.now() - bAt >= 1500, String(performance.now() - bAt));
    client.destroy();
  });

for (const mode of MODES)
  test(`server speaks first: the upstream is connected at accept time [${mode.name}]`, async (t) => {
    const up = await listenTcp(t, (s) => s.end('220 ready\r\n'));
    const { port } = await startRedirect(t, { ...mode.options, resolve: { host: '127.0.0.1', port: up.port } });
    const client = await dial(port);
    const got = collect(client);
    await once(client, 'end');
    client.end();
    t.is((await got).data?.toString(), '220 ready\r\n');
  });

test('a middleware error ends only its own connection; the others keep flowing', async (t) => {
  const up = await echoUpstream(t);
  const boom: Middleware = () => ({
    upstream: map((c: Buffer) => {
      if (c.includes('boom')) throw new Error('bad byte');
      return c;
    }),
  });
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [boom],
  });
  const healthy = await dial(port);
  const healthyGot = drain(healthy);
  const bad = await dial(port);
  const badClosed = new Promise<CloseSummary>((resolve) =>
    server.on('closed', (s) => s.reason === 'middleware-error' && resolve(s)),
  );
  const badGot = drain(bad);
  const sending = sendRandom(healthy, 4 * MiB, 16 * 1024);
  bad.write('go boom');
  const s = await badClosed;
  t.is(s.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
  t.regex(s.error?.message ?? '', /bad byte/);
  t.is((await badGot).error?.code, 'ECONNRESET');
  const hash = await sending;
  const r = await healthyGot;
  t.is(r.sha256, hash);
  // and new connections still work
  const again = await dial(port);
  const g = collect(again);
  again.end('ok');
  t.is((await g).data?.toString(), 'ok');
  t.is(server.stats().errors['middleware-error'], 1);
});

test('a middleware factory that throws, or emits non-bytes, ends its connection with a coded reason', async (t) => {
  const up = await echoUpstream(t);
  let n = 0;
  const flaky: Middleware = () => {
    n++;
    if (n === 1) throw new Error('factory failed');
    return { downstream: map(() => 'not a buffer' as unknown as Buffer) };
  };
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [flaky],
  });
  const first = nextClose(server);
  const c1 = dialRaw(port);
  c1.on('error', () => {});
  t.is((await first).reason, 'middleware-error');
  const second = nextClose(server);
  const c2 = await dial(port);
  c2.on('error', () => {});
  c2.write('x');
  const s = await second;
  t.is(s.reason, 'middleware-error');
  t.regex(s.error?.message ?? '', /Buffer was expected/);
});

for (const mode of MODES)
  test(`200 concurrent connections keep their bytes intact [${mode.name}]`, async (t) => {
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      ...mode.options,
      resolve: { host: '127.0.0.1', port: up.port },
      // the JS path through an operator; the zero-copy path needs an empty chain
      middleware: mode.name === 'js' ? [upstream(map((c: Buffer) => c))] : [],
    });
    const runs = Array.from({ length: 200 }, async (_, i) => {
      const c = await dial(port);
      const got = drain(c);
      const sent = await sendRandom(c, 64 * 1024 + i * 97, 8 * 1024);
      const r = await got;
      return r.sha256 === sent && r.bytes === 64 * 1024 + i * 97;
    });
    const ok = await Promise.all(runs);
    t.is(ok.filter(Boolean).length, 200);
    await closedAtLeast(server, 200);
    t.is(server.stats().total.connections, 200);
  });

for (const mode of MODES)
  test(`close() stops accepting, lets live connections finish, then resets what is left [${mode.name}]`, async (t) => {
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, { ...mode.options, resolve: { host: '127.0.0.1', port: up.port } });
    const bothOpen = new Promise<void>((resolve) => {
      let n = 0;
      server.on('connection', () => {
        if (++n === 2) resolve();
      });
    });
    const finishing = await dial(port);
    const stuck = await dial(port);
    stuck.on('error', () => {});
    await bothOpen;
    const reasons: string[] = [];
    server.on('closed', (s) => reasons.push(`${s.reason} ${s.error?.code ?? '-'}`));
    // A long drain; the hard stop below brings it forward once the finishing flow is done.
    const closing = server.close({ timeoutMs: 60_000 });
    // New connections are refused once closing.
    const refused = await new Promise<string>((resolve) => {
      const c = require('node:net').connect({ port, host: '127.0.0.1' });
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      c.on('connect', () => resolve('connected'));
    });
    t.is(refused, 'ECONNREFUSED');
    const got = collect(finishing);
    const finished = nextClose(server);
    finishing.end('drain me');
    t.is((await got).data?.toString(), 'drain me');
    t.is((await finished).reason, 'client-end');
    t.true(server.stats().live.connections === 1 && !server.listening);
    const stuckSaw = drain(stuck);
    await server.close({ timeoutMs: 0 });
    await closing;
    t.deepEqual(reasons.sort(), ['client-end -', 'server-shutdown ERR_REDIRECT_SERVER_SHUTDOWN']);
    t.is((await stuckSaw).error?.code, 'ECONNRESET');
    t.false(server.listening);
  });

test('maxConnections resets connections over the limit and counts them', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    limits: { maxConnections: 1 },
  });
  const first = nextConnection(server);
  const a = await dial(port);
  await first;
  const rejected = new Promise<CloseSummary>((r) => server.once('rejected', r));
  const rb = await drain(dialRaw(port));
  t.truthy(rb.error);
  const summary = await rejected;
  t.is(summary.reason, 'max-connections');
  t.is(summary.error?.code, 'ERR_REDIRECT_MAX_CONNECTIONS');
  const got = collect(a);
  a.end('still fine');
  t.is((await got).data?.toString(), 'still fine');
});

test('a function resolver supplies the record; a target function overrides where we connect', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: async (socket) => ({
      destination: { address: '::ffff:203.0.113.9', port: 443 },
      source: { address: socket.remoteAddress!, port: socket.remotePort! },
      chain: [{ id: 'edge-1' }],
    }),
    target: (record) => ({ host: 'localhost', port: record.destination.port === 443 ? up.port : 1 }),
    id: 'core-test',
  });
  const seen = nextConnection(server);
  const client = await dial(port);
  const conn = await seen;
  t.deepEqual(conn.record.destination, { address: '203.0.113.9', port: 443, family: 'IPv4' });
  t.is(conn.record.mechanism, 'function');
  t.deepEqual(conn.record.chain, [{ id: 'edge-1' }]);
  const got = collect(client);
  client.end('via target');
  t.is((await got).data?.toString(), 'via target');
});

test('a record whose chain already holds our id is refused as a loop, with no upstream connection', async (t) => {
  let upstreamConnections = 0;
  const up = await listenTcp(t, () => {
    upstreamConnections++;
  });
  const { server, port } = await startRedirect(t, {
    id: 'proxy-a',
    resolve: () => ({
      destination: { address: '127.0.0.1', port: up.port },
      chain: [{ id: 'proxy-b' }, { id: 'proxy-a' }],
    }),
  });
  const rejected = new Promise<CloseSummary>((r) => server.once('rejected', r));
  dialRaw(port);
  const s = await rejected;
  t.is(s.reason, 'loop-detected');
  t.is(s.error?.code, 'ERR_REDIRECT_LOOP_DETECTED');
  t.is(upstreamConnections, 0);
});

test('a flow from our own outbound connection is refused as a loop, with no connection storm', async (t) => {
  // The proxy's target is itself: its own egress comes straight back.
  let selfPort = 0;
  const { server, port } = await startRedirect(t, {
    resolve: (socket) => ({
      source: { address: socket.remoteAddress!, port: socket.remotePort! },
      destination: { address: '127.0.0.1', port: selfPort },
    }),
  });
  selfPort = port;
  const looped = new Promise<void>((resolve) => server.on('closed', (s) => s.reason === 'loop-detected' && resolve()));
  await drain(dialRaw(port));
  await looped;
  // Every flow accepted has closed: a storm would keep accepting new ones and never get here.
  await new Promise<void>((resolve) => {
    const check = (): void => {
      const { accepted, closed } = server.stats().total;
      if (closed === accepted) resolve();
    };
    server.on('closed', check);
    check();
  });
  const stats = server.stats();
  t.is(stats.reasons['loop-detected'], 1);
  t.true(stats.total.accepted <= 2, `accepted ${stats.total.accepted}`);
});

test('a resolver failure is reported with a coded error and the server keeps serving', async (t) => {
  const up = await echoUpstream(t);
  let n = 0;
  const { server, port } = await startRedirect(t, {
    resolve: () => {
      n++;
      if (n === 1) throw new Error('no record for you');
      if (n === 2) return { destination: { address: 'not-an-ip', port: 1 } };
      return { destination: { address: '127.0.0.1', port: up.port } };
    },
  });
  const reasons: CloseSummary[] = [];
  server.on('rejected', (s) => reasons.push(s));
  for (let i = 0; i < 2; i++) await drain(dialRaw(port));
  await closedAtLeast(server, 2);
  t.deepEqual(
    reasons.map((s) => [s.reason, s.error?.code]),
    [
      ['resolve-failed', 'ERR_REDIRECT_RESOLVE_FAILED'],
      ['resolve-failed', 'ERR_REDIRECT_INVALID_RECORD'],
    ],
  );
  const c = await dial(port);
  const got = collect(c);
  c.end('ok');
  t.is((await got).data?.toString(), 'ok');
});

test('the context signal aborts when the connection ends and state is shared along the chain', async (t) => {
  const up = await echoUpstream(t);
  let aborted: Promise<unknown> | undefined;
  let shared: unknown;
  const { port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [
      (ctx) => {
        ctx.state.set('who', `conn-${ctx.id}`);
        aborted = once(ctx.signal, 'abort');
      },
      (ctx) => {
        shared = ctx.state.get('who');
      },
    ],
  });
  const c = await dial(port);
  const got = collect(c);
  c.end('x');
  await got;
  await aborted;
  t.regex(String(shared), /^conn-\d+$/);
});
