import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { map } from 'rxjs';
import { bypass } from '../middleware/index';
import { createRedirectServer, downstream, upstream, zeroCopyStats } from '../lib/index';
import {
  collect,
  dial,
  drain,
  echoUpstream,
  listenTcp,
  closedAtLeast,
  eachTurnUntil,
  nextClose,
  nextConnection,
  readAtLeast,
  sendRandom,
  sha256,
  startRedirect,
} from './helpers/net';
import { zeroCopyTest } from './helpers/modes';
import { throwsCode } from './helpers/expect';

// Zero-copy specifics: engine counters, bypass, budgets, big transfers. The shared
// TCP semantics run on both data paths in relay.test.ts and relay-reset.test.ts.
// The core relay semantics, run against the zero-copy (splice) path. Skipped
// where the addon or its splice engine is not loaded (RXREDIRECT_NATIVE=0, not Linux).
const MiB = 1024 * 1024;
// Serial: the engine's counters are process-wide and several tests check they return to zero.
const zcTest = zeroCopyTest;

/**
 * The engine has no relay left. Checked once every flow of the test has its
 * summary: the engine forgets a relay before it reports its end, and an abort
 * is synchronous, so by then none may remain.
 */
function engineIdle(): boolean {
  return zeroCopyStats()?.relays === 0;
}

/** The engine relays at least this many directions (a handoff has no event of its own). */
function spliced(directions: number): Promise<void> {
  return eachTurnUntil(() => (zeroCopyStats()?.relays ?? 0) >= directions);
}

zcTest('relays bytes both ways in the kernel and reports path and bytes per direction', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = drain(client);
  const sent = await sendRandom(client, 4 * MiB);
  const r = await got;
  t.is(r.sha256, sent);
  t.is(r.bytes, 4 * MiB);
  const s = await closed;
  t.is(s.reason, 'client-end');
  t.is(s.path, 'zero-copy');
  t.is(s.upstream.path, 'zero-copy');
  t.is(s.downstream.path, 'zero-copy');
  t.is(s.upstream.bytesRead, 4 * MiB);
  t.is(s.upstream.zeroCopyBytes, 4 * MiB);
  t.is(s.downstream.bytesWritten, 4 * MiB);
  const stats = server.stats();
  t.is(stats.paths['zero-copy'], 1);
  t.is(stats.dataPaths.upstream['zero-copy'], 1);
  t.is(stats.dataPaths.zeroCopyBytes, 8 * MiB);
  t.is(stats.dataPaths.jsBytes, 0);
  t.is(stats.total.bytesUpstream, 4 * MiB);
  t.true(engineIdle());
});

zcTest("zeroCopy: 'off' keeps every byte on the JS path; a bad value throws with a code", async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port }, zeroCopy: 'off' });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = collect(client);
  client.end('hello');
  t.is((await got).data?.toString(), 'hello');
  const s = await closed;
  t.is(s.path, 'js');
  t.is(s.upstream.zeroCopyBytes, 0);
  throwsCode(
    t,
    () => createRedirectServer({ resolve: { host: '127.0.0.1', port: 1 }, zeroCopy: 'on' as 'auto' }),
    'ERR_REDIRECT_INVALID_OPTION',
  );
});

zcTest('sha256-checked 128 MiB each way at once', async (t) => {
  const size = 128 * MiB;
  let upstreamResult: Promise<{ bytes: number; sha256: string }> | undefined;
  let upstreamSent: Promise<string> | undefined;
  const up = await listenTcp(t, (s) => {
    upstreamResult = drain(s);
    upstreamSent = sendRandom(s, size, 256 * 1024);
  });
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = drain(client);
  const sent = await sendRandom(client, size, 256 * 1024);
  const [down, upR] = await Promise.all([got, upstreamResult]);
  t.is(down.bytes, size);
  t.is(down.sha256, (await upstreamSent) ?? '');
  t.is(upR?.bytes, size);
  t.is(upR?.sha256, sent);
  const s = await closed;
  t.is(s.upstream.zeroCopyBytes, size);
  t.is(s.downstream.zeroCopyBytes, size);
});

zcTest('a reset from the upstream becomes a reset to the client', async (t) => {
  const up = await listenTcp(t, (s) => {
    s.once('data', () => s.resetAndDestroy());
  });
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  const conn = nextConnection(server);
  const client = await dial(port);
  await conn;
  await spliced(2); // the reset must meet the engine, not the JS path
  const closed = nextClose(server);
  const got = drain(client);
  client.write('trigger');
  const r = await got;
  t.is(r.error?.code, 'ECONNRESET');
  const s = await closed;
  t.is(s.reason, 'upstream-reset');
  t.is(s.upstream.path, 'zero-copy');
  t.true(engineIdle());
});

zcTest('destroy() aborts a live relay at once: both peers are reset', async (t) => {
  let upstreamSaw: Promise<NodeJS.ErrnoException | undefined> | undefined;
  const up = await listenTcp(t, (s) => {
    upstreamSaw = new Promise((resolve) => {
      s.on('error', (e) => resolve(e));
      s.on('end', () => resolve(undefined));
    });
    s.pipe(s);
  });
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  const opened = nextConnection(server);
  const client = await dial(port);
  const conn = await opened;
  const got = drain(client);
  const echoed = readAtLeast(client, 4);
  client.write('ping');
  await echoed;
  await spliced(2);
  const closed = nextClose(server);
  conn.destroy();
  t.is((await got).error?.code, 'ECONNRESET');
  t.is((await upstreamSaw)?.code, 'ECONNRESET');
  t.is((await closed).reason, 'destroyed');
  t.true(engineIdle());
});

zcTest('close() lets a spliced connection finish, then resets what is left', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  const finishing = await dial(port);
  const stuck = await dial(port);
  await spliced(4);
  const reasons: string[] = [];
  server.on('closed', (s) => reasons.push(s.reason));
  // A long drain; the hard stop below brings it forward once the finishing flow is done.
  const closing = server.close({ timeoutMs: 60_000 });
  const got = drain(finishing);
  const stuckGot = drain(stuck);
  const finished = nextClose(server);
  const sent = await sendRandom(finishing, MiB);
  t.is((await got).sha256, sent);
  t.is((await finished).reason, 'client-end');
  t.is(server.stats().live.connections, 1, 'the stuck flow is still open while draining');
  await server.close({ timeoutMs: 0 });
  await closing;
  t.is((await stuckGot).error?.code, 'ECONNRESET');
  t.deepEqual(reasons.sort(), ['client-end', 'server-shutdown']);
  t.true(engineIdle());
});

zcTest('bypass(): the chain transforms the inspected head, the rest is spliced unchanged', async (t) => {
  const up = await echoUpstream(t);
  let chainSaw = 0;
  const shout = upstream(
    map((c: Buffer) => {
      chainSaw += c.length;
      return Buffer.from(c.toString('latin1').toUpperCase(), 'latin1');
    }),
  );
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [shout, bypass({ when: (chunk) => chunk.includes('\r\n\r\n') })],
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = collect(client);
  const head = Buffer.from('get / http/1.1\r\nhost: x\r\n\r\n');
  client.write(head);
  // wait for the echo of the head so the rest arrives after the bypass
  await new Promise<void>((resolve) => {
    let n = 0;
    const onData = (d: Buffer): void => {
      n += d.length;
      if (n >= head.length) {
        client.off('data', onData);
        resolve();
      }
    };
    client.on('data', onData);
  });
  const rest = randomBytes(8 * MiB);
  client.end(rest);
  const r = await got;
  const expected = Buffer.concat([Buffer.from(head.toString('latin1').toUpperCase(), 'latin1'), rest]);
  t.is(r.bytes, expected.length);
  t.is(r.sha256, sha256(expected));
  t.is(chainSaw, head.length);
  const s = await closed;
  t.is(s.upstream.path, 'mixed');
  t.is(s.upstream.zeroCopyBytes, rest.length);
  t.is(s.downstream.path, 'zero-copy');
  t.is(s.path, 'mixed');
});

zcTest('bypass({ afterBytes }) hands over mid-stream without losing, duplicating or reordering a byte', async (t) => {
  const up = await echoUpstream(t);
  let chainSaw = 0;
  const counter = upstream(
    map((c: Buffer) => {
      chainSaw += c.length;
      return c;
    }),
  );
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [counter, bypass({ afterBytes: 100_000 })],
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = drain(client);
  // back-to-back writes: Node has bytes buffered when the bypass happens
  const sent = await sendRandom(client, 16 * MiB, 16 * 1024);
  const r = await got;
  t.is(r.bytes, 16 * MiB);
  t.is(r.sha256, sent);
  t.true(chainSaw >= 100_000 && chainSaw < 16 * MiB);
  const s = await closed;
  t.is(s.upstream.path, 'mixed');
  t.is(s.upstream.bytesWritten, 16 * MiB);
  t.true(s.upstream.zeroCopyBytes > 0);
});

zcTest('200 concurrent spliced connections keep their bytes intact', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  const runs = Array.from({ length: 200 }, async (_, i) => {
    const c: Socket = await dial(port);
    const got = drain(c);
    const sent = await sendRandom(c, 64 * 1024 + i * 97, 8 * 1024);
    const r = await got;
    return r.sha256 === sent && r.bytes === 64 * 1024 + i * 97;
  });
  const ok = await Promise.all(runs);
  t.is(ok.filter(Boolean).length, 200);
  await closedAtLeast(server, 200);
  const stats = server.stats();
  t.is(stats.total.closed, 200);
  t.is(stats.dataPaths.upstream['zero-copy'], 200);
  t.true(engineIdle());
});

zcTest('the idle timeout sees spliced traffic as activity and still ends a quiet connection', async (t) => {
  const IDLE_MS = 400;
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    limits: { idleTimeoutMs: IDLE_MS },
    zeroCopy: 'always',
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = drain(client);
  await spliced(2);
  // Round trips, each waiting for its echo, for three idle timeouts: the only
  // activity the proxy's JS sees is what the engine reports.
  const started = performance.now();
  let sent = 0;
  let lastEcho = started;
  for (let i = 0; performance.now() - started < 3 * IDLE_MS; i++) {
    const b = Buffer.from(`tick ${i}\n`);
    const echoed = readAtLeast(client, b.length);
    client.write(b);
    await echoed;
    t.false(client.destroyed, `ended after ${performance.now() - started} ms of traffic`);
    sent += b.length;
    lastEcho = performance.now();
  }
  const s = await closed;
  t.is(s.reason, 'idle-timeout');
  // It ended a full idle timeout after the last byte (5 ms for timer rounding).
  t.true(performance.now() - lastEcho >= IDLE_MS - 5, `${performance.now() - lastEcho} ms`);
  t.is(s.upstream.path, 'zero-copy');
  t.is(s.upstream.bytesRead, sent);
  await got;
});

zcTest('one direction spliced, the other through a chain: half-close either way still closes cleanly', async (t) => {
  // client ends first; the upstream answers after the FIN (upstream spliced, downstream in JS)
  const up = await listenTcp(t, (s) => {
    let got = 0;
    s.on('data', (d) => {
      got += d.length;
    });
    s.on('end', () => s.end(`got ${got}`));
  });
  const shout = downstream(map((c: Buffer) => Buffer.from(c.toString().toUpperCase())));
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [shout],
    zeroCopy: 'always',
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = collect(client);
  await spliced(1); // the upstream direction (no middleware) is with the engine
  client.end(Buffer.alloc(300_000, 1));
  t.is((await got).data?.toString(), 'GOT 300000');
  const s = await closed;
  t.is(s.reason, 'client-end');
  t.is(s.upstream.path, 'zero-copy');
  t.is(s.downstream.path, 'js');
  t.is(s.path, 'mixed');

  // the upstream ends first (downstream spliced, upstream in JS); the client keeps sending
  let upstreamGot: Promise<{ bytes: number; sha256: string }> | undefined;
  const up2 = await listenTcp(t, (sock) => {
    upstreamGot = drain(sock);
    sock.end('bye');
  });
  const tapUp = upstream(map((c: Buffer) => c));
  const r2 = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up2.port },
    middleware: [tapUp],
    zeroCopy: 'always',
  });
  const c2 = await dial(r2.port);
  const closed2 = nextClose(r2.server);
  const got2 = collect(c2);
  await once(c2, 'end');
  const sent = await sendRandom(c2, MiB);
  t.is((await got2).data?.toString(), 'bye');
  const s2 = await closed2;
  t.is(s2.reason, 'upstream-end');
  t.is(s2.upstream.path, 'js');
  t.is(s2.downstream.path, 'zero-copy');
  t.is((await upstreamGot)?.sha256, sent);
});

zcTest('bypass() with no options hands both directions over before the first byte', async (t) => {
  const up = await echoUpstream(t);
  let chainSaw = 0;
  const counter = upstream(
    map((c: Buffer) => {
      chainSaw += c.length;
      return c;
    }),
  );
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [counter, bypass()],
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const got = drain(client);
  const sent = await sendRandom(client, 2 * MiB);
  t.is((await got).sha256, sent);
  const s = await closed;
  t.is(chainSaw, 0);
  t.is(s.path, 'zero-copy');
  t.is(s.upstream.zeroCopyBytes, 2 * MiB);
});

zcTest(
  'the idle timer asks the engine before deciding: a blocked event loop does not end a live connection',
  async (t) => {
    const IDLE_MS = 300;
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      limits: { idleTimeoutMs: IDLE_MS },
      zeroCopy: 'always',
    });
    const client = await dial(port);
    let closedAt = 0;
    const closed = nextClose(server).then((s) => {
      closedAt = performance.now();
      return s;
    });
    await spliced(2);
    const echoedA = readAtLeast(client, 1);
    client.write('a');
    await echoedA;
    client.write('b'); // reaches the kernel now; the engine moves it while this thread is blocked
    const blockedUntil = performance.now() + IDLE_MS + 200;
    while (performance.now() < blockedUntil) {
      // block the event loop past the idle deadline: the engine's report of 'b' cannot arrive
    }
    const unblockedAt = performance.now();
    const s = await closed;
    t.is(s.reason, 'idle-timeout');
    // The overdue check ran right after the block: had it not asked the engine,
    // it would have ended the flow then. Having seen 'b', it waited a full
    // timeout more (5 ms for timer rounding).
    t.true(closedAt - unblockedAt >= IDLE_MS - 5, `closed ${closedAt - unblockedAt} ms after the block`);
    t.is(s.upstream.bytesRead, 2);
    client.destroy();
  },
);
