import type { RedirectError } from '../../lib/common/errors';

/** Passes a piece on to the rest of the direction; resolves once the next stages took it. */
export type Pass = (piece: Buffer) => Promise<void>;

/**
 * One toxic on one direction of one connection. A runner (./runner.ts) feeds it chunks one at a
 * time, in order: a stage delays by awaiting before it passes, so bytes are never reordered, and
 * whatever it waits on is held against the core's high-water mark. A stage that ends the flow
 * throws (or calls `fail` with) a RedirectError whose code names the close reason
 * (ERR_REDIRECT_FAULT_*).
 */
export interface ToxicStage {
  /** One chunk, read at `arrivedAt` (performance.now()). */
  chunk(data: Buffer, arrivedAt: number, pass: Pass): Promise<void>;
  /** The source's FIN reached this stage: resolve when it may go on. */
  end?(): Promise<void>;
  /** The toxic applies from now on (connection start, or added live): timers that need no bytes start here. */
  start?(fail: (err: RedirectError) => void): void;
  /** Attributes changed live. */
  update?(): void;
  /** The toxic no longer applies (removed, or the connection ended): stop waiting, let everything through. */
  stop(): void;
}

const DONE: Promise<void> = Promise.resolve();

/**
 * The waits of one stage, cut short all at once when the toxic is removed (Toxiproxy's
 * "interrupt": what a removed toxic held goes on at once, nothing is dropped).
 */
export class Waiter {
  private readonly pending = new Set<() => void>();
  private stoppedAt = false;

  get stopped(): boolean {
    return this.stoppedAt;
  }

  /** Resolves after `ms`, or at once when stopped. */
  sleep(ms: number): Promise<void> {
    if (this.stoppedAt || !(ms > 0)) return DONE;
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.pending.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.pending.add(wake);
    });
  }

  /** Resolves only when stopped. */
  hold(): Promise<void> {
    if (this.stoppedAt) return DONE;
    return new Promise((resolve) => {
      const wake = (): void => {
        this.pending.delete(wake);
        resolve();
      };
      this.pending.add(wake);
    });
  }

  /** Cuts every wait short, now and later. */
  stop(): void {
    this.stoppedAt = true;
    for (const wake of [...this.pending]) wake();
  }
}
