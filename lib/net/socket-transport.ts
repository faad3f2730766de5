import type { Socket } from 'node:net';
import { type LinuxAddon, optionalLinux } from '../platform/addon';
import { normaliseAddress } from '../common/record';
import type { Endpoint } from '../common/types';
import { boundAddressOf, descriptorOf, restartHandle, stopHandle } from '../platform/node-internals';
import { LargeReader, NODE_READ_SIZE, type ReadSizer } from './large-reads';
import type { TransportHandlers, Transport } from './transport';

/** Transport over a Node `net.Socket` (Linux, macOS, and Windows without WFP). */
export class SocketTransport implements Transport {
  readonly socket: Socket;
  private handlers: TransportHandlers | undefined;
  private wantReading = false;
  /** We stopped the libuv handle ourselves, so we must restart it. */
  private stoppedHandle = false;
  /** Large reads, set by largeReads(); the reader itself is made at the first full read (most flows never have one). */
  private sizer: ReadSizer | undefined;
  private largest = 0;
  private reader: LargeReader | undefined;

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
      if (chunk.length >= NODE_READ_SIZE && this.sizer !== undefined) this.largeReader(this.sizer).nodeReadFull();
    });
    s.on('end', () => {
      this.reader?.end();
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
    s.on('close', () => {
      this.reader?.end();
      handlers.close();
    });
  }

  largeReads(maxBytes: number, sizer: ReadSizer): void {
    if (this.sizer !== undefined) return;
    this.sizer = sizer;
    this.largest = maxBytes;
  }

  readsDrained(): void {
    this.reader?.drained();
  }

  endLargeReads(): void {
    this.reader?.end();
  }

  private largeReader(sizer: ReadSizer): LargeReader {
    this.reader ??= new LargeReader(this.socket, this.largest, sizer, (chunk) => this.handlers?.data(chunk));
    return this.reader;
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
    if (fd === undefined) {
      s.destroy();
      return;
    }
    // SO_LINGER {1, 0} then close: an RST in every state. libuv's own reset
    // fails with EINVAL while a FIN is queued (shutdown pending), and then
    // neither resets nor closes. This holds while Node still thinks the socket
    // is connecting too: on loopback the kernel has usually finished the
    // handshake before Node sees 'connect', and a plain close would send the
    // peer a FIN, a clean end for a flow that failed.
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
    // Without the addon: a socket still connecting has no peer to reset yet
    // (and resetAndDestroy would wait for a 'connect' that may never come).
    if (s.connecting) {
      s.destroy();
      return;
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
