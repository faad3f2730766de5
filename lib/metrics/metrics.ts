import type { Registry } from 'prom-client';
import type { CloseSummary } from '../common/types';
import type { SpliceEngineStats } from '../platform/addon';
import type { RedirectServer } from '../server/server';
import type { ServerStats } from '../server/server-stats';
import { zeroCopyStats } from '../zero-copy/engine';
import { type Prom, promClient } from './prom-client';
import { counterSamples, type Sample, SampleSums } from './samples';

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

/** What one worker's series are made of, read once per scrape. */
export interface WorkerFigures {
  readonly worker: string;
  /** Monotonic counters (counterSamples of its servers, retired ones included). */
  readonly counters: readonly Sample[];
  readonly live: ServerStats['live'];
  readonly maxConnections: number | undefined;
  readonly zeroCopy: SpliceEngineStats | undefined;
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

const GAUGES: Readonly<Record<string, { help: string; read: (w: WorkerFigures) => number | undefined }>> = {
  rxredirect_downstream_cx_active: { help: 'Connections open now', read: (w) => w.live.connections },
  rxredirect_downstream_cx_limit: { help: 'Connection limit in force', read: (w) => w.maxConnections },
  rxredirect_zero_copy_pipes: { help: 'Splice pipes open (in use or pooled)', read: (w) => w.zeroCopy?.pipes },
  rxredirect_zero_copy_pipes_limit: { help: 'Splice pipe budget (maxPipes)', read: (w) => w.zeroCopy?.maxPipes },
  rxredirect_zero_copy_pipe_bytes: { help: 'Pipe buffer bytes reserved', read: (w) => w.zeroCopy?.pipeBytes },
  rxredirect_zero_copy_pipe_bytes_limit: {
    help: 'Pipe buffer byte budget (maxPipeBytes)',
    read: (w) => w.zeroCopy?.maxPipeBytes,
  },
};

/** The metric family on a registry: figures are read once per scrape; histograms are fed summaries. */
export class MetricSet {
  readonly registry: Registry;
  private scrape = 0;
  private readFor = -1;
  private figures: Promise<readonly WorkerFigures[]> = Promise.resolve([]);
  private readonly connectMs;
  private readonly lengthMs;

  constructor(prom: Prom, read: () => readonly WorkerFigures[] | Promise<readonly WorkerFigures[]>) {
    const registry = new prom.Registry();
    this.registry = registry;
    const figures = (): Promise<readonly WorkerFigures[]> => {
      if (this.readFor !== this.scrape) {
        this.readFor = this.scrape;
        this.figures = Promise.resolve(read());
      }
      return this.figures;
    };
    for (const [name, { help, labels }] of Object.entries(COUNTERS)) {
      new prom.Counter({
        name,
        help,
        labelNames: [...labels, 'worker'],
        registers: [registry],
        async collect() {
          const all = await figures();
          this.reset();
          for (const w of all) {
            for (const s of w.counters) if (s.name === name) this.inc({ ...s.labels, worker: w.worker }, s.value);
          }
        },
      });
    }
    for (const [name, { help, read: pick }] of Object.entries(GAUGES)) {
      new prom.Gauge({
        name,
        help,
        labelNames: ['worker'],
        registers: [registry],
        async collect() {
          const all = await figures();
          this.reset();
          for (const w of all) {
            const v = pick(w);
            if (v !== undefined) this.set({ worker: w.worker }, v);
          }
        },
      });
    }
    new prom.Gauge({
      name: 'rxredirect_active_bytes',
      help: 'Bytes read so far by the connections open now, by direction',
      labelNames: ['direction', 'worker'],
      registers: [registry],
      async collect() {
        const all = await figures();
        this.reset();
        for (const w of all) {
          this.set({ direction: 'upstream', worker: w.worker }, w.live.bytesUpstream);
          this.set({ direction: 'downstream', worker: w.worker }, w.live.bytesDownstream);
        }
      },
    });
    this.connectMs = new prom.Histogram({
      name: 'rxredirect_upstream_cx_connect_ms',
      help: 'Time from connect(2) to the upstream connected, ms',
      labelNames: ['worker'],
      buckets: CONNECT_BUCKETS_MS,
      registers: [registry],
    });
    this.lengthMs = new prom.Histogram({
      name: 'rxredirect_downstream_cx_length_ms',
      help: 'Connection duration from accept to close, ms',
      labelNames: ['worker'],
      buckets: LENGTH_BUCKETS_MS,
      registers: [registry],
    });
  }

  /** A closed flow (a close summary, or its copy from another process). */
  observe(summary: Pick<CloseSummary, 'durationMs' | 'connectMs'>, worker: string): void {
    this.lengthMs.observe({ worker }, summary.durationMs);
    if (typeof summary.connectMs === 'number') this.connectMs.observe({ worker }, summary.connectMs);
  }

  text(): Promise<string> {
    this.scrape++;
    return this.registry.metrics();
  }

  json(): Promise<unknown[]> {
    this.scrape++;
    return this.registry.getMetricsAsJSON();
  }
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
