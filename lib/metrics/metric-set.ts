import type { Registry } from 'prom-client';
import type { CloseSummary } from '../common/types';
import type { SpliceEngineStats } from '../platform/addon';
import type { ServerStats } from '../server/server-stats';
import type { Prom } from './prom-client';
import type { Sample } from './samples';

// The metric family itself, on a prom-client registry. Its own module so that the public
// declarations (lib/metrics/metrics.ts) never name prom-client, an optional peer dependency: a
// TypeScript user without it still compiles with skipLibCheck off.

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
