import type { SpliceEngineStats } from '../platform/addon';
import type { ServerStats } from '../server/server-stats';
import type { MetricsSource } from './http';
import { MetricSet, type WorkerFigures } from './metric-set';
import { promClient } from './prom-client';
import { counterSamples, type Sample, SampleSums } from './samples';

/**
 * Metrics of a worker host (lib/workers' RedirectCluster, or anything shaped like it), served by
 * the primary: each scrape asks the workers for their stats() over the host's own channel, and
 * close summaries the host forwards (its `summaries: true`) feed the histograms. Series carry the
 * worker's slot as `worker`. Workers are processes that come and go (a crash, a reload): the last
 * figures seen of a worker process that is gone are kept, so a slot's counters never go back.
 */
export interface WorkerStatsSource {
  stats(): Promise<{
    readonly perWorker: readonly {
      readonly slot: number;
      readonly pid: number | undefined;
      readonly server: ServerStats;
      readonly zeroCopy: SpliceEngineStats | null;
    }[];
    /**
     * The final counters of each slot's worker processes that are gone, when the source keeps
     * them (RedirectCluster does): then a worker that drained between two scrapes still counts.
     */
    readonly retiredPerSlot?: readonly { readonly slot: number; readonly server: ServerStats }[];
  }>;
  on(event: 'closed', listener: (summary: Record<string, unknown>, info: { readonly slot: number }) => void): unknown;
}

export function createClusterMetrics(
  source: WorkerStatsSource,
  options: { processMetrics?: boolean } = {},
): MetricsSource {
  const prom = promClient();
  /** Per slot: counts of its worker processes that are gone, and the last figures of each live one by pid. */
  const slots = new Map<number, { retired: SampleSums; last: Map<number | undefined, Sample[]> }>();
  const set = new MetricSet(prom, async () => {
    const { perWorker, retiredPerSlot } = await source.stats();
    const figures: WorkerFigures[] = [];
    const seen = new Map<number, Set<number | undefined>>();
    if (retiredPerSlot !== undefined) {
      // The source's own record of gone processes replaces the last-seen figures below.
      slots.clear();
      for (const r of retiredPerSlot) {
        slots.set(r.slot, { retired: new SampleSums().add(counterSamples(r.server)), last: new Map() });
      }
    }
    for (const w of perWorker) {
      let slot = slots.get(w.slot);
      if (!slot) {
        slot = { retired: new SampleSums(), last: new Map() };
        slots.set(w.slot, slot);
      }
      slot.last.set(w.pid, counterSamples(w.server));
      seen.set(w.slot, (seen.get(w.slot) ?? new Set()).add(w.pid));
    }
    for (const [number, slot] of slots) {
      // A process of this slot that no longer answers is gone: fold its last figures in.
      for (const [pid, samples] of slot.last) {
        if (seen.get(number)?.has(pid)) continue;
        slot.retired.add(samples);
        slot.last.delete(pid);
      }
      const live = perWorker.filter((w) => w.slot === number);
      const counters = new SampleSums().add(slot.retired.all());
      for (const samples of slot.last.values()) counters.add(samples);
      figures.push({
        worker: String(number),
        counters: counters.all(),
        live: {
          connections: live.reduce((n, w) => n + w.server.live.connections, 0),
          bytesUpstream: live.reduce((n, w) => n + w.server.live.bytesUpstream, 0),
          bytesDownstream: live.reduce((n, w) => n + w.server.live.bytesDownstream, 0),
        },
        // Infinity (no limit) crosses the IPC channel as JSON's null.
        maxConnections:
          live.length > 0
            ? Math.max(...live.map((w) => w.server.maxConnections ?? Number.POSITIVE_INFINITY))
            : undefined,
        zeroCopy: live.find((w) => w.zeroCopy !== null)?.zeroCopy ?? undefined,
      });
    }
    return figures;
  });
  if (options.processMetrics !== false) {
    set.registry.setDefaultLabels({ worker: 'primary' });
    prom.collectDefaultMetrics({ register: set.registry });
  }
  source.on('closed', (summary, info) => {
    const durationMs = summary.durationMs;
    if (typeof durationMs !== 'number') return;
    const connectMs = typeof summary.connectMs === 'number' ? summary.connectMs : undefined;
    set.observe({ durationMs, connectMs }, String(info.slot));
  });
  return {
    text: () => set.text(),
    get contentType() {
      return set.registry.contentType;
    },
  };
}
