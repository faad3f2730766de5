import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import test from 'ava';
import type { WorkerProcessInfo } from '../lib/workers/index';
import { dial, drain, eachTurnUntil, echoUpstream, sendRandom } from './helpers/net';
import { createRedirectCluster } from '../lib/workers/index';
import { nextEvent, oneShot, startCluster } from './helpers/workers';

const skip = process.platform !== 'linux' ? 'the workers host needs Linux (SO_REUSEPORT, the addon)' : undefined;

test.serial(
  'reload under load: no connection refused or reset, a long transfer from before finishes intact',
  async (t) => {
    if (skip) return t.log(`skipped: ${skip}`) as undefined;
    const up = await echoUpstream(t);
    process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
    process.env.RXR_TEST_ZERO_COPY = 'auto';
    const { cluster, port } = await startCluster(t, { workers: 2 });
    const before = cluster.list().map((w) => w.pid);

    // A client loop, 4 at a time, opening connections until told to stop.
    let looping = true;
    const outcomes: { ok: boolean; error: string | undefined }[] = [];
    const loop = async (): Promise<void> => {
      while (looping) outcomes.push(await oneShot(port, 4096));
    };
    const loops = Promise.all([loop(), loop(), loop(), loop()]);

    // The long transfer: established and flowing before the reload, most of it sent after.
    const long = await dial(port);
    const echoed = drain(long);
    const firstPart = sendRandom(long, 4 * 1024 * 1024, 64 * 1024, false);
    await firstPart;
    while ((long.bytesRead ?? 0) < 4 * 1024 * 1024) await once(long, 'data');

    const newListening: WorkerProcessInfo[] = [];
    cluster.on('worker-listening', (info) => newListening.push(info));
    const exits: { pid: number | undefined; expected: boolean; code: number | null; signal: string | null }[] = [];
    cluster.on('worker-exit', (info, code, signal) =>
      exits.push({ pid: info.pid, expected: info.expected, code, signal }),
    );
    const reloaded = cluster.reload();
    // Once generation 2 accepts, generation 1 has stopped accepting and drains: keep the long
    // transfer going through it.
    while (newListening.filter((w) => w.generation === 2).length < 2) await nextEvent(cluster, 'worker-listening');
    const rest = await sendRandom(long, 28 * 1024 * 1024);
    const result = await echoed;
    await reloaded;
    const afterReload = outcomes.length;
    // And connections after the reload, still in the loop.
    while (outcomes.length < afterReload + 40) await new Promise((r) => setImmediate(r));
    looping = false;
    await loops;

    t.is(result.error, undefined);
    t.is(result.bytes, 32 * 1024 * 1024, 'the long transfer came back whole');
    t.truthy(rest);
    const failed = outcomes.filter((o) => !o.ok);
    t.log(
      `${outcomes.length} connections opened during the run, ${afterReload} before the reload resolved; failures: ${failed.length}`,
    );
    t.deepEqual(failed, [], 'no connection refused or reset');
    t.deepEqual(exits.map((e) => e.pid).sort(), [...before].sort(), 'the old generation exited');
    t.true(
      exits.every((e) => e.expected && e.code === 0 && e.signal === null),
      `the old workers drained and exited cleanly: ${JSON.stringify(exits)}`,
    );
    t.true(
      cluster.list().every((w) => w.generation === 2),
      'generation 2 serves',
    );
    // Totals survive the reload: the old workers' final counters are kept beside the new ones'.
    // (A summary may trail its client's close by a moment: ask until every connection is counted.)
    let stats = await cluster.stats();
    while ((stats.server?.total.closed ?? 0) < outcomes.length + 1) stats = await cluster.stats();
    t.is(stats.server?.total.closed, outcomes.length + 1, 'every connection of both generations is counted once');
    t.true(
      stats.perWorker.every((w) => w.server.total.accepted > 0),
      'each new worker accepted connections',
    );
    // Gauges are the live workers' only: the old generation's limits and pool state went with it.
    const live = stats.perWorker.map((w) => w.server);
    t.is(
      stats.server?.maxConnections,
      live.reduce((n, s) => n + s.maxConnections, 0),
    );
    t.is(
      stats.server?.largeReads.maxBytes,
      live.reduce((n, s) => n + s.largeReads.maxBytes, 0),
    );
    return undefined;
  },
);

test.serial('a reload whose workers cannot start is rejected and the old generation keeps serving', async (t) => {
  if (skip) return t.log(`skipped: ${skip}`) as undefined;
  const up = await echoUpstream(t);
  process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
  const { cluster, port } = await startCluster(t, { workers: 2 });
  const before = cluster.list().map((w) => w.pid);
  process.env.RXR_TEST_FAIL_FROM_GENERATION = '2';
  t.teardown(() => {
    delete process.env.RXR_TEST_FAIL_FROM_GENERATION;
  });
  const err = await t.throwsAsync(cluster.reload(), { code: 'ERR_REDIRECT_WORKER_FAILED' });
  t.regex(err?.message ?? '', /generation 2 refuses to start/);
  t.deepEqual(
    cluster.list().map((w) => w.pid),
    before,
    'generation 1 still serves',
  );
  const outcomes = await Promise.all(Array.from({ length: 10 }, () => oneShot(port)));
  t.true(outcomes.every((o) => o.ok));
  delete process.env.RXR_TEST_FAIL_FROM_GENERATION;
  await cluster.reload();
  t.true(cluster.list().every((w) => w.generation === 2));
  return undefined;
});

test.serial('close() called while start() runs waits for it and stops everything', async (t) => {
  if (skip) return t.log(`skipped: ${skip}`) as undefined;
  const up = await echoUpstream(t);
  process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
  const cluster = createRedirectCluster({
    module: require.resolve('./fixtures/workers-config'),
    listen: { port: 0 },
    workers: 2,
  });
  const exits: number[] = [];
  cluster.on('worker-exit', (info) => exits.push(info.pid ?? 0));
  const started = cluster.start();
  const closed = cluster.close({ timeoutMs: 0 });
  await started;
  await closed;
  t.is(exits.length, 2, 'both workers exited');
  t.deepEqual(cluster.list(), []);
  return undefined;
});

test.serial('a worker restarted while a reload begins is drained with the old generation (no orphan)', async (t) => {
  if (skip) return t.log(`skipped: ${skip}`) as undefined;
  const up = await echoUpstream(t);
  process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
  const { cluster, port } = await startCluster(t, { workers: 2, spare: false });
  const victim = cluster.list()[0] as WorkerProcessInfo;
  const exited = new Promise<void>((resolve) =>
    cluster.on('worker-exit', (info) => {
      if (info.pid === victim.pid) resolve();
    }),
  );
  process.kill(victim.pid as number, 'SIGKILL');
  await exited;
  // The replacement is being forked (restart at once) while the reload starts.
  await cluster.reload();
  t.deepEqual(
    cluster.list().map((w) => w.generation),
    [2, 2],
  );
  // Every child process of this test is a worker the cluster knows: none was left behind.
  const children = (): number[] =>
    readdirSync('/proc/self/task').flatMap((task) =>
      readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number),
    );
  await eachTurnUntil(() => children().length === 2);
  t.deepEqual(
    children().sort(),
    cluster
      .list()
      .map((w) => w.pid)
      .sort(),
  );
  t.true((await oneShot(port)).ok);
  return undefined;
});
