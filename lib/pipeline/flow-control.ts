/**
 * One direction's flow-control accounting (docs/design.md, "Flow control"), with no I/O: the
 * Pump tells it what happened (bytes fed to the chain, bytes the chain emitted, the sink's
 * queue) and it answers when to stop reading the source and when to read again.
 *
 * What it holds: the **backlog**, bytes fed to the chain that the chain has not answered for.
 * A chain answers for its input by emitting: a **synchronous** chain (it emitted inside the
 * call that fed it) has answered for everything fed so far; what it did not emit it dropped or
 * holds by design. An **asynchronous** chain (it emitted outside a feeding call) pays its input
 * back oldest chunk first, one input chunk per output chunk at least. Until the first output the
 * chain is **unknown** and everything fed counts.
 *
 * The direction stops reading when backlog + the sink's queue reaches the high-water mark, and
 * reads again once it is back at the low-water mark (half of it), so a slow reader on either
 * side bounds what the relay holds.
 */
export type ChainMode = 'unknown' | 'sync' | 'async';

/** The empty size list every direction starts with; only an asynchronous chain gets its own. */
const NO_SIZES: number[] = [];

export class FlowControl {
  /** Bytes the chain has not answered for. */
  backlog = 0;
  mode: ChainMode = 'unknown';
  /** Reading is stopped for flow control (not for any other reason). */
  paused = false;
  /** How many times the high-water mark stopped the source. */
  pauses = 0;
  /** The most backlog + sink queue seen. */
  peakBuffered = 0;
  readonly lowWaterMark: number;
  /** Input chunk sizes not yet paid back, oldest first (asynchronous chains only). */
  private pendingSizes: number[] = NO_SIZES;
  private feeding = false;
  private emittedWhileFeeding = false;

  constructor(readonly highWaterMark: number) {
    this.lowWaterMark = Math.floor(highWaterMark / 2);
  }

  /** Inside a call that feeds the chain. */
  get isFeeding(): boolean {
    return this.feeding;
  }

  /** A chunk of `size` bytes is about to be fed to the chain. */
  feedStart(size: number): void {
    this.backlog += size;
    if (this.mode !== 'sync') {
      if (this.pendingSizes === NO_SIZES) this.pendingSizes = [];
      this.pendingSizes.push(size);
    }
    this.feeding = true;
    this.emittedWhileFeeding = false;
  }

  /** The feeding call returned: a chain that answered inside it has dealt with everything fed. */
  feedEnd(): void {
    this.feeding = false;
    if (this.emittedWhileFeeding && this.mode === 'unknown') this.mode = 'sync';
    if (this.mode === 'sync' || this.emittedWhileFeeding) this.forgetBacklog();
  }

  /**
   * The chain emitted `bytes`. `chainOpen`: the chain may still take input (an output after its
   * input completed, with no backlog left, pays nothing back). Returns true when the output came
   * outside a feeding call, so the caller should see whether reading may resume.
   */
  emitted(bytes: number, chainOpen: boolean): boolean {
    if (this.feeding) {
      // Output of the chunk being fed: those bytes leave the backlog as they enter the sink.
      this.emittedWhileFeeding = true;
      this.backlog = Math.max(0, this.backlog - bytes);
      return false;
    }
    if (!chainOpen && this.backlog === 0) return false;
    // An output outside a feeding call: the chain is asynchronous.
    this.mode = 'async';
    let paid = 0;
    do {
      const size = this.pendingSizes.shift();
      if (size === undefined) break;
      paid += size;
    } while (paid < bytes);
    this.backlog = Math.max(0, this.backlog - Math.max(paid, bytes));
    return true;
  }

  /** A chain silent for a whole mark of input is taken as one that drops: synchronous. */
  assumeSync(): void {
    this.mode = 'sync';
    this.forgetBacklog();
  }

  /** The chain completed: it owes nothing more. */
  forgetBacklog(): void {
    this.backlog = 0;
    this.pendingSizes.length = 0;
  }

  /** Records the peak for a sink queue of `sinkQueued` bytes. */
  measure(sinkQueued: number): number {
    const held = this.backlog + sinkQueued;
    if (held > this.peakBuffered) this.peakBuffered = held;
    return held;
  }

  /** True when the source must stop now (the mark was reached and reading was on). */
  shouldPause(sinkQueued: number): boolean {
    const held = this.measure(sinkQueued);
    if (this.paused || held < this.highWaterMark) return false;
    this.paused = true;
    this.pauses++;
    return true;
  }

  /** True when a paused source may read again (back at the low-water mark). */
  shouldResume(sinkQueued: number): boolean {
    if (!this.paused || this.backlog + sinkQueued > this.lowWaterMark) return false;
    this.paused = false;
    return true;
  }

  /**
   * Large reads: how much the next read may take. Only raw and synchronous directions read
   * large: an asynchronous chain's backlog also counts what its operators hold by design, and
   * one large read could fill the mark before they emit.
   */
  nextReadSize(hasChain: boolean, sinkQueued: number, maxReadBytes: number, minRead: number): number {
    if (hasChain && this.mode !== 'sync') return minRead;
    const room = this.highWaterMark - (this.backlog + sinkQueued);
    return Math.min(maxReadBytes, Math.max(minRead, room));
  }
}
