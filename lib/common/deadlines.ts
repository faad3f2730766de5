/** The longest delay Node's timers take (2^31 - 1 ms); a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Something with a deadline: `deadlineExpired()` runs once it passes. */
export interface DeadlineOwner {
  deadlineExpired(): void;
}

/**
 * One timer for every deadline of the same length (docs/design.md, "Deadlines").
 * Deadlines of equal length expire in the order they were set, so a Map in
 * insertion order is already sorted: setting and clearing a deadline is one Map
 * operation, with no timer, closure or promise per connection. The timer is
 * armed for the oldest deadline only; a cleared entry leaves nothing behind.
 */
export class DeadlineSweeper {
  private readonly pending = new Map<DeadlineOwner, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {}

  /** Sets (or moves) `owner`'s deadline to `ms` from now. */
  set(owner: DeadlineOwner): void {
    const at = performance.now() + this.ms;
    this.pending.delete(owner);
    this.pending.set(owner, at);
    if (this.timer === undefined) this.arm(at);
  }

  clear(owner: DeadlineOwner): void {
    this.pending.delete(owner);
  }

  get size(): number {
    return this.pending.size;
  }

  private arm(at: number): void {
    this.timer = setTimeout(this.sweep, Math.max(1, Math.ceil(at - performance.now())));
    // What waits on a deadline holds a socket, which keeps the process alive by itself.
    this.timer.unref();
  }

  private readonly sweep = (): void => {
    this.timer = undefined;
    const now = performance.now();
    for (const [owner, at] of this.pending) {
      if (at > now) {
        this.arm(at);
        return;
      }
      this.pending.delete(owner);
      try {
        owner.deadlineExpired();
      } catch (err) {
        // One owner's fault must not stop the others' deadlines; surface it like Node would.
        process.nextTick(() => {
          throw err;
        });
      }
    }
  };
}

const sweepers = new Map<number, DeadlineSweeper>();

/** The process-wide sweeper for deadlines `ms` long. */
export function sweeperFor(ms: number): DeadlineSweeper {
  let s = sweepers.get(ms);
  if (s === undefined) {
    s = new DeadlineSweeper(ms);
    sweepers.set(ms, s);
  }
  return s;
}
