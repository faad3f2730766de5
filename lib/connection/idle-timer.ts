/**
 * The idle timeout (`idleTimeoutMs`): one timer per connection that is re-armed lazily.
 * Bytes only stamp the time; the timer, when it fires, compares the stamp with the limit
 * and sleeps again for what is left, so a busy flow costs one clock read per read, not a
 * timer reset.
 */
export class IdleTimer {
  private timer: NodeJS.Timeout | undefined;
  private lastActivity = 0;

  constructor(
    private readonly ms: number,
    /** Asked before deciding: spliced bytes are reported with a lag. */
    private readonly refresh: () => void,
    private readonly expired: (ms: number) => void,
  ) {}

  /** Starts the clock (a limit of 0 or less turns the timeout off). */
  arm(): void {
    if (this.ms <= 0) return;
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
    this.refresh();
    if (this.timer === undefined) return;
    const quiet = performance.now() - this.lastActivity;
    if (quiet >= this.ms) {
      this.timer = undefined;
      this.expired(this.ms);
    } else {
      this.timer = setTimeout(this.check, this.ms - quiet + 1);
    }
  };
}
