import type { Socket } from 'node:net';
import { stopSocketReading } from '../net/socket-transport';
import {
  beforeFdClose,
  canGuardFdClose,
  disableReadAhead,
  finReadByNode,
  restartHandle,
  restoreReadAhead,
} from '../platform/node-internals';
import type { RelayHandlers, SpliceEngine } from './engine';

/**
 * One direction's way into the engine. The pump drives the lossless switch:
 * halt the source at libuv level, let Node's buffered bytes go out through the
 * JS path, wait until the sink's JS queue is empty, then start the relay.
 */
export class ZeroCopyLink {
  private readonly engine: SpliceEngine;
  private readonly source: Socket;
  private readonly sink: Socket;
  private id: number | undefined;
  private handlers: RelayHandlers | undefined;
  private peer: ZeroCopyLink | undefined;
  private readOverridden = false;
  private unguard: (() => void)[] = [];
  /** zeroCopy 'always': a direction without a chain is handed over before its first byte, not once it shows bulk. */
  readonly atOnce: boolean;

  constructor(engine: SpliceEngine, source: Socket, sink: Socket, atOnce = false) {
    this.engine = engine;
    this.source = source;
    this.sink = sink;
    this.atOnce = atOnce;
  }

  get active(): boolean {
    return this.id !== undefined;
  }

  /** The link of the other direction of the same connection: the engine stops both on an error. */
  pair(other: ZeroCopyLink): void {
    this.peer = other;
    other.peer = this;
  }

  /**
   * Stops libuv reading the source (pause() alone does not), then reads out
   * what Node already buffered: read() emits it as 'data', so it takes the
   * normal JS path, ahead of anything the engine will move.
   */
  drainSource(): void {
    const s = this.source;
    s.pause();
    // Node restarts a paused socket's handle on its own (Readable's maybeReadMore
    // → _read → readStart) while the buffer is below its high-water mark: from
    // now on this stream must not read, so make its _read a no-op.
    if (!this.readOverridden) {
      this.readOverridden = true;
      disableReadAhead(s);
    }
    this.halt();
    if (s.readableLength === 0) return;
    while (s.read() !== null) {
      // each chunk went out through the 'data' listeners
    }
    // read() may have asked libuv for more: stop it again before it runs.
    this.halt();
  }

  /** Resolves once both sockets are connected and the sink's JS write queue is empty (or a socket closed). */
  flushed(): Promise<void> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (): void => {
        if (settled) return;
        settled = true;
        this.source.off('close', done);
        this.sink.off('close', done);
        resolve();
      };
      this.source.once('close', done);
      this.sink.once('close', done);
      const check = (): void => {
        if (settled) return;
        const waiting = this.source.connecting ? this.source : this.sink.connecting ? this.sink : undefined;
        if (this.source.destroyed || this.sink.destroyed) done();
        else if (waiting) waiting.once('connect', check);
        else if (this.sink.writableLength === 0) done();
        // A zero-length write calls back after every earlier write has reached the kernel.
        else this.sink.write(EMPTY, () => check());
      };
      check();
    });
  }

  /** True when the source's FIN was already read by Node (the JS path must deliver it). */
  sourceEnded(): boolean {
    return finReadByNode(this.source);
  }

  /** Hands both fds to the engine; false when it cannot (engine off, a socket gone): stay on the JS path. */
  start(handlers: RelayHandlers): boolean {
    if (this.id !== undefined) return true;
    if (this.source.destroyed || this.sink.destroyed || this.sink.writableLength > 0) return false;
    // The engine uses the sockets' own fds: only where a destroy() can stop it first.
    if (!canGuardFdClose(this.source) || !canGuardFdClose(this.sink)) return false;
    const wrapped: RelayHandlers = {
      progress: (i, o) => handlers.progress(i, o),
      end: (i, o, at) => {
        this.settle();
        handlers.end(i, o, at);
      },
      error: (err, side, i, o) => {
        this.settle();
        handlers.error(err, side, i, o);
      },
    };
    const id = this.engine.start(this.source, this.sink, wrapped, this.peer?.id ?? 0);
    if (id === undefined) return false;
    this.id = id;
    this.handlers = wrapped;
    // The engine uses these very fds: a destroy() from anywhere must stop it before Node closes one.
    this.unguard = [beforeFdClose(this.source, this.onDestroying), beforeFdClose(this.sink, this.onDestroying)];
    this.source.once('close', this.onSocketClosed);
    this.sink.once('close', this.onSocketClosed);
    return true;
  }

  /** After a refused handoff: restart libuv reading (Node's stream may still think a read is pending). */
  resumeSource(): void {
    const s = this.source;
    if (this.readOverridden) {
      this.readOverridden = false;
      restoreReadAhead(s);
    }
    restartHandle(s);
  }

  /** Current totals of the running relay (for the idle timer, which must not trust lagging reports). */
  poll(): [number, number] | undefined {
    return this.id === undefined ? undefined : this.engine.progress(this.id);
  }

  /** Stops the relay now; the engine is done with the fds when this returns. [bytesIn, bytesOut] when it was running. */
  abort(): [number, number] | undefined {
    const id = this.id;
    if (id === undefined) return undefined;
    this.settle();
    return this.engine.abort(id);
  }

  private halt(): void {
    // Through the transport module, so the socket's SocketTransport knows to restart the handle.
    if (!this.source.destroyed) stopSocketReading(this.source);
  }

  private settle(): void {
    this.id = undefined;
    this.handlers = undefined;
    this.source.off('close', this.onSocketClosed);
    this.sink.off('close', this.onSocketClosed);
    for (const remove of this.unguard) remove();
    this.unguard = [];
  }

  /** Inside destroy(), before Node closes the fd: stop the engine now, report on 'close' as before. */
  private readonly onDestroying = (): void => {
    const handlers = this.handlers;
    const socket = this.source.destroyed ? this.source : this.sink;
    const which = socket === this.source ? 'source' : 'sink';
    const moved = this.abort();
    if (handlers === undefined || moved === undefined) return;
    socket.once('close', () => handlers.error(destroyedError(which), which, moved[0], moved[1]));
  };

  private readonly onSocketClosed = (): void => {
    const handlers = this.handlers;
    const which = this.source.destroyed ? 'source' : 'sink';
    const moved = this.abort();
    if (handlers === undefined || moved === undefined) return;
    handlers.error(destroyedError(which), which, moved[0], moved[1]);
  };
}

function destroyedError(which: 'source' | 'sink'): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`the ${which} socket was destroyed during a zero-copy relay`);
  err.code = 'ERR_SOCKET_CLOSED';
  return err;
}

const EMPTY = Buffer.alloc(0);

/**
 * After both directions finished with at least one on the engine: Node never
 * saw that source's FIN, so it will not close the sockets by itself. Close each
 * once what JS queued on it has been flushed (both FINs are already sent).
 */
export function closeAfterRelay(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded && !socket.writableFinished) socket.once('finish', () => socket.destroy());
  else socket.destroy();
}
