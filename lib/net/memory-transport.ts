import type { Endpoint } from '../common/types';
import type { Transport, TransportHandlers } from './transport';

/**
 * How an end reads: at most `bytes` per read, one read every `everyMs` (0: one read per turn of
 * the event loop). A peer that reads slowly, so that the other end's `writableLength` grows and
 * its pump meets its high-water mark.
 */
export interface ReadPace {
  readonly bytes: number;
  readonly everyMs?: number;
}

/** One item of an end's inbound queue: bytes with their writer's flush callback, or the writer's FIN. */
type Inbound = { chunk: Buffer; flushed: ((err?: Error | null) => void) | undefined } | typeof FIN | typeof RST;

const FIN = Symbol('FIN');
/** The peer reset: read after what it had written before (that was already on its way). */
const RST = Symbol('RST');

/**
 * One end of an in-memory TCP connection, for driving the real pipeline without sockets
 * (`testMiddleware`), as Netty's EmbeddedChannel drives its real pipeline. The model, kept
 * deliberately small (docs/middleware.md, "The in-memory connection"):
 *
 * - A write goes into the peer's inbound queue; `writableLength` is what the peer has not read
 *   yet, and `flushed` runs once it has (a socket with no kernel buffer: a slow reader is seen
 *   at once). Each write is delivered as its own `data` (chunk boundaries are kept) unless the
 *   reader's pace cuts it.
 * - Reads happen asynchronously (one macrotask after the write, like a socket's), only while the
 *   reader reads: `stopReading()` holds everything queued, even the rest of a read in progress.
 * - `end()` queues a FIN behind the data; an end closes once its FIN was read and the peer's FIN
 *   was read by it (Node's allowHalfOpen sockets).
 * - `reset()` drops what this end was sent and did not read; the peer reads what this end wrote
 *   before (it was on its way), then gets ECONNRESET and closes (at once if it is not reading).
 *   `destroy()` sends a FIN if nothing this end was sent is unread, else it resets (as close(2)
 *   does). A write to a peer that is gone fails with EPIPE.
 */
export class MemoryTransport implements Transport {
  localEndpoint: Endpoint | undefined;
  remoteEndpoint: Endpoint | undefined;
  /** Set by memoryTransportPair(). */
  peer!: MemoryTransport;

  private handlers: TransportHandlers | undefined;
  private readonly inbound: Inbound[] = [];
  private inboundBytes = 0;
  /** Bytes of the head chunk already delivered (a paced read may cut a chunk). */
  private headOffset = 0;
  private reading = false;
  private pace: ReadPace | undefined;
  private scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
  private finSent = false;
  private finReceived = false;
  /** Our FIN was read by the peer. */
  private finRead = false;
  private gone = false;
  private closeEmitted = false;
  private closing = false;

  constructor(local?: Endpoint, remote?: Endpoint) {
    this.localEndpoint = local;
    this.remoteEndpoint = remote;
  }

  /** Bytes written to the peer that it has not read yet. */
  get writableLength(): number {
    return this.peer.inboundBytes;
  }

  get destroyed(): boolean {
    return this.gone;
  }

  /** Something is about to happen on its own: a read is scheduled or a close is pending. */
  get busy(): boolean {
    return this.scheduled !== undefined || this.closing;
  }

  attach(handlers: TransportHandlers): void {
    this.handlers = handlers;
  }

  /** Reads at `pace` from now on; undefined reads everything queued at each turn. */
  setReadPace(pace: ReadPace | undefined): void {
    this.pace = pace;
  }

  startReading(): void {
    if (this.reading || this.gone) return;
    this.reading = true;
    this.schedule();
  }

  stopReading(): void {
    this.reading = false;
    this.unschedule();
    // A socket that stops reading still learns of a reset (libuv reports it on the next poll).
    if (this.inbound.includes(RST)) this.fault('ECONNRESET');
  }

  write(chunk: Buffer, flushed: (err?: Error | null) => void): void {
    const peer = this.peer;
    if (this.gone || this.finSent) {
      setImmediate(flushed, new Error(this.gone ? 'write after destroy' : 'write after end'));
      return;
    }
    if (peer.gone) {
      // The peer closed: a socket's write fails with EPIPE and the socket closes (unless a
      // reset is already on its way in: that is the error this end will see).
      setImmediate(flushed, errno('EPIPE'));
      if (!this.inbound.includes(RST)) this.fault('EPIPE');
      return;
    }
    if (chunk.length === 0) {
      // Nothing to read: flushed once what was queued before it is read (Node's order).
      peer.inbound.push({ chunk, flushed });
    } else {
      peer.inbound.push({ chunk, flushed });
      peer.inboundBytes += chunk.length;
    }
    peer.schedule();
  }

  end(): void {
    if (this.gone || this.finSent) return;
    this.finSent = true;
    if (this.peer.gone) {
      // Nobody reads it, but it is taken (a FIN to a closed socket is acknowledged).
      this.finRead = true;
      this.maybeClose();
      return;
    }
    this.peer.inbound.push(FIN);
    this.peer.schedule();
  }

  reset(): void {
    if (this.gone) return;
    this.drop();
    const peer = this.peer;
    if (!peer.gone) {
      if (peer.reading) {
        peer.inbound.push(RST);
        peer.schedule();
      } else peer.fault('ECONNRESET');
    }
    this.closeSoon();
  }

  destroy(): void {
    if (this.gone) return;
    // close(2) with unread bytes sends RST, else FIN (after what the peer still has to read).
    if (this.inboundBytes > 0) {
      this.reset();
      return;
    }
    this.end();
    this.drop();
    this.closeSoon();
  }

  /** Marks the end gone and drops what it was sent; their writers' callbacks fail. */
  private drop(): void {
    this.gone = true;
    this.reading = false;
    this.unschedule();
    const dropped = this.inbound.splice(0);
    this.inboundBytes = 0;
    this.headOffset = 0;
    for (const item of dropped) {
      if (typeof item === 'object' && item.flushed) setImmediate(item.flushed, errno('ECONNRESET'));
    }
  }

  /** A socket error on this end, then close. */
  private fault(code: string): void {
    this.drop();
    const err = errno(code);
    setImmediate(() => {
      if (this.closeEmitted) return;
      this.handlers?.error(err);
      this.emitClose();
    });
    this.closing = true;
  }

  private schedule(): void {
    if (!this.reading || this.scheduled !== undefined || this.inbound.length === 0) return;
    const every = this.pace?.everyMs ?? 0;
    this.scheduled = every > 0 ? setTimeout(this.read, every) : setImmediate(this.read);
  }

  private unschedule(): void {
    if (this.scheduled === undefined) return;
    clearTimeout(this.scheduled as NodeJS.Timeout);
    clearImmediate(this.scheduled as NodeJS.Immediate);
    this.scheduled = undefined;
  }

  /** One read: everything queued, or `pace.bytes` of it; stops as soon as the reader stops. */
  private readonly read = (): void => {
    this.scheduled = undefined;
    let budget = this.pace ? Math.max(1, this.pace.bytes) : Number.POSITIVE_INFINITY;
    while (this.reading && budget > 0 && this.inbound.length > 0) {
      const item = this.inbound[0] as Inbound;
      if (item === RST) {
        this.fault('ECONNRESET');
        return;
      }
      if (item === FIN) {
        this.inbound.shift();
        this.finReceived = true;
        this.peer.finRead = true;
        this.handlers?.end();
        this.maybeClose();
        this.peer.maybeClose();
        continue;
      }
      const left = item.chunk.length - this.headOffset;
      const take = Math.min(left, budget);
      const piece =
        take === item.chunk.length ? item.chunk : item.chunk.subarray(this.headOffset, this.headOffset + take);
      budget -= take;
      this.inboundBytes -= take;
      if (take < left) this.headOffset += take;
      else {
        this.inbound.shift();
        this.headOffset = 0;
      }
      // Accounting first: the handler and the writer's callback see the queue as it is now.
      if (take > 0) this.handlers?.data(piece);
      if (take === left) item.flushed?.();
    }
    this.schedule();
  };

  private maybeClose(): void {
    if (this.finSent && this.finRead && this.finReceived) this.closeSoon();
  }

  private closeSoon(): void {
    if (this.closing || this.closeEmitted) return;
    this.closing = true;
    this.gone = true;
    setImmediate(() => this.emitClose());
  }

  private emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.closing = false;
    this.gone = true;
    this.handlers?.close();
  }
}

/** Two ends of one in-memory connection: what one writes, the other reads. */
export function memoryTransportPair(
  a: { local?: Endpoint; remote?: Endpoint } = {},
): [MemoryTransport, MemoryTransport] {
  const left = new MemoryTransport(a.local, a.remote);
  const right = new MemoryTransport(a.remote, a.local);
  left.peer = right;
  right.peer = left;
  return [left, right];
}

function errno(code: string): Error {
  const messages: Record<string, string> = { ECONNRESET: 'read ECONNRESET', EPIPE: 'write EPIPE' };
  return Object.assign(new Error(messages[code] ?? code), { code, errno: code, syscall: 'memory' });
}
