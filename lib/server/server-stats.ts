import type { CloseReason, CloseSummary, RedirectMechanism } from '../common/types';
import { type LargeReadStats, largeReadStats } from '../net/slab-pool';

/** Bytes written on each data path (JS, or moved by the kernel's zero-copy relay). */
export interface PathBytes {
  readonly js: number;
  readonly zeroCopy: number;
}

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
    /** The same bytes by direction: `upstream` is client → destination. */
    readonly bytes: { readonly upstream: PathBytes; readonly downstream: PathBytes };
  };
  /** Closed flows' flow-control pauses (reading from the sender stopped), by the direction paused. */
  readonly pauses: { readonly upstream: number; readonly downstream: number };
  /** Flows that found no record ('resolve-failed'), by the server's resolve mechanism. */
  readonly resolveFailures: Readonly<Record<string, number>>;
  /** Live flows above this are refused at accept ('max-connections'): the option, or derived from the open-file limit. */
  readonly maxConnections: number;
  /** The large-read slab pool (process-wide, shared by every server): budget, bytes leased, refusals. */
  readonly largeReads: LargeReadStats;
}

const GRACEFUL = new Set<CloseReason>(['client-end', 'upstream-end']);

/** A flow that ended by a FIN from either side, not by a fault. */
export function isGraceful(reason: CloseReason): boolean {
  return GRACEFUL.has(reason);
}

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
  private readonly bytes = { upstream: { js: 0, zeroCopy: 0 }, downstream: { js: 0, zeroCopy: 0 } };
  private readonly pauses = { upstream: 0, downstream: 0 };
  private resolveFailed = 0;

  /** `mechanism`: the server's resolver, which names its resolve failures. */
  constructor(private readonly mechanism: RedirectMechanism) {}

  acceptError(code: string): void {
    this.acceptErrors[code] = (this.acceptErrors[code] ?? 0) + 1;
  }

  closed(summary: CloseSummary): void {
    this.total.closed++;
    this.total.bytesUpstream += summary.upstream.bytesRead;
    this.total.bytesDownstream += summary.downstream.bytesRead;
    this.reasons[summary.reason] = (this.reasons[summary.reason] ?? 0) + 1;
    this.paths[summary.path] = (this.paths[summary.path] ?? 0) + 1;
    if (summary.reason === 'resolve-failed') this.resolveFailed++;
    for (const side of ['upstream', 'downstream'] as const) {
      const d = summary[side];
      const counts = this.dataPaths[side];
      counts[d.path] = (counts[d.path] ?? 0) + 1;
      const js = d.bytesWritten - d.zeroCopyBytes;
      this.dataPaths.zeroCopyBytes += d.zeroCopyBytes;
      this.dataPaths.jsBytes += js;
      this.bytes[side].zeroCopy += d.zeroCopyBytes;
      this.bytes[side].js += js;
      this.pauses[side] += d.pauses;
    }
  }

  snapshot(live: ServerStats['live'], maxConnections: number): ServerStats {
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
        bytes: { upstream: { ...this.bytes.upstream }, downstream: { ...this.bytes.downstream } },
      },
      pauses: { ...this.pauses },
      resolveFailures: this.resolveFailed > 0 ? { [this.mechanism]: this.resolveFailed } : {},
      maxConnections,
      largeReads: largeReadStats(),
    };
  }
}
