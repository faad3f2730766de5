import type { Socket } from 'node:net';
import { type LinuxAddon, optionalLinux } from '../platform/addon';
import { normaliseAddress } from '../common/record';
import type { Endpoint } from '../common/types';
import {
  boundAddressOf,
  descriptorOf,
  readIntoOwnBuffers,
  restartHandle,
  stopHandle,
} from '../platform/node-internals';
import type { TransportHandlers, ReadSizer, Transport } from './transport';

/** A full read of Node's own: the flow has more waiting (bulk). */
const NODE_READ_SIZE = 64 * 1024;
/** Regions are at least this big. */
const MIN_REGION = 64 * 1024;

/** Transport over a Node `net.Socket` (Linux, macOS, and Windows without WFP). */
export class SocketTransport implements Transport {
  readonly socket: Socket;
  private handlers: TransportHandlers | undefined;
  private wantReading = false;
  /** We stopped the libuv handle ourselves, so we must restart it. */
  private stoppedHandle = false;
  /** Large reads: sizes each region, asked after every read; set by largeReads(). */
  private sizer: ReadSizer | undefined;
  /** Large reads are on: every read lands in a region of `slab`, from `slabOffset` on. */
  private slab: Buffer | undefined;
  private slabOffset = 0;
  private slabBytes = 0;

  constructor(socket: Socket) {
    this.socket = socket;
    // Reading is driven by startReading/stopReading only.
    socket.pause();
  }

  get localEndpoint(): Endpoint | undefined {
    return endpointOf(this.socket.localAddress, this.socket.localPort);
  }

  get remoteEndpoint(): Endpoint | undefined {
    return endpointOf(this.socket.remoteAddress, this.socket.remotePort);
  }

  /**
   * The local endpoint as the kernel has it now, read fresh (Node caches
   * `localAddress` on first use, which is wrong before connect(2) binds).
   */
  boundEndpoint(): Endpoint | undefined {
    const bound = boundAddressOf(this.socket);
    return bound && endpointOf(bound.address, bound.port);
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  attach(handlers: TransportHandlers): void {
    this.handlers = handlers;
    const s = this.socket;
    s.on('data', (chunk: Buffer) => {
      handlers.data(chunk);
      if (this.sizer !== undefined && chunk.length >= NODE_READ_SIZE && this.slab === undefined) {
        this.startLargeReads();
      }
    });
    s.on('end', () => {
      // libuv turns an RST that arrives behind unread data into EOF (a hang-up
      // after a partial read). The kernel still holds the error: relaying a FIN
      // for it would make a truncated stream look complete (docs/design.md, "Resets").
      const reset = pendingResetOf(s);
      if (reset === undefined) handlers.end();
      else handlers.error(reset);
    });
    s.on('error', (err: Error) => {
      // A failed reset (libuv refuses one while a shutdown is pending) drops the
      // handle without 'close': close it ourselves so the lifecycle still ends.
      if ((err as NodeJS.ErrnoException).syscall === 'reset' && !s.destroyed) s.destroy();
      handlers.error(err);
    });
    s.on('close', handlers.close);
  }

  largeReads(maxBytes: number, sizer: ReadSizer): void {
    if (maxBytes <= NODE_READ_SIZE) return;
    this.slabBytes = 2 * maxBytes;
    this.sizer = sizer;
  }

  /**
   * Switches the socket to Node's user-buffer reads: each read lands in a fresh
   * region of our slab, and the chunk handed on is a view of it. A region is
   * never handed out twice, so a chunk still queued in a sink stays intact.
   */
  private startLargeReads(): void {
    const s = this.socket;
    const handlers = this.handlers as TransportHandlers;
    const started = readIntoOwnBuffers(
      s,
      this.nextRegion(),
      (n, region) => {
        this.slabOffset += n;
        handlers.data(region.subarray(0, n));
      },
      () => this.nextRegion(),
    );
    if (!started) this.sizer = undefined;
  }

  /** The buffer the next read lands in: `nextReadSize()` bytes (at least 64 KiB) not handed out before. */
  private nextRegion(): Buffer {
    const size = Math.min(this.slabBytes / 2, Math.max(MIN_REGION, (this.sizer as ReadSizer).nextReadSize()));
    let slab = this.slab;
    if (slab === undefined || slab.length - this.slabOffset < size) {
      // The old slab stays alive only while chunks cut from it are.
      slab = Buffer.allocUnsafeSlow(this.slabBytes);
      this.slab = slab;
      this.slabOffset = 0;
    }
    return slab.subarray(this.slabOffset, this.slabOffset + size);
  }

  startReading(): void {
    if (this.wantReading) return;
    this.wantReading = true;
    const s = this.socket;
    s.resume();
    // After our own readStop, Node's stream may still believe a read is
    // pending and never call readStart again: restart the handle ourselves.
    // A socket still connecting is started by Node once it connects.
    if (!this.stoppedHandle && !stoppedOutside.delete(s)) return;
    this.stoppedHandle = false;
    restartHandle(s);
  }

  stopReading(): void {
    if (!this.wantReading) return;
    this.wantReading = false;
    const s = this.socket;
    s.pause();
    // pause() alone only stops 'data' events; libuv keeps reading into the
    // stream buffer until its own high-water mark. Stop the handle now so the
    // kernel buffer fills and the sender's window closes.
    if (stopHandle(s)) this.stoppedHandle = true;
  }

  write(chunk: Buffer, flushed: (err?: Error | null) => void): void {
    this.socket.write(chunk, flushed);
  }

  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  reset(): void {
    const s = this.socket;
    if (s.destroyed) return;
    const fd = descriptorOf(s);
    // A socket still connecting has no peer to reset yet (and resetAndDestroy
    // would wait for a 'connect' that may never come): just close it.
    if (fd === undefined || s.connecting) {
      s.destroy();
      return;
    }
    // SO_LINGER {1, 0} then close: an RST in every state. libuv's own reset
    // fails with EINVAL while a FIN is queued (shutdown pending), and then
    // neither resets nor closes.
    const addon = linux();
    if (addon !== undefined) {
      try {
        addon.resetOnClose(fd);
        s.destroy();
        return;
      } catch {
        // fall through to Node's own reset
      }
    }
    if (s.writableEnded && !s.writableFinished) s.destroy();
    else s.resetAndDestroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  get attached(): boolean {
    return this.handlers !== undefined;
  }
}

/** Sockets whose libuv handle was stopped by stopSocketReading (not by their transport). */
const stoppedOutside = new WeakSet<Socket>();

/**
 * Stops reading a socket at the libuv level, for code that reads before a transport
 * takes over (a resolver reading a PROXY header). pause() alone lets libuv keep
 * filling the stream buffer; the socket's SocketTransport restarts the handle in
 * startReading().
 */
export function stopSocketReading(s: Socket): void {
  s.pause();
  if (stopHandle(s)) stoppedOutside.add(s);
}

let linuxAddon: LinuxAddon | null | undefined;
function linux(): LinuxAddon | undefined {
  if (linuxAddon === undefined) {
    const addon = optionalLinux();
    linuxAddon = addon && typeof addon.pendingError === 'function' ? addon : null;
  }
  return linuxAddon ?? undefined;
}

/**
 * The reset hidden behind an EOF, if any: SO_ERROR read through the addon.
 * Without the addon (or off Linux) an EOF is taken as the FIN it usually is.
 */
function pendingResetOf(s: Socket): NodeJS.ErrnoException | undefined {
  const addon = linux();
  const fd = descriptorOf(s);
  if (addon === undefined || fd === undefined) return undefined;
  let errno: string | null;
  try {
    errno = addon.pendingError(fd);
  } catch {
    return undefined;
  }
  if (errno === null) return undefined;
  const err: NodeJS.ErrnoException = new Error(`read ${errno}`);
  err.code = errno;
  err.syscall = 'read';
  return err;
}

function endpointOf(address: string | undefined, port: number | undefined): Endpoint | undefined {
  if (address === undefined || port === undefined) return undefined;
  const { address: a, family } = normaliseAddress(address);
  return { address: a, port, family };
}
