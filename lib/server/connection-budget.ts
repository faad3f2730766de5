import { openFileCount, openFileLimit } from '../platform/fd-limit';

/**
 * `limits.maxConnections: 'auto'` (the default): how many connections this process can hold
 * before it runs out of descriptors, so that a flood is refused at accept ('max-connections',
 * counted) rather than failing in accept(2), connect(2), pipe(2) or a log write (docs/api.md).
 *
 * Descriptors per connection, by data path:
 *   JS path         2: the client's and the upstream's sockets.
 *   zero-copy path  +4 per spliced direction: the engine dups both sockets and holds a pipe
 *                   (two ends), so a connection spliced both ways holds 10.
 * The engine holds at most `maxPipes` pipes, so the zero-copy share is bounded by 4 × maxPipes;
 * it gets at most half of what is left, and a splice that finds no descriptor stays on the JS
 * path (native/splice-engine.cc), so the reserve is a preference, never a failure.
 */
export const FDS_PER_CONNECTION = 2;
export const FDS_PER_SPLICED_DIRECTION = 4;
/** Kept free for what is not a connection: logs, metrics scrapes, DNS, a reload's new listener, the acceptor's reserve. */
export const FD_HEADROOM = 64;

export interface BudgetInputs {
  /** The soft RLIMIT_NOFILE; undefined or Infinity: no limit. */
  readonly nofile: number | undefined;
  /** Descriptors already open. */
  readonly inUse: number;
  /** The zero-copy engine's pipe cap (`maxPipes`), or 0 without the engine or with zeroCopy 'off'. */
  readonly zeroCopyPipes: number;
}

/** The connection limit for a process with these descriptors; Infinity with no limit. */
export function deriveMaxConnections({ nofile, inUse, zeroCopyPipes }: BudgetInputs): number {
  if (nofile === undefined || !Number.isFinite(nofile)) return Number.POSITIVE_INFINITY;
  const available = Math.max(0, nofile - inUse - FD_HEADROOM);
  const zeroCopy = Math.min(FDS_PER_SPLICED_DIRECTION * zeroCopyPipes, Math.floor(available / 2));
  return Math.max(1, Math.floor((available - zeroCopy) / FDS_PER_CONNECTION));
}

/**
 * One budget per process (module state is per thread: worker threads would each need their share),
 * shared by every server whose limit is 'auto': a reload's old and new generation, or several
 * listeners, draw on the same descriptors. Derived once, at the first listen().
 */
class ProcessBudget {
  live = 0;
  private derived: number | undefined;

  limit(zeroCopyPipes: number): number {
    this.derived ??= deriveMaxConnections({
      nofile: openFileLimit(),
      inUse: openFileCount() ?? 0,
      zeroCopyPipes,
    });
    return this.derived;
  }
}

export const processBudget = new ProcessBudget();
