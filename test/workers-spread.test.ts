import test from 'ava';
import { echoUpstream } from './helpers/net';
import { oneShot, startCluster } from './helpers/workers';

// Real worker processes on one SO_REUSEPORT address (docs/workers.md).
const skip = process.platform !== 'linux' ? 'the workers host needs Linux (SO_REUSEPORT, the addon)' : undefined;

test.serial('N workers on one port: every worker accepts, bytes intact, zero-copy in each, stats summed', async (t) => {
  if (skip) return t.log(`skipped: ${skip}`) as undefined;
  const up = await echoUpstream(t);
  process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
  process.env.RXR_TEST_ZERO_COPY = 'auto';
  const workers = 3;
  const summaries: Record<string, unknown>[] = [];
  const { cluster, port } = await startCluster(t, { workers, summaries: true });
  cluster.on('closed', (s) => summaries.push(s));
  t.is(cluster.list().length, workers);

  // 64 KiB each way: big enough that both directions go through the splice engine.
  const total = 90;
  const outcomes = [];
  for (let batch = 0; batch < total; batch += 10) {
    outcomes.push(...(await Promise.all(Array.from({ length: 10 }, () => oneShot(port, 256 * 1024)))));
  }
  t.deepEqual(
    outcomes.filter((o) => !o.ok),
    [],
    'every echo came back whole (sha-equal bytes)',
  );
  // Summaries arrive after the client saw its close: wait for all of them.
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (summaries.length >= total) resolve();
      else cluster.once('closed', check);
    };
    check();
  });
  const stats = await cluster.stats();
  t.is(stats.workers, workers);
  const spread = stats.perWorker.map((w) => w.server.total.accepted);
  t.log(`accepted per worker (${workers} workers, ${total} connections): ${spread.join(' / ')}`);
  for (const w of stats.perWorker) {
    t.true(w.server.total.accepted > 0, `worker ${w.slot} (pid ${w.pid}) accepted connections`);
    t.true(w.server.dataPaths.zeroCopyBytes > 0, `worker ${w.slot} moved bytes through its splice engine`);
    t.true((w.zeroCopy?.maxPipes ?? 0) > 0, `worker ${w.slot} has a splice budget`);
  }
  t.is(stats.server?.total.closed, total, 'the sum of the workers closed every connection');
  t.is(stats.server?.total.bytesUpstream, total * 256 * 1024);
  t.is(stats.server?.reasons['client-end'] ?? 0, total, JSON.stringify(stats.server?.reasons));
  // The global budget (default 1024 pipes) is divided among the workers.
  t.is(stats.zeroCopy?.maxPipes, Math.floor(1024 / workers) * workers);
  t.is(summaries.length, total);
  t.true(summaries.every((s) => s.reason === 'client-end'));
  return undefined;
});

test.serial('workers on an IPv6 address', async (t) => {
  if (skip) return t.log(`skipped: ${skip}`) as undefined;
  const up = await echoUpstream(t);
  process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
  const { cluster, port } = await startCluster(t, { workers: 2, listen: { host: '::1', port: 0, ipv6Only: true } });
  t.deepEqual(cluster.address, { address: '::1', port, family: 'IPv6' });
  const outcomes = await Promise.all(Array.from({ length: 20 }, () => oneShot(port, 8192, '::1')));
  t.true(outcomes.every((o) => o.ok));
  const stats = await cluster.stats();
  t.is(stats.server?.total.accepted, 20);
  return undefined;
});

test.serial('cluster.request() reaches the setup hook of every worker', async (t) => {
  if (skip) return t.log(`skipped: ${skip}`) as undefined;
  const up = await echoUpstream(t);
  process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
  const { cluster, port } = await startCluster(t, {
    workers: 2,
    setup: require.resolve('./fixtures/workers-setup'),
  });
  const outcomes = await Promise.all(Array.from({ length: 20 }, () => oneShot(port)));
  t.true(outcomes.every((o) => o.ok));
  const replies = await cluster.request({ ask: 'count' });
  t.deepEqual(replies.map((r) => r.slot).sort(), [0, 1]);
  const answers = replies.map((r) => r.reply as { slot: number; connections: number; payload: unknown });
  t.true(answers.every((a, i) => a.slot === replies[i]?.slot && JSON.stringify(a.payload) === '{"ask":"count"}'));
  t.is(
    answers.reduce((n, a) => n + a.connections, 0),
    20,
  );
  const failed = await cluster.request('boom');
  t.true(failed.every((r) => r.error?.code === 'E_TEST' && r.error.message === 'asked to fail'));
  return undefined;
});

test.serial('cluster.request() without a setup hook answers with an error per worker', async (t) => {
  if (skip) return t.log(`skipped: ${skip}`) as undefined;
  process.env.RXR_TEST_UPSTREAM_PORT = '9';
  const { cluster } = await startCluster(t, { workers: 1 });
  const replies = await cluster.request('x');
  t.is(replies.length, 1);
  t.regex(replies[0]?.error?.message ?? '', /no setup hook/);
  return undefined;
});
