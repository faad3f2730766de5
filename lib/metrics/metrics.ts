import type { CloseSummary } from '../common/types';
import type { RedirectServer } from '../server/server';
import { zeroCopyStats } from '../zero-copy/engine';
import { MetricSet } from './metric-set';
import { promClient } from './prom-client';
import { counterSamples, SampleSums } from './samples';

/** docs/metrics.md lists every metric; counters and gauges are read from stats() at scrape time. */

export interface MetricsOptions {
  /** The `worker` label of every series. Default '0'. */
  worker?: string;
  /** prom-client's default process metrics (CPU, memory, event loop, descriptors). Default true. */
  processMetrics?: boolean;
}

/** The metrics of one process (one worker); prom-client stays out of its type. */
export interface RedirectMetrics {
  /**
   * Counts this server from now on. Returns `retire`: call it once the server's close() has
   * resolved (a reload's old generation); its final counts stay in the totals.
   */
  track(server: RedirectServer): () => void;
  /** The exposition text, as served at /metrics. */
  text(): Promise<string>;
  readonly contentType: string;
  /** Plain data for aggregateMetrics() in the process that serves /metrics. */
  json(): Promise<unknown[]>;
}

/** Throws ERR_REDIRECT_METRICS_UNAVAILABLE when prom-client is not installed. */
export function createMetrics(options: MetricsOptions = {}): RedirectMetrics {
  const prom = promClient();
  const worker = options.worker ?? '0';
  const servers = new Set<RedirectServer>();
  /** Final counts of retired servers: counters never go back across a reload. */
  const retired = new SampleSums();
  const set = new MetricSet(prom, () => {
    const counters = new SampleSums().add(retired.all());
    const live = { connections: 0, bytesUpstream: 0, bytesDownstream: 0 };
    // 'auto' servers share one process budget: the largest limit is the process's.
    let maxConnections: number | undefined;
    for (const server of servers) {
      const s = server.stats();
      counters.add(counterSamples(s));
      live.connections += s.live.connections;
      live.bytesUpstream += s.live.bytesUpstream;
      live.bytesDownstream += s.live.bytesDownstream;
      maxConnections = Math.max(maxConnections ?? 0, s.maxConnections);
    }
    return [{ worker, counters: counters.all(), live, maxConnections, zeroCopy: zeroCopyStats() }];
  });
  if (options.processMetrics !== false) {
    // Only the process metrics carry it this way; ours set `worker` themselves.
    set.registry.setDefaultLabels({ worker });
    prom.collectDefaultMetrics({ register: set.registry });
  }
  const observe = (summary: CloseSummary): void => set.observe(summary, worker);
  return {
    track(server) {
      if (servers.has(server)) return () => {};
      servers.add(server);
      server.on('closed', observe);
      let done = false;
      return () => {
        if (done) return;
        done = true;
        retired.add(counterSamples(server.stats()));
        servers.delete(server);
        server.off('closed', observe);
      };
    },
    text: () => set.text(),
    get contentType() {
      return set.registry.contentType;
    },
    json: () => set.json(),
  };
}
