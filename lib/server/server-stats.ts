import type { CloseReason, CloseSummary } from '../common/types';

export interface ServerStats {
  readonly live: { readonly connections: number; readonly bytesUpstream: number; readonly bytesDownstream: number };
  readonly total: {
    readonly accepted: number;
    readonly connections: number;
    readonly closed: number;
    readonly bytesUpstream: number;
    readonly bytesDownstream: number;
  };
  /** Closed connections by reason. */
  readonly reasons: Readonly<Partial<Record<CloseReason, number>>>;
  /** Closed connections whose reason is a fault, by reason. */
  readonly errors: Readonly<Partial<Record<CloseReason, number>>>;
  /** Connections by the data path that carried them. */
  readonly paths: Readonly<Record<string, number>>;
  /**
   * Failed accept(2) calls by errno (EMFILE, ENFILE, ECONNABORTED, …). Connections that had to be
   * reset for want of descriptors are also closed flows with reason 'accept-failed'.
   */
  readonly acceptErrors: Readonly<Record<string, number>>;
  /**
   * Closed connections' directions by the path that carried them ('js',
   * 'zero-copy', 'mixed', 'none'), and the bytes written on each path.
   */
  readonly dataPaths: {
    readonly upstream: Readonly<Record<string, number>>;
    readonly downstream: Readonly<Record<string, number>>;
    readonly jsBytes: number;
    readonly zeroCopyBytes: number;
  };
}

const GRACEFUL = new Set<CloseReason>(['client-end', 'upstream-end']);

/** A server's running totals; `snapshot()` adds the live figures the server passes in. */
export class StatsCounters {
  readonly total = { accepted: 0, connections: 0, closed: 0, bytesUpstream: 0, bytesDownstream: 0 };
  private readonly reasons: Partial<Record<CloseReason, number>> = {};
  private readonly paths: Record<string, number> = {};
  private readonly acceptErrors: Record<string, number> = {};
  private readonly dataPaths = {
    upstream: {} as Record<string, number>,
    downstream: {} as Record<string, number>,
    jsBytes: 0,
    zeroCopyBytes: 0,
  };

  acceptError(code: string): void {
    this.acceptErrors[code] = (this.acceptErrors[code] ?? 0) + 1;
  }

  closed(summary: CloseSummary): void {
    this.total.closed++;
    this.total.bytesUpstream += summary.upstream.bytesRead;
    this.total.bytesDownstream += summary.downstream.bytesRead;
    this.reasons[summary.reason] = (this.reasons[summary.reason] ?? 0) + 1;
    this.paths[summary.path] = (this.paths[summary.path] ?? 0) + 1;
    for (const side of ['upstream', 'downstream'] as const) {
      const d = summary[side];
      const counts = this.dataPaths[side];
      counts[d.path] = (counts[d.path] ?? 0) + 1;
      this.dataPaths.zeroCopyBytes += d.zeroCopyBytes;
      this.dataPaths.jsBytes += d.bytesWritten - d.zeroCopyBytes;
    }
  }

  snapshot(live: ServerStats['live']): ServerStats {
    const errors: Partial<Record<CloseReason, number>> = {};
    for (const [reason, n] of Object.entries(this.reasons) as [CloseReason, number][]) {
      if (!GRACEFUL.has(reason)) errors[reason] = n;
    }
    return {
      live,
      total: { ...this.total },
      reasons: { ...this.reasons },
      errors,
      paths: { ...this.paths },
      acceptErrors: { ...this.acceptErrors },
      dataPaths: {
        upstream: { ...this.dataPaths.upstream },
        downstream: { ...this.dataPaths.downstream },
        jsBytes: this.dataPaths.jsBytes,
        zeroCopyBytes: this.dataPaths.zeroCopyBytes,
      },
    };
  }
}
