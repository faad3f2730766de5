import { openFileCount, openFileLimit } from '../platform/fd-limit';
import { configureZeroCopy } from '../zero-copy/engine';

/**
 * `limits.maxConnections: 'auto'` (the default): how many connections this process can hold
 * before it runs out of descriptors, so that a flood is refused at accept ('max-connections',
 * counted) rather than failing in accept(2), connect(2), pipe(2) or a log write (docs/api.md).
 *
 * Descriptors per connection, by data path:
 *   JS path         2: the client's and the upstream's sockets.
 *   zero-copy path  +2 per direction with bytes in flight: a pipe (two ends) from the engine's
 *                   pool; no dups, and an idle spliced connection holds none (docs/zero-copy.md).
 * The pool holds at most `maxPipes` pipes, held or free, so the zero-copy share is 2 × maxPipes,
 * at most half of what is free (maxPipes is lowered to fit); a relay that finds no pipe copies
 * instead (native/splice-pump.cc), so the share is a preference, never a failure.
 */
const FDS_PER_CONNECTION = 2;
const FDS_PER_PIPE = 2;
/** Kept free for what is not a connection: logs, metrics scrapes, DNS, a reload's new listener, the acceptor's reserve. */
const FD_HEADROOM = 64;

export interface BudgetInputs {
  /** The soft RLIMIT_NOFILE; undefined or Infinity: no limit. */
  readonly nofile: number | undefined;
  /** Descriptors already open. */
  readonly inUse: number;
  /** The zero-copy engine's pipe cap (`maxPipes`), or 0 without the engine or with zeroCopy 'off'. */
  readonly zeroCopyPipes: number;
}

/**
 * The connection limit for a process with these descriptors (Infinity with no limit), and the
 * pipes the zero-copy engine may hold within its share (fewer than its `maxPipes` when the share
 * is smaller: the engine takes descriptors until EMFILE otherwise, and the headroom with them).
 */
export function deriveMaxConnections({ nofile, inUse, zeroCopyPipes }: BudgetInputs): {
  maxConnections: number;
  zeroCopyPipes: number;
} {
  if (nofile === undefined || !Number.isFinite(nofile)) {
    return { maxConnections: Number.POSITIVE_INFINITY, zeroCopyPipes };
  }
  const available = Math.max(0, nofile - inUse - FD_HEADROOM);
  const pipes = Math.min(zeroCopyPipes, Math.floor(available / 2 / FDS_PER_PIPE));
  const maxConnections = Math.max(1, Math.floor((available - pipes * FDS_PER_PIPE) / FDS_PER_CONNECTION));
  return { maxConnections, zeroCopyPipes: pipes };
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
    if (this.derived === undefined) {
      const derived = deriveMaxConnections({ nofile: openFileLimit(), inUse: openFileCount() ?? 0, zeroCopyPipes });
      // A relay that finds no pipe in the pool copies instead: fewer pipes is never a failure.
      if (derived.zeroCopyPipes < zeroCopyPipes) configureZeroCopy({ maxPipes: derived.zeroCopyPipes });
      this.derived = derived.maxConnections;
    }
    return this.derived;
  }
}

export const processBudget = new ProcessBudget();
