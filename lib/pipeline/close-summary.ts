import type { RedirectError } from '../common/errors';
import type {
  CloseReason,
  CloseSummary,
  DataPath,
  DirectionSummary,
  Endpoint,
  RedirectRecord,
  TargetAddress,
} from '../common/types';

/** A direction that never ran (the flow ended before its pump existed). */
export const EMPTY_DIRECTION: DirectionSummary = Object.freeze({
  bytesRead: 0,
  reads: 0,
  bytesWritten: 0,
  peakBuffered: 0,
  pauses: 0,
  path: 'none' as const,
  zeroCopyBytes: 0,
});

/** The flow's path from its two directions': a direction that carried nothing does not count. */
function flowPath(up: DataPath | 'mixed', down: DataPath | 'mixed'): DataPath | 'mixed' {
  if (up === 'none') return down;
  if (down === 'none' || down === up) return up;
  return 'mixed';
}

/**
 * Who closed first, from when each side's FIN was seen (0: not seen). The splice engine reports
 * its EOFs through a queue, so a FIN it read first can reach us after the other side's FIN that
 * it caused: the timestamps (the engine's CLOCK_MONOTONIC, the same clock as process.hrtime),
 * not the order of arrival, give the graceful reason.
 */
export function firstEnd(clientAt: number, upstreamAt: number): CloseReason | undefined {
  if (clientAt === 0 && upstreamAt === 0) return undefined;
  if (upstreamAt === 0 || (clientAt !== 0 && clientAt <= upstreamAt)) return 'client-end';
  return 'upstream-end';
}

/** The one summary of a flow, made when both sockets closed. */
export function closeSummary(
  flow: {
    readonly id: number;
    readonly peer?: Endpoint;
    readonly record?: RedirectRecord;
    readonly target?: TargetAddress;
  },
  reason: CloseReason,
  error: RedirectError | undefined,
  startedAt: number,
  directions: { upstream?: DirectionSummary; downstream?: DirectionSummary },
  /** From connect(2) to connected; undefined when the upstream never connected. */
  connectMs?: number,
): CloseSummary {
  const upstream = directions.upstream ?? EMPTY_DIRECTION;
  const downstream = directions.downstream ?? EMPTY_DIRECTION;
  return {
    id: flow.id,
    peer: flow.peer,
    record: flow.record,
    target: flow.target,
    reason,
    error,
    durationMs: performance.now() - startedAt,
    connectMs,
    upstream,
    downstream,
    path: flowPath(upstream.path, downstream.path),
  };
}
