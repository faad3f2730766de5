import type { ServerStats } from '../server/server-stats';

/** One counter value of one label set, as read from `stats()`. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The monotonic counters of a server's stats(), as metric samples (docs/metrics.md). */
export function counterSamples(s: ServerStats): Sample[] {
  const out: Sample[] = [{ name: 'rxredirect_downstream_cx_total', labels: {}, value: s.total.accepted }];
  for (const [reason, value] of Object.entries(s.reasons)) {
    out.push({ name: 'rxredirect_downstream_cx_closed_total', labels: { reason }, value: value ?? 0 });
  }
  for (const [errno, value] of Object.entries(s.acceptErrors)) {
    out.push({ name: 'rxredirect_downstream_cx_accept_errors_total', labels: { errno }, value });
  }
  for (const direction of ['upstream', 'downstream'] as const) {
    const bytes = s.dataPaths.bytes[direction];
    out.push({ name: 'rxredirect_bytes_total', labels: { direction, path: 'js' }, value: bytes.js });
    out.push({ name: 'rxredirect_bytes_total', labels: { direction, path: 'zero-copy' }, value: bytes.zeroCopy });
    out.push({
      name: 'rxredirect_flow_control_paused_reading_total',
      labels: { direction },
      value: s.pauses[direction],
    });
  }
  for (const [mechanism, value] of Object.entries(s.resolveFailures)) {
    out.push({ name: 'rxredirect_resolve_failures_total', labels: { mechanism }, value });
  }
  return out;
}

/** Adds samples of the same name and labels. */
export class SampleSums {
  private readonly sums = new Map<string, Map<string, { labels: Sample['labels']; value: number }>>();

  add(samples: readonly Sample[]): this {
    for (const { name, labels, value } of samples) {
      let byLabels = this.sums.get(name);
      if (!byLabels) {
        byLabels = new Map();
        this.sums.set(name, byLabels);
      }
      const key = JSON.stringify(labels);
      const entry = byLabels.get(key);
      if (entry) entry.value += value;
      else byLabels.set(key, { labels, value });
    }
    return this;
  }

  of(name: string): Iterable<{ labels: Sample['labels']; value: number }> {
    return this.sums.get(name)?.values() ?? [];
  }

  all(): Sample[] {
    return [...this.sums].flatMap(([name, m]) => [...m.values()].map((e) => ({ name, ...e })));
  }
}
