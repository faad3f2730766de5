// One relay under test, alone in its process so its CPU and RSS can be read from /proc.
// argv[2]: JSON RelayConfig. Answers 'start' with the port, or { unavailable } for a
// subject this build cannot run (zero-copy before the option exists).
import { createServer, type AddressInfo, connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import type { CloseSummary, RedirectServerOptions } from '../lib/index';
import { loadMiddleware } from './chain';
import { serve } from './proc';

export interface RelayConfig {
  kind: 'plain' | 'rx';
  target: { host: string; port: number };
  /** 'none', 'map3' (three pass-through maps each way) or a module path exporting `middleware` or default. */
  middleware?: string;
  zeroCopy?: boolean;
  highWaterMark?: number;
  /** Another build's dist/lib (`bench --baseline`): measures the code before a change in the same run. */
  lib?: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as RelayConfig;
const { createRedirectServer } = (
  config.lib ? require(join(resolve(config.lib), 'index.js')) : require('../lib/index')
) as typeof import('../lib/index');

let peakBuffered = 0;
let closed = 0;
const reasons: Record<string, number> = {};
let stats: () => Record<string, unknown> = () => ({});

function startPlain(): Promise<number> {
  // The reference every README shows: pipe both ways, tear both down on error.
  const server = createServer((c: Socket) => {
    const u = connect(config.target.port, config.target.host);
    const kill = (): void => {
      c.destroy();
      u.destroy();
    };
    c.on('error', kill);
    u.on('error', kill);
    c.pipe(u);
    u.pipe(c);
  });
  return new Promise((r) =>
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => r((server.address() as AddressInfo).port)),
  );
}

async function startRx(): Promise<number | { unavailable: string }> {
  const options: Record<string, unknown> = {
    resolve: config.target,
    middleware: loadMiddleware(config.middleware),
    limits: {
      ...(config.highWaterMark ? { highWaterMark: config.highWaterMark } : {}),
      // RXREDIRECT_BENCH_IDLE_MS=0 measures without the default idle timer (its cost on the hot path).
      ...(process.env.RXREDIRECT_BENCH_IDLE_MS ? { idleTimeoutMs: Number(process.env.RXREDIRECT_BENCH_IDLE_MS) } : {}),
    },
  };
  // The JS subjects ask for zeroCopy 'off' so a build whose default is 'auto' still measures
  // the JS path; a build without the option runs them as they are.
  options.zeroCopy = config.zeroCopy ? 'auto' : 'off';
  let server: ReturnType<typeof createRedirectServer>;
  try {
    server = createRedirectServer(options as unknown as RedirectServerOptions);
  } catch (err) {
    const unknownOption = /zeroCopy/.test((err as Error).message);
    if (config.zeroCopy || !unknownOption) {
      if (config.zeroCopy) return { unavailable: `zeroCopy option rejected: ${(err as Error).message}` };
      throw err;
    }
    delete options.zeroCopy;
    server = createRedirectServer(options as unknown as RedirectServerOptions);
  }
  server.on('closed', (s: CloseSummary) => {
    closed++;
    reasons[s.reason] = (reasons[s.reason] ?? 0) + 1;
    peakBuffered = Math.max(peakBuffered, s.upstream.peakBuffered, s.downstream.peakBuffered);
  });
  stats = () => {
    const s = server.stats();
    // largeReads: builds before the slab budget have none.
    return {
      paths: s.paths,
      dataPaths: s.dataPaths,
      largeReads: s.largeReads,
      highWaterMark: server.config.limits.highWaterMark,
    };
  };
  const address = await server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
  return address.port;
}

serve({
  start: async () => {
    const port = config.kind === 'plain' ? await startPlain() : await startRx();
    return typeof port === 'number' ? { port } : port;
  },
  stats: () => ({ peakBuffered, closed, reasons, ...stats() }),
  // Forked with --expose-gc: the idle-RSS scenario collects the garbage of the accept
  // burst in every Node relay alike before it reads their resident memory.
  gc: () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    return { collected: gc !== undefined };
  },
});
