/**
 * The idle timeout (`idleTimeoutMs`): one timer per connection that is re-armed lazily.
 * Bytes only stamp the time; the timer, when it fires, compares the stamp with the limit
 * and sleeps again for what is left, so a busy flow costs one clock read per read, not a
 * timer reset.
 */
export interface IdleOwner {
  /** Asked before deciding: spliced bytes are reported with a lag. */
  pollSpliced(): void;
  idleExpired(ms: number): void;
}

export class IdleTimer {
  private timer: NodeJS.Timeout | undefined;
  private lastActivity = 0;

  constructor(
    private readonly ms: number,
    private readonly owner: IdleOwner,
  ) {}

  /** Starts the clock. */
  arm(): void {
    this.lastActivity = performance.now();
    this.timer = setTimeout(this.check, this.ms);
  }

  /** Bytes moved. */
  activity(): void {
    if (this.timer !== undefined) this.lastActivity = performance.now();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private readonly check = (): void => {
    this.owner.pollSpliced();
    if (this.timer === undefined) return;
    const quiet = performance.now() - this.lastActivity;
    if (quiet >= this.ms) {
      this.timer = undefined;
      this.owner.idleExpired(this.ms);
    } else {
      this.timer = setTimeout(this.check, this.ms - quiet + 1);
    }
  };
}
