import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server, Socket } from 'node:net';
import { configureZeroCopy, zeroCopyStats } from '../lib/index';
import { closedAtLeast, dial, drain, echoUpstream, startRedirect } from './helpers/net';
import { zeroCopyTest } from './helpers/modes';

// Own worker: counts this process's fds and threads.
const zcTest = zeroCopyTest;

const count = (dir: string): number => readdirSync(dir).length;

const failures: string[] = [];

/** Resolves once every socket the upstream accepted has closed (its fd released). */
function upstreamIdle(up: { server: Server; sockets: Set<Socket> }): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (up.sockets.size > 0) {
        for (const s of up.sockets) s.once('close', () => setImmediate(check));
        return;
      }
      resolve();
    };
    check();
  });
}

async function relayOnce(port: number): Promise<boolean> {
  const c = await dial(port);
  const got = drain(c);
  c.end('0123456789abcdef');
  const r = await got;
  if (!c.closed) await once(c, 'close');
  if (r.bytes !== 16 && failures.length < 5) failures.push(`${r.bytes} bytes, ${r.error?.code ?? 'no error'}`);
  return r.bytes === 16;
}

zcTest('after 10,000 short spliced relays, fds and threads are back where they started', async (t) => {
  t.timeout(60_000);
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  // Warm-up: starts the engine's fixed thread pool (and libuv's lazily created
  // bits) so the baseline includes them.
  for (let i = 0; i < 20; i++) await relayOnce(port);
  // libuv creates its whole threadpool on first use; make sure that is before the baseline.
  await readFile('/proc/self/status');
  await closedAtLeast(server, 20);
  await upstreamIdle(up);
  // The pool's free pipes (two fds each) are the engine's, not a relay's: closed here so the
  // baseline has none, and counted below.
  configureZeroCopy({});
  const fds0 = count('/proc/self/fd');
  const threads0 = count('/proc/self/task');
  const engineThreads = zeroCopyStats()?.threads ?? 0;
  t.is(zeroCopyStats()?.pipes, 0);
  t.true(engineThreads >= 1);

  const total = 10_000;
  const concurrency = 50;
  let next = 0;
  let ok = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        if (await relayOnce(port)) ok++;
      }
    }),
  );
  t.is(ok, total, failures.join('; '));
  await closedAtLeast(server, total + 20);
  const stats = server.stats();
  t.is(stats.total.closed, total + 20);
  // An echo upstream closes only after the client's FIN: every flow is client-end, however
  // the engine's reports and Node's own 'end' events happen to interleave.
  t.is(stats.reasons['client-end'], total + 20, JSON.stringify(stats.reasons));
  t.true((stats.dataPaths.upstream['zero-copy'] ?? 0) >= total, JSON.stringify(stats.dataPaths));
  const engine = zeroCopyStats();
  t.is(engine?.relays, 0);
  // every pipe went back to the pool; the pool holds what it kept (closed after 1 s unused)
  t.is(engine?.pipesInUse, 0);
  const pooled = engine?.pooledPipes ?? 0;
  t.is(engine?.pipes, pooled);
  t.is(engine?.threads, engineThreads);
  // Sockets in TIME_WAIT hold no fd; a closed socket's fd is released by libuv right away.
  await upstreamIdle(up);
  // The pool's free pipes are the engine's, not a relay's: closing them (synchronously, after any
  // trim in flight) leaves exactly the baseline.
  configureZeroCopy({});
  t.is(zeroCopyStats()?.pipes, 0);
  const fds1 = count('/proc/self/fd');
  const threads1 = count('/proc/self/task');
  t.log(`fds ${fds0} → ${fds1} (${pooled} pooled pipes closed first), threads ${threads0} → ${threads1}`);
  t.is(fds1, fds0);
  t.is(threads1, threads0);
});
