import type { Socket } from 'node:net';
import type { Endpoint } from '../common/types';
import type { ReadSizer } from './large-reads';

/**
 * The seam between the core and a socket. Everything the core does to a
 * connection goes through here, so a platform where Node cannot expose the
 * socket (Windows with WFP) can plug in a native-backed transport.
 */
export interface TransportHandlers {
  data(chunk: Buffer): void;
  /** The peer sent FIN. */
  end(): void;
  /** A socket fault (ECONNRESET, EPIPE, …). */
  error(err: Error): void;
  /** Fully closed; nothing more will be emitted. */
  close(): void;
}

export interface Transport {
  readonly localEndpoint: Endpoint | undefined;
  readonly remoteEndpoint: Endpoint | undefined;
  /** Bytes written and not yet taken by the kernel. */
  readonly writableLength: number;
  readonly destroyed: boolean;
  attach(handlers: TransportHandlers): void;
  /** Starts (or restarts) reading at the OS level. */
  startReading(): void;
  /** Stops reading at the OS level: the kernel buffer fills and TCP closes the window. */
  stopReading(): void;
  /** Queues bytes; `flushed` runs once the kernel has taken them. */
  write(chunk: Buffer, flushed: (err?: Error | null) => void): void;
  /** Sends FIN after everything queued. */
  end(): void;
  /** Aborts with RST. */
  reset(): void;
  /**
   * Optional: tell `sizer` when the flow shows bulk and, if it wants, read into regions of a
   * leased slab, `sizer.nextReadSize()` bytes each (asked after every read), instead of the
   * platform's own buffers (docs/design.md, "Large reads"). `maxBytes` ≤ 64 KiB only reports bulk.
   */
  largeReads?(maxBytes: number, sizer: ReadSizer): void;
  /** Optional: the sink holds none of this source's bytes any more (a quiet direction's slab can go back). */
  readsDrained?(): void;
  /** Optional: no read will need a slab again (the kernel took the direction over). */
  endLargeReads?(): void;
  /**
   * Optional: the Node socket under this transport, where there is one. Only two parts of the
   * core take it, and only to hand it on: resolvers are given the client's socket (public API,
   * they read the kernel's record from it) and the splice engine takes both sockets'
   * descriptors. Everything else goes through the methods above.
   */
  readonly socket?: Socket;
  /** Closes without sending anything more (FIN if the kernel has nothing unread). */
  destroy(): void;
  /**
   * Optional: the local endpoint as the kernel has it now (after connect(2) bound it), for
   * recognising our own egress when it comes back to us.
   */
  boundEndpoint?(): Endpoint | undefined;
}
