// The subject of the workers benchmark, alone in its process (its CPU is its process tree's):
// N worker processes through lib/workers/, or N worker threads, each a RedirectServer on its
// own SO_REUSEPORT socket. Spoken to through Worker (proc.ts).
import { Worker as Thread, isMainThread, workerData } from 'node:worker_threads';
import { createRedirectServer } from '../lib/index';
import { optionalLinux } from '../lib/platform/addon';
import { createRedirectCluster, type RedirectCluster } from '../lib/workers/index';
import { serve } from './proc';

interface ThreadData {
  fd: number;
}

if (!isMainThread) {
  // A worker thread: one server on the fd the host made for it.
  const { fd } = workerData as ThreadData;
  const server = createRedirectServer({
    resolve: { host: '127.0.0.1', port: Number(process.env.RXR_BENCH_UPSTREAM_PORT) },
    zeroCopy: 'off', // the engine is off in worker threads (docs/workers.md)
  });
  void server.listen({ fd });
} else {
  let cluster: RedirectCluster | undefined;
  const threads: Thread[] = [];
  serve({
    start: async (m) => {
      process.env.RXR_BENCH_UPSTREAM_PORT = String(m.upstreamPort);
      process.env.RXR_BENCH_ZERO_COPY = String(m.zeroCopy);
      const workers = Number(m.workers);
      if (m.model === 'processes') {
        cluster = createRedirectCluster({ module: require.resolve('./workers-config'), listen: { port: 0 }, workers });
        return { port: (await cluster.start()).port };
      }
      const addon = optionalLinux();
      if (addon === undefined) throw new Error('needs the addon');
      const first = addon.listenReusePort(4, '127.0.0.1', 0, { backlog: 4096 });
      const port = addon.localAddress(first).port;
      const fds = [first];
      while (fds.length < workers) fds.push(addon.listenReusePort(4, '127.0.0.1', port, { backlog: 4096 }));
      for (const fd of fds) {
        const thread = new Thread(__filename, { workerData: { fd } satisfies ThreadData });
        threads.push(thread);
        await new Promise((resolve) => thread.once('online', resolve));
      }
      return { port };
    },
  });
}
