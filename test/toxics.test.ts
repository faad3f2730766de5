import { once } from 'node:events';
import test from 'ava';
import type { CloseSummary } from '../lib/index';
import { toxics } from '../middleware/index';
import { dial, drain, echoUpstream, nextClose, sendRandom, sha256, startRedirect } from './helpers/net';
import { peerPattern, pyClient, pyServer } from './helpers/py-timed-peer';

// Each toxic on real sockets, on each stream. Timing is asserted from below only.

const SIDES = ['upstream', 'downstream'] as const;

for (const direction of SIDES) {
  test(`latency delays each ${direction} chunk by its latency; bytes intact`, async (t) => {
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      middleware: [toxics.latency({ latency: 120, jitter: 20, direction, seed: 1 })],
    });
    const client = await dial(port);
    const started = performance.now();
    client.write('ping');
    await once(client, 'data');
    const rtt = performance.now() - started;
    t.true(rtt >= 95, `echo after ${rtt} ms`); // 120 ± 20, less a timer's rounding
    const closed = nextClose(server);
    const got = drain(client);
    const sent = await sendRandom(client, 512 * 1024);
    t.is((await got).sha256, sent);
    const s = await closed;
    t.is(s.reason, 'client-end');
  });

  test(`bandwidth holds the ${direction} stream to its rate (KB/s); bytes intact`, async (t) => {
    const up = await echoUpstream(t);
    const rate = 1000; // KB/s: 1 000 000 bytes/s
    const { port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      middleware: [toxics.bandwidth({ rate, direction })],
    });
    const client = await dial(port);
    const got = drain(client);
    const total = 600_000;
    const started = performance.now();
    const sent = await sendRandom(client, total);
    const result = await got;
    const took = performance.now() - started;
    t.is(result.sha256, sent);
    t.true(took >= (total / (rate * 1000)) * 1000 * 0.9, `took ${took} ms`);
  });

  test(`slow_close holds the ${direction} FIN for its delay; the bytes come through`, async (t) => {
    // downstream: the upstream sends and closes at once; upstream: the client does. Either way the
    // FIN reaches the other peer at least `delay` after the sender could first have sent it.
    const delay = 300;
    const sender = direction === 'downstream' ? await pyServer(t, 5000, true) : await pyServer(t, 0);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: sender.port },
      middleware: [toxics.slowClose({ delay, direction })],
    });
    const closed = nextClose(server);
    if (direction === 'downstream') {
      // endMs counts from the python client's connect, before the upstream could send its FIN.
      const c = await pyClient(t, port, 0);
      t.is(c.receivedSha256, sha256(peerPattern(5000)));
      t.is(c.end, 'fin');
      t.true(c.endMs >= delay - 2, JSON.stringify(c));
      t.is((await closed).reason, 'upstream-end');
    } else {
      const client = await dial(port);
      const started = performance.now();
      client.end(Buffer.from(peerPattern(5000)));
      const r = await sender.report; // the server reports once it has read the FIN
      t.is(r.receivedSha256, sha256(peerPattern(5000)));
      t.is(r.end, 'fin');
      t.true(performance.now() - started >= delay - 2, `FIN after ${performance.now() - started} ms`);
    }
  });

  test(`timeout stalls the ${direction} stream, then closes with FIN and reason fault-timeout`, async (t) => {
    // The python peer on the far side sends first; nothing it sends may get through.
    const timeout = 400;
    const sender = direction === 'downstream' ? await pyServer(t, 1000) : undefined;
    const upPeer = sender ?? (await pyServer(t, 0));
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: upPeer.port },
      middleware: [toxics.timeout({ timeout, direction })],
    });
    const closed = nextClose(server);
    const started = performance.now();
    const client = pyClient(t, port, direction === 'upstream' ? 1000 : 0);
    const [c, u, s] = await Promise.all([client, upPeer.report, closed]);
    t.is(s.reason, 'fault-timeout');
    t.is(s.error?.code, 'ERR_REDIRECT_FAULT_TIMEOUT');
    t.true(performance.now() - started >= timeout, 'closed early');
    t.true(c.endMs >= timeout - 20, JSON.stringify(c));
    // Nothing got through the stalled stream; both peers saw a FIN.
    t.is(direction === 'upstream' ? u.received : c.received, 0);
    t.is(c.end, 'fin');
    t.is(u.end, 'fin');
  });

  test(`reset_peer resets both sockets (a real RST) after its timeout on the ${direction} stream`, async (t) => {
    const timeout = 250;
    const upPeer = await pyServer(t, direction === 'downstream' ? 1000 : 0);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: upPeer.port },
      middleware: [toxics.resetPeer({ timeout, direction })],
    });
    const closed = nextClose(server);
    const client = pyClient(t, port, direction === 'upstream' ? 1000 : 0);
    const [c, u, s] = await Promise.all([client, upPeer.report, closed]);
    t.is(s.reason, 'fault-reset');
    t.is(s.error?.code, 'ERR_REDIRECT_FAULT_RESET');
    t.is(c.end, 'rst');
    t.is(u.end, 'rst');
    t.true(c.endMs >= timeout - 20, JSON.stringify(c));
    t.is(direction === 'upstream' ? u.received : c.received, 0);
  });

  test(`slicer keeps the ${direction} bytes intact and in order`, async (t) => {
    const up = await echoUpstream(t);
    const { port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      middleware: [toxics.slicer({ average_size: 1500, size_variation: 500, delay: 1000, direction, seed: 'x' })],
    });
    const client = await dial(port);
    const got = drain(client);
    const started = performance.now();
    const sent = await sendRandom(client, 256 * 1024, 16 * 1024);
    t.is((await got).sha256, sent);
    // 256 KiB in slices of at most 2 000 bytes, 1 ms apart within each read (≤ 64 KiB): ≥ 96 waits.
    t.true(performance.now() - started >= 96, `took ${performance.now() - started} ms`);
  });

  test(`limit_data lets exactly its bytes through on the ${direction} stream, then FIN and fault-limit`, async (t) => {
    const limit = 10_000;
    const upPeer = await pyServer(t, direction === 'downstream' ? 100_000 : 0);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: upPeer.port },
      middleware: [toxics.limitData({ bytes: limit, direction })],
    });
    const closed = nextClose(server);
    const client = pyClient(t, port, direction === 'upstream' ? 100_000 : 0);
    const [c, u, s] = await Promise.all([client, upPeer.report, closed]);
    t.is(s.reason, 'fault-limit');
    t.is(s.error?.code, 'ERR_REDIRECT_FAULT_LIMIT');
    const receiver = direction === 'upstream' ? u : c;
    t.is(receiver.received, limit);
    t.is(receiver.receivedSha256, sha256(peerPattern(100_000).subarray(0, limit)));
    t.is(receiver.end, 'fin');
  });
}

test('a connection the toxic does not end closes as usual (no fault reason), through every toxic', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [
      toxics.latency({ latency: 5, direction: 'both' }),
      toxics.bandwidth({ rate: 100_000, direction: 'both' }),
      toxics.slicer({ average_size: 4096, size_variation: 1024, delay: 0, direction: 'both' }),
      toxics.slowClose({ delay: 10, direction: 'both' }),
      toxics.limitData({ bytes: 10_000_000, direction: 'both' }),
    ],
  });
  const closed = new Promise<CloseSummary>((r) => server.once('closed', r));
  const client = await dial(port);
  const got = drain(client);
  const sent = await sendRandom(client, 1024 * 1024);
  t.is((await got).sha256, sent);
  const s = await closed;
  t.is(s.reason, 'client-end');
  t.is(s.upstream.bytesWritten, 1024 * 1024);
});

test('bad attributes throw at once with a code', (t) => {
  const bad = { code: 'ERR_REDIRECT_INVALID_OPTION' } as never;
  t.throws(() => toxics.latency({ latency: -1 }), bad);
  t.throws(() => toxics.latency({ latency: 1.5 }), bad);
  t.throws(() => toxics.bandwidth({ rate: 10, direction: 'sideways' as never }), bad);
  t.throws(() => toxics.slicer({ average_size: 0 }), bad);
  t.throws(() => toxics.slicer({ average_size: 10, size_variation: 10 }), bad);
  t.throws(() => toxics.timeout({ timeout: 1, toxicity: 2 }), bad);
  t.throws(() => toxics.resetPeer({ timeout: 1, seed: {} as never }), bad);
  t.throws(() => toxics.limitData({ bytes: 1, scope: { sni: 5 } as never }), bad);
  t.throws(() => toxics.latency({ latency: 1, nope: 1 } as never), bad);
});
