import test from 'ava';
import { type CloseSummary, splits, testMiddleware } from '../lib/index';
import { TokenBucket, throttle } from '../middleware/index';
import { dial, drain, echoUpstream, sendRandom, startRedirect } from './helpers/net';
import { throwsCode } from './helpers/expect';

test('bytes pass unchanged and in order whatever the cuts; a burst passes at once', async (t) => {
  for (const pieces of splits('0123456789', 3)) {
    const r = await testMiddleware(throttle({ bytesPerSecond: 1_000_000 }), { upstream: pieces });
    t.is(r.upstreamBytes.toString(), '0123456789');
    t.is(r.ended, 'complete');
  }
});

test('slows to the rate once the burst is spent', async (t) => {
  const chunks = Array.from({ length: 10 }, () => Buffer.alloc(100, 1));
  const started = performance.now();
  const r = await testMiddleware(throttle({ bytesPerSecond: 10_000, burst: 100, direction: 'upstream' }), {
    upstream: chunks,
    downstream: chunks,
  });
  const took = performance.now() - started;
  t.is(r.upstreamBytes.length, 1000);
  // 900 bytes over the burst at 10 000 B/s: at least 90 ms (a lower bound only:
  // a loaded machine may take longer, and speed is measured in benchmarks/).
  t.true(took >= 80, `took ${took} ms`);
});

test('a shared bucket caps the sum of several connections', async (t) => {
  const bucket = new TokenBucket(20_000, 100);
  const chunks = Array.from({ length: 10 }, () => Buffer.alloc(100, 1));
  const started = performance.now();
  await Promise.all([
    testMiddleware(throttle({ shared: bucket }), { upstream: chunks }),
    testMiddleware(throttle({ shared: bucket }), { upstream: chunks }),
  ]);
  const took = performance.now() - started;
  t.true(took >= 85, `took ${took} ms`); // 1 900 bytes over the burst at 20 000 B/s
  throwsCode(t, () => throttle({}), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => throttle({ shared: {} as TokenBucket }), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => new TokenBucket(0), 'ERR_REDIRECT_INVALID_OPTION');
});

test('real sockets: a fast sender is slowed and the proxy holds no more than the high-water mark', async (t) => {
  const up = await echoUpstream(t);
  const hwm = 64 * 1024;
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [throttle({ bytesPerSecond: 2 * 1024 * 1024, burst: 64 * 1024, direction: 'upstream' })],
    limits: { highWaterMark: hwm },
  });
  const closed = new Promise<CloseSummary>((r) => server.once('closed', r));
  const client = await dial(port);
  const got = drain(client);
  const started = performance.now();
  const total = 1024 * 1024;
  const sent = await sendRandom(client, total);
  const result = await got;
  const took = performance.now() - started;
  const summary = await closed;
  t.is(result.sha256, sent);
  t.true(took >= 350, `took ${took} ms`); // (1 MiB - 64 KiB burst) at 2 MiB/s ≈ 470 ms
  t.true(summary.upstream.pauses >= 1, JSON.stringify(summary.upstream));
  t.true(summary.upstream.peakBuffered <= hwm + 256 * 1024, String(summary.upstream.peakBuffered));
});
