import type { Registry } from 'prom-client';
import type { RedirectServer } from '../server/server';
import type { CloseSummary } from '../common/types';
import { zeroCopyStats } from '../zero-copy/engine';
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

const CONNECT_BUCKETS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const LENGTH_BUCKETS_MS = [1, 10, 100, 1000, 10_000, 60_000, 300_000, 1_800_000, 3_600_000, 21_600_000];

const COUNTERS: Readonly<Record<string, { help: string; labels: string[] }>> = {
  rxredirect_downstream_cx_total: { help: 'Connections accepted', labels: [] },
  rxredirect_downstream_cx_closed_total: { help: 'Connections closed, by close reason', labels: ['reason'] },
  rxredirect_downstream_cx_accept_errors_total: { help: 'Failed accept(2) calls, by errno', labels: ['errno'] },
  rxredirect_bytes_total: {
    help: 'Bytes written to the receiving socket of closed connections, by direction and data path',
    labels: ['direction', 'path'],
  },
  rxredirect_flow_control_paused_reading_total: {
    help: 'Times reading from the sender stopped for flow control, by direction',
    labels: ['direction'],
  },
  rxredirect_resolve_failures_total: {
    help: 'Flows that found no redirect record, by mechanism',
    labels: ['mechanism'],
  },
};

/** Throws ERR_REDIRECT_METRICS_UNAVAILABLE when prom-client is not installed. */
export function createMetrics(options: MetricsOptions = {}): RedirectMetrics {
  const prom = promClient();
  const registry: Registry = new prom.Registry();
  registry.setDefaultLabels({ worker: options.worker ?? '0' });
  if (options.processMetrics !== false) prom.collectDefaultMetrics({ register: registry });

  const servers = new Set<RedirectServer>();
  /** Final counts of retired servers: counters never go back across a reload. */
  const retired = new SampleSums();
  let current = new SampleSums();
  /** One read of every server's stats() per scrape, shared by the collectors. */
  let scrape = 0;
  let readFor = -1;
  const refresh = (): SampleSums => {
    if (readFor !== scrape) {
      readFor = scrape;
      current = new SampleSums().add(retired.all());
      for (const s of servers) current.add(counterSamples(s.stats()));
    }
    return current;
  };

  for (const [name, { help, labels }] of Object.entries(COUNTERS)) {
    new prom.Counter({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels: l, value } of refresh().of(name)) this.inc(l, value);
      },
    });
  }
  const liveGauge = (name: string, help: string, read: () => number | undefined): void => {
    new prom.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const v = read();
        if (v === undefined) this.reset();
        else this.set(v);
      },
    });
  };
  const sumLive = (pick: (s: ReturnType<RedirectServer['stats']>) => number): number => {
    let n = 0;
    for (const s of servers) n += pick(s.stats());
    return n;
  };
  liveGauge('rxredirect_downstream_cx_active', 'Connections open now', () => sumLive((s) => s.live.connections));
  liveGauge('rxredirect_downstream_cx_limit', 'Connection limit in force', () => {
    // 'auto' servers share one process budget: the largest limit is the process's.
    let max = 0;
    for (const s of servers) max = Math.max(max, s.stats().maxConnections);
    return servers.size === 0 ? undefined : max;
  });
  new prom.Gauge({
    name: 'rxredirect_active_bytes',
    help: 'Bytes read so far by the connections open now, by direction',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      this.set(
        { direction: 'upstream' },
        sumLive((s) => s.live.bytesUpstream),
      );
      this.set(
        { direction: 'downstream' },
        sumLive((s) => s.live.bytesDownstream),
      );
    },
  });
  liveGauge('rxredirect_zero_copy_pipes', 'Splice pipes in use', () => zeroCopyStats()?.pipes);
  liveGauge('rxredirect_zero_copy_pipes_limit', 'Splice pipe budget (maxPipes)', () => zeroCopyStats()?.maxPipes);
  liveGauge('rxredirect_zero_copy_pipe_bytes', 'Pipe buffer bytes reserved', () => zeroCopyStats()?.pipeBytes);
  liveGauge(
    'rxredirect_zero_copy_pipe_bytes_limit',
    'Pipe buffer byte budget (maxPipeBytes)',
    () => zeroCopyStats()?.maxPipeBytes,
  );

  const connectMs = new prom.Histogram({
    name: 'rxredirect_upstream_cx_connect_ms',
    help: 'Time from connect(2) to the upstream connected, ms',
    buckets: CONNECT_BUCKETS_MS,
    registers: [registry],
  });
  const lengthMs = new prom.Histogram({
    name: 'rxredirect_downstream_cx_length_ms',
    help: 'Connection duration from accept to close, ms',
    buckets: LENGTH_BUCKETS_MS,
    registers: [registry],
  });
  const observe = (summary: CloseSummary): void => {
    lengthMs.observe(summary.durationMs);
    if (summary.connectMs !== undefined) connectMs.observe(summary.connectMs);
  };

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
    text() {
      scrape++;
      return registry.metrics();
    },
    get contentType() {
      return registry.contentType;
    },
    json() {
      scrape++;
      return registry.getMetricsAsJSON();
    },
  };
}
