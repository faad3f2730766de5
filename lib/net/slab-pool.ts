import { invalidOption } from '../common/errors';

/**
 * The process-wide pool large reads lease their slabs from (docs/design.md,
 * "The slab budget"): one byte budget for every server in the process, so
 * read memory stays flat however many bulk directions there are.
 */

/** Process-wide budget of large-read memory. */
export interface LargeReadBudget {
  /** Slab bytes leased at once, all servers together. Default 16 MiB; 0 turns large reads off. */
  maxBytes?: number;
}

/** The pool's state now (process-wide); `server.stats().largeReads`. */
export interface LargeReadStats {
  /** The budget in force. */
  readonly maxBytes: number;
  /** Bytes of the slabs leased now (never above `maxBytes`). */
  readonly leasedBytes: number;
  /** Slabs leased now. */
  readonly slabs: number;
  /** Released slabs kept for the next lease (leased + pooled stay within `maxBytes`). */
  readonly pooledBytes: number;
  /** Leases granted since the process started. */
  readonly leases: number;
  /** Leases refused for want of budget since the process started (the direction read at Node's size). */
  readonly denied: number;
}

const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
/** A slab is two regions; below 2 × 128 KiB a large read saves too little over Node's 64 KiB. */
const MIN_SLAB = 256 * 1024;
/** Pooled slabs outlive the last lease this long, so a flow pausing between bursts finds them again. */
const POOL_LINGER_MS = 1000;

class SlabPool {
  maxBytes = DEFAULT_MAX_BYTES;
  leasedBytes = 0;
  slabs = 0;
  pooledBytes = 0;
  leases = 0;
  denied = 0;
  private readonly free: Buffer[] = [];
  private lingering: NodeJS.Timeout | undefined;

  /**
   * A slab of `size` bytes while more than three quarters of the budget are free, of half that
   * size while more than half is, then of a quarter (not under 256 KiB, and never more than is
   * free): when many directions are bulk, more of them read large, each a little less so (reads
   * of 128 KiB already save most of what 512 KiB reads save over Node's 64 KiB). Undefined when
   * not even the smallest fits.
   */
  lease(size: number): Buffer | undefined {
    const free = this.maxBytes - this.leasedBytes;
    let want = size;
    for (let bar = (this.maxBytes * 3) / 4; want / 2 >= MIN_SLAB && free <= bar && bar > 0; bar -= this.maxBytes / 4) {
      want /= 2;
    }
    while (want > free && want / 2 >= MIN_SLAB) want /= 2;
    if (this.leasedBytes + want > this.maxBytes || want < MIN_SLAB) {
      this.denied++;
      return undefined;
    }
    let slab: Buffer | undefined;
    const i = this.free.findIndex((b) => b.length === want);
    if (i >= 0) {
      slab = this.free.splice(i, 1)[0] as Buffer;
      this.pooledBytes -= want;
    } else {
      // Room for a new slab comes first from the ones kept for reuse.
      this.trim(want);
      slab = Buffer.allocUnsafeSlow(want);
    }
    this.leasedBytes += want;
    this.slabs++;
    this.leases++;
    if (this.lingering) {
      clearTimeout(this.lingering);
      this.lingering = undefined;
    }
    return slab;
  }

  /**
   * Gives a slab back. `reusable`: none of its bytes is referenced any more (a raw direction
   * whose sink took them all), so it may serve the next lease; otherwise the pool forgets it and
   * the GC frees it once the chunks an operator keeps are gone.
   */
  release(slab: Buffer, reusable: boolean): void {
    this.leasedBytes -= slab.length;
    this.slabs--;
    if (reusable && this.leasedBytes + this.pooledBytes + slab.length <= this.maxBytes) {
      this.free.push(slab);
      this.pooledBytes += slab.length;
    }
    if (this.slabs === 0 && this.free.length > 0 && !this.lingering) {
      this.lingering = setTimeout(() => this.drain(), POOL_LINGER_MS);
      this.lingering.unref();
    }
  }

  /** Drops kept slabs until leased + kept + `extra` fit the budget. */
  trim(extra = 0): void {
    while (this.free.length > 0 && this.leasedBytes + this.pooledBytes + extra > this.maxBytes) {
      this.pooledBytes -= (this.free.pop() as Buffer).length;
    }
  }

  private drain(): void {
    this.lingering = undefined;
    if (this.slabs > 0) return;
    this.free.length = 0;
    this.pooledBytes = 0;
  }

  stats(): LargeReadStats {
    return {
      maxBytes: this.maxBytes,
      leasedBytes: this.leasedBytes,
      slabs: this.slabs,
      pooledBytes: this.pooledBytes,
      leases: this.leases,
      denied: this.denied,
    };
  }
}

/** The one pool of the process (internal: SocketTransport leases from it). */
export const slabPool = new SlabPool();

/**
 * Sets the process-wide large-read budget. Lowering it below what is leased only refuses new
 * leases until enough slabs come back. Throws ERR_REDIRECT_INVALID_OPTION on a bad value.
 */
export function configureLargeReads(budget: LargeReadBudget): void {
  if (budget === null || typeof budget !== 'object') throw invalidOption('largeReadBudget', 'must be an object');
  for (const key of Object.keys(budget)) {
    if (key !== 'maxBytes') throw invalidOption(`largeReadBudget.${key}`, 'unknown budget field');
  }
  const v = budget.maxBytes;
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalidOption('largeReadBudget.maxBytes', `must be an integer of 0 or more bytes, got ${String(v)}`);
  }
  slabPool.maxBytes = v;
  slabPool.trim();
}

/** The large-read pool now (process-wide). */
export function largeReadStats(): LargeReadStats {
  return slabPool.stats();
}
