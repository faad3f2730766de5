import type { Socket } from 'node:net';
import { readIntoOwnBuffers } from '../platform/node-internals';
import { slabPool } from './slab-pool';

/**
 * Large reads on one socket (docs/design.md, "Large reads" and "The slab budget"): once the
 * flow shows bulk, reads land in regions of a slab leased from the process-wide pool; a quiet
 * or ended direction gives its slab back.
 */

/** What the transport asks the direction that reads it (the pump). */
export interface ReadSizer {
  /** The size of the next read, asked after every read. */
  nextReadSize(): number;
  /**
   * Bytes handed on that may still be referenced: what the chain has not answered for plus what
   * the sink has not flushed (0 once the sink is gone). They are the last bytes handed on.
   */
  readonly inUse: number;
  /** Nothing keeps a chunk beyond `inUse` (no chain): regions of a slab may be reused. */
  readonly reusable: boolean;
  /** The flow showed bulk (a read filled Node's buffer): true to read large from now on. */
  bulk(): boolean;
}

/** Node's own read size: a read that fills it means the flow has more waiting (bulk). */
export const NODE_READ_SIZE = 64 * 1024;
/** Reads into a direction's own buffer up to this size are handed on as copies (see onRead). */
const COPY_AT_MOST = 16 * 1024;

/** One socket's large reads. */
export class LargeReader {
  private readonly socket: Socket;
  private readonly sizer: ReadSizer;
  private readonly deliver: (chunk: Buffer) => void;
  /** The slab asked for: 2 × the largest read. */
  private readonly slabBytes: number;
  /** On Node's user-buffer path (there is no way back: a quiet direction reads 64 KiB buffers of its own). */
  private switched = false;
  private unsupported = false;
  private slab: Buffer | undefined;
  /** Whether the leased slab's regions are reused (decided at lease). */
  private ring = false;
  /** The slab takes no more reads; it goes back once none of its bytes is in use. */
  private retiring = false;
  private ended = false;
  /** Where the region libuv reads into starts in the slab; -1 for a buffer of its own. */
  private regionStart = -1;
  private lastRead = 0;
  /** Offset just past the newest chunk cut from the slab. */
  private head = 0;
  /** Chunks cut from the slab that may still be in use, oldest first (ring only). */
  private readonly starts: number[] = [];
  private readonly lengths: number[] = [];
  private recorded = 0;
  /** The direction's own 64 KiB buffer for reads outside a slab. */
  private small: Buffer | undefined;
  /** A chunk handed on is a view of `small`: the next read needs another buffer, unless reusable. */
  private smallLent = false;

  constructor(socket: Socket, largest: number, sizer: ReadSizer, deliver: (chunk: Buffer) => void) {
    this.socket = socket;
    this.slabBytes = 2 * largest;
    this.sizer = sizer;
    this.deliver = deliver;
  }

  /** A chunk of Node's own reads filled its buffer: switch to large reads if the direction wants them. */
  nodeReadFull(): void {
    if (this.switched || this.unsupported || this.ended || !this.sizer.bulk()) return;
    if (this.slabBytes <= 2 * NODE_READ_SIZE || !this.lease()) return;
    if (!readIntoOwnBuffers(this.socket, this.nextRegion(), this.onRead, () => this.nextRegion())) {
      this.unsupported = true;
      this.giveBack();
      return;
    }
    this.switched = true;
  }

  /** The direction's sink holds nothing more of it: a retiring slab can go back now. */
  drained(): void {
    if (this.retiring) this.settle();
  }

  /** The source ended, closed or was handed to the kernel: no read will need the slab again. */
  end(): void {
    this.ended = true;
    if (this.slab !== undefined) {
      this.retiring = true;
      this.settle();
    }
  }

  private readonly onRead = (n: number, region: Buffer): void => {
    this.lastRead = n;
    if (this.regionStart >= 0) {
      this.starts.push(this.regionStart);
      this.lengths.push(n);
      this.recorded += n;
      this.head = this.regionStart + n;
    } else if (n <= COPY_AT_MOST) {
      // A short read into our own buffer goes on as a copy of its size: a view would keep the
      // whole 64 KiB alive for a few bytes while the sink holds it (flow control counts bytes,
      // not buffers), and `small` serves the next read. Node's own reads shrink likewise.
      const copy = Buffer.allocUnsafeSlow(n);
      region.copy(copy, 0, 0, n);
      this.deliver(copy);
      return;
    } else {
      this.smallLent = true;
    }
    this.deliver(region.subarray(0, n));
  };

  /** The buffer the next read lands in (asked after every read). */
  private nextRegion(): Buffer {
    if (this.slab !== undefined && !this.retiring && this.lastRead > 0 && this.lastRead < NODE_READ_SIZE) {
      // A short read: the flow went quiet; the slab goes back once nothing of it is in use.
      this.retiring = true;
    } else if (this.slab === undefined && this.lastRead >= NODE_READ_SIZE && !this.ended && this.sizer.bulk()) {
      this.lease();
    }
    if (this.retiring) this.settle();
    if (this.slab !== undefined && !this.retiring) {
      const region = this.carve();
      if (region !== undefined) return region;
    }
    this.regionStart = -1;
    // Lent out: a raw direction takes it back once its last chunk left; otherwise a fresh one.
    if (this.small === undefined || (this.smallLent && (!this.sizer.reusable || this.sizer.inUse > 0))) {
      this.small = Buffer.allocUnsafeSlow(NODE_READ_SIZE);
    }
    this.smallLent = false;
    return this.small;
  }

  /** A region of the slab for the next read, or undefined when none of at least 64 KiB is free. */
  private carve(): Buffer | undefined {
    const slab = this.slab as Buffer;
    const size = slab.length;
    const want = Math.min(size / 2, Math.max(NODE_READ_SIZE, this.sizer.nextReadSize()));
    if (!this.ring) {
      // A chain may keep any chunk: regions are never reused; a spent slab is swapped for a new one.
      if (size - this.head < want) {
        this.giveBack();
        if (!this.lease()) return undefined;
      }
      return this.region(this.head, want);
    }
    this.forgetFlushed();
    if (this.recorded === 0) return this.region(0, want);
    const tail = this.starts[0] as number;
    if (this.head > tail) {
      const atHead = size - this.head;
      if (atHead >= want) return this.region(this.head, want);
      if (tail >= want) return this.region(0, want);
      if (Math.max(atHead, tail) < NODE_READ_SIZE) return undefined;
      return atHead >= tail ? this.region(this.head, atHead) : this.region(0, tail);
    }
    const free = tail - this.head;
    return free >= NODE_READ_SIZE ? this.region(this.head, Math.min(want, free)) : undefined;
  }

  private region(start: number, length: number): Buffer {
    this.regionStart = start;
    this.head = start;
    return (this.slab as Buffer).subarray(start, start + length);
  }

  /** Drops the records of chunks the sink has taken: the bytes in use are the last `inUse` handed on. */
  private forgetFlushed(): void {
    const inUse = this.sizer.inUse;
    while (this.lengths.length > 0 && this.recorded - (this.lengths[0] as number) >= inUse) {
      this.recorded -= this.lengths.shift() as number;
      this.starts.shift();
    }
  }

  private lease(): boolean {
    const slab = slabPool.lease(this.slabBytes);
    if (slab === undefined) return false;
    this.slab = slab;
    this.ring = this.sizer.reusable;
    this.retiring = false;
    this.head = 0;
    return true;
  }

  /** A retiring slab goes back once nothing of it is in use (a chain's at once: the pool forgets it). */
  private settle(): void {
    if (this.slab === undefined) return;
    if (this.ring) {
      this.forgetFlushed();
      if (this.recorded > 0) return;
    }
    this.giveBack();
  }

  private giveBack(): void {
    const slab = this.slab;
    if (slab === undefined) return;
    slabPool.release(slab, this.ring);
    this.slab = undefined;
    this.retiring = false;
    this.starts.length = 0;
    this.lengths.length = 0;
    this.recorded = 0;
    this.head = 0;
  }
}
