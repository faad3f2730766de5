import test from 'ava';
import type { WorkerProcessInfo } from '../lib/workers/index';
import { fork } from 'node:child_process';
import { connect } from 'node:net';
import { drain, eachTurnUntil, echoUpstream, sendRandom } from './helpers/net';
import { EchoRounds, nextEvent, oneShot, startCluster } from './helpers/workers';

const skip = process.platform !== 'linux' ? 'the workers host needs Linux (SO_REUSEPORT, the addon)' : undefined;

test.serial(
  'SIGKILL of one worker under load: its connections end, the others finish intact, new ones are served',
  async (t) => {
    if (skip) return t.log(`skipped: ${skip}`) as undefined;
    const up = await echoUpstream(t);
    process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
    process.env.RXR_TEST_ZERO_COPY = 'auto';
    const { cluster, port } = await startCluster(t, { workers: 2, summaries: true });
    // Which worker served which client: the summaries say (by the client's port), the dead one sends none.
    const servedBy = new Map<number, number | undefined>();
    cluster.on('closed', (s, info) => servedBy.set((s.peer as { port: number }).port, info.pid));

    const clients = Array.from({ length: 24 }, () => new EchoRounds(port));
    await Promise.all(clients.map((c) => c.started()));
    t.true(
      clients.every((c) => c.rounds > 0),
      'every connection is moving bytes',
    );

    const victim = cluster.list()[0] as WorkerProcessInfo;
    const exited = new Promise<number>((resolve) => {
      cluster.on('worker-exit', (info) => {
        if (info.pid === victim.pid) resolve(performance.now());
      });
    });
    const replaced = new Promise<WorkerProcessInfo>((resolve) => {
      cluster.on('worker-listening', (info) => {
        if (info.slot === victim.slot && info.pid !== victim.pid) resolve(info);
      });
    });
    process.kill(victim.pid as number, 'SIGKILL');
    const exitAt = await exited;

    // New connections right away: those hashed to the dead worker's socket wait in its queue (the
    // primary holds it) until the replacement accepts; none is refused.
    const fresh = Promise.all(Array.from({ length: 20 }, () => oneShot(port, 64 * 1024)));
    const replacement = await replaced;
    t.log(
      `slot ${victim.slot} served again by pid ${replacement.pid} ${Math.round(performance.now() - exitAt)} ms after the exit`,
    );
    const freshOutcomes = await fresh;
    t.deepEqual(
      freshOutcomes.filter((o) => !o.ok),
      [],
      'every new connection was served',
    );

    for (const c of clients) c.stop();
    const results = await Promise.all(clients.map((c) => c.result));
    // Wait for the survivors' summaries (each intact client closed after its proxy did).
    const intact = clients.filter((_, i) => results[i]?.intact);
    while (intact.some((c) => !servedBy.has(c.localPort))) await nextEvent(cluster, 'closed');
    const broken = clients.filter((_, i) => !results[i]?.intact);
    t.log(`${broken.length} of ${clients.length} connections were on the killed worker`);
    t.true(broken.length > 0, 'the killed worker held connections');
    t.true(intact.length > 0, 'the other worker held connections');
    for (const c of broken) t.false(servedBy.has(c.localPort), 'a broken connection was the killed worker’s');
    for (const c of intact) t.not(servedBy.get(c.localPort), victim.pid, 'an intact one was another worker’s');

    const stats = await cluster.stats();
    t.is(stats.workers, 2, 'two workers again');
    return undefined;
  },
);

test.serial(
  'connections queued on a dead worker’s socket are served by its replacement (the primary holds the socket)',
  async (t) => {
    if (skip) return t.log(`skipped: ${skip}`) as undefined;
    const up = await echoUpstream(t);
    process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
    const { cluster, port } = await startCluster(t, { workers: 1 });
    const victim = cluster.list()[0] as WorkerProcessInfo;
    // Stopped, the worker accepts nothing: the kernel completes the handshakes and queues them.
    process.kill(victim.pid as number, 'SIGSTOP');
    const clients = Array.from({ length: 5 }, () => connect({ port, host: '127.0.0.1', allowHalfOpen: true }));
    const echoes = clients.map((c) => {
      c.on('error', () => {});
      return drain(c);
    });
    await Promise.all(clients.map((c) => new Promise((resolve) => c.once('connect', resolve))));
    const sent = await Promise.all(clients.map((c) => sendRandom(c, 16 * 1024)));
    const replaced = new Promise<void>((resolve) => {
      cluster.on('worker-listening', (info) => {
        if (info.pid !== victim.pid) resolve();
      });
    });
    process.kill(victim.pid as number, 'SIGKILL');
    await replaced;
    const results = await Promise.all(echoes);
    t.deepEqual(
      results.map((r) => r.sha256),
      sent,
      'every queued connection was served by the replacement, intact',
    );
    return undefined;
  },
);

test.serial('workers whose primary is killed stop accepting, drain and exit (no orphans)', async (t) => {
  if (skip) return t.log(`skipped: ${skip}`) as undefined;
  const up = await echoUpstream(t);
  process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
  const primary = fork(require.resolve('./fixtures/workers-primary'), [], { stdio: 'inherit' });
  t.teardown(() => primary.kill('SIGKILL'));
  const { port, pids } = await new Promise<{ port: number; pids: number[] }>((resolve) =>
    primary.once('message', (m) => resolve(m as { port: number; pids: number[] })),
  );
  t.is(pids.length, 2);
  t.true((await oneShot(port)).ok, 'the cluster serves');
  primary.kill('SIGKILL');
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  // Another process's exit has no event here: look each turn of the loop until both are gone.
  await eachTurnUntil(() => pids.every((pid) => !alive(pid)));
  t.pass();
  return undefined;
});
