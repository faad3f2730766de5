import type { Socket } from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { beforeFdClose } from './destroy-guard';
import { invalidOption } from './errors';
import { fdOf, type LinuxAddon, optionalLinux, type SpliceEngineStats } from './native';
import { stopSocketReading } from './transport';

/**
 * The zero-copy path (Linux): a direction with no middleware, or one a
 * middleware bypassed, is handed to the native splice engine
 * (native/splice-engine.cc) once its JS side is drained. The handoff story
 * and its traps are in docs/zero-copy.md.
 */

export type ZeroCopyMode = 'auto' | 'off';

/** Process-wide budget of the splice engine (pipe memory is a per-user kernel limit). */
export interface ZeroCopyBudget {
  /** Engine threads, each with one epoll over many relays. Only applies before the first relay. Default 2. */
  threads?: number;
  /**
   * Pipes open at once, held or free in the pool (two descriptors each; only a direction with
   * bytes in flight holds one). Default 1024.
   */
  maxPipes?: number;
  /** Pipe buffer bytes at once. Default 32 MiB (half of the default fs.pipe-user-pages-soft). */
  maxPipeBytes?: number;
  /** Size each relay's pipe starts with. Default 64 KiB. */
  pipeSize?: number;
  /**
   * A relay whose pipe limits the flow doubles it, up to this size (at least `pipeSize`), while
   * the growth stays within `maxPipeBytes` and all growth together within half of it (the other
   * half stays free for new connections' base pipes). Default 1 MiB (the default fs.pipe-max-size);
   * equal to `pipeSize` turns growth off.
   */
  maxPipeSize?: number;
}

export const DEFAULT_ZERO_COPY_BUDGET: Readonly<Required<ZeroCopyBudget>> = Object.freeze({
  threads: 2,
  maxPipes: 1024,
  maxPipeBytes: 32 * 1024 * 1024,
  pipeSize: 64 * 1024,
  maxPipeSize: 1024 * 1024,
});

/** What the engine reports for one relay; byte counts are totals since it started. */
export interface RelayHandlers {
  progress(bytesIn: number, bytesOut: number): void;
  /**
   * The source sent FIN; everything was written and the sink was shut down for writing.
   * `eofAtNs`: when the engine read the EOF, on process.hrtime's clock.
   */
  end(bytesIn: number, bytesOut: number, eofAtNs: number): void;
  error(err: NodeJS.ErrnoException, side: 'source' | 'sink', bytesIn: number, bytesOut: number): void;
}

type SpliceAddon = Pick<
  LinuxAddon,
  'spliceInit' | 'spliceConfigure' | 'spliceStart' | 'spliceAbort' | 'spliceStats' | 'spliceProgress'
>;

/** The JS face of the engine: one per process, dispatching reports by relay id. */
export class SpliceEngine {
  private readonly addon: SpliceAddon;
  private readonly relays = new Map<number, RelayHandlers>();

  constructor(addon: SpliceAddon) {
    this.addon = addon;
    addon.spliceInit(this.onReport);
  }

  /**
   * Starts relaying src → dst in the kernel on the sockets' own fds (no dups: abort before either
   * is closed); undefined when the budget can never give a pipe (the engine is off).
   */
  start(source: Socket, sink: Socket, handlers: RelayHandlers, pairWith = 0): number | undefined {
    const id = this.addon.spliceStart(fdOf(source), fdOf(sink), pairWith);
    if (id === 0) return undefined;
    this.relays.set(id, handlers);
    return id;
  }

  /** The engine is done with the relay's fds when this returns; [bytesIn, bytesOut], or undefined if it already ended. */
  abort(id: number): [number, number] | undefined {
    this.relays.delete(id);
    return this.addon.spliceAbort(id);
  }

  stats(): SpliceEngineStats {
    return this.addon.spliceStats();
  }

  /** Totals of a running relay read now: [bytesIn, bytesOut], or undefined once it ended. */
  progress(id: number): [number, number] | undefined {
    return this.addon.spliceProgress(id);
  }

  private readonly onReport = (
    id: number,
    kind: 0 | 1 | 2,
    bytesIn: number,
    bytesOut: number,
    errno: string | undefined,
    side: 0 | 1,
    eofAtNs: number,
  ): void => {
    const handlers = this.relays.get(id);
    if (handlers === undefined) return; // aborted meanwhile
    if (kind === 0) {
      handlers.progress(bytesIn, bytesOut);
      return;
    }
    this.relays.delete(id);
    if (kind === 1) handlers.end(bytesIn, bytesOut, eofAtNs);
    else handlers.error(systemError(errno ?? 'EIO', 'splice'), side === 0 ? 'source' : 'sink', bytesIn, bytesOut);
  };
}

let engine: SpliceEngine | null | undefined;

/** The engine, or undefined when the addon (or its splice part) is not loaded. */
export function zeroCopyEngine(): SpliceEngine | undefined {
  if (engine === undefined) {
    // The engine reports to the one JS thread that registered first: the main thread.
    const addon = process.platform === 'linux' && isMainThread ? optionalLinux() : undefined;
    engine = addon && typeof addon.spliceProgress === 'function' ? new SpliceEngine(addon) : null;
  }
  return engine ?? undefined;
}

/**
 * Sets the process-wide budget and closes the pool's free pipes (they were sized under the old
 * one). Throws ERR_REDIRECT_INVALID_OPTION on a bad value; a no-op without the addon.
 */
export function configureZeroCopy(budget: ZeroCopyBudget): void {
  if (budget === null || typeof budget !== 'object') throw invalidOption('zeroCopyBudget', 'must be an object');
  const check = (key: keyof ZeroCopyBudget, min: number, max: number): void => {
    const v = budget[key];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw invalidOption(`zeroCopyBudget.${key}`, `must be an integer ${min}–${max}, got ${String(v)}`);
    }
  };
  for (const key of Object.keys(budget)) {
    if (!(key in DEFAULT_ZERO_COPY_BUDGET)) throw invalidOption(`zeroCopyBudget.${key}`, 'unknown budget field');
  }
  check('threads', 1, 64);
  check('maxPipes', 0, 1_000_000);
  check('maxPipeBytes', 0, Number.MAX_SAFE_INTEGER);
  check('pipeSize', 4096, 1 << 30);
  check('maxPipeSize', 4096, 1 << 30);
  const e = zeroCopyEngine();
  // Fields left out keep their current values (the defaults without the engine).
  const current = e?.stats();
  const pipeSize = budget.pipeSize ?? current?.pipeSize ?? DEFAULT_ZERO_COPY_BUDGET.pipeSize;
  const maxPipeSize = budget.maxPipeSize ?? current?.maxPipeSize ?? DEFAULT_ZERO_COPY_BUDGET.maxPipeSize;
  if (maxPipeSize < pipeSize) {
    const key = budget.maxPipeSize === undefined ? 'pipeSize' : 'maxPipeSize';
    throw invalidOption(
      `zeroCopyBudget.${key}`,
      `maxPipeSize (${maxPipeSize}) must be at least pipeSize (${pipeSize}); set both to change them together`,
    );
  }
  if (e === undefined || current === undefined) return;
  optionalLinux()?.spliceConfigure({
    threads: budget.threads ?? current.maxThreads,
    maxPipes: budget.maxPipes ?? current.maxPipes,
    maxPipeBytes: budget.maxPipeBytes ?? current.maxPipeBytes,
    pipeSize,
    maxPipeSize,
  });
}

/** Engine threads, relays and pipe use right now; undefined without the addon. */
export function zeroCopyStats(): SpliceEngineStats | undefined {
  return zeroCopyEngine()?.stats();
}

interface LibuvStreamHandle {
  reading?: boolean;
  readStop?(): number;
  readStart?(): number;
}

function handleOf(s: Socket): LibuvStreamHandle | null | undefined {
  return (s as unknown as { _handle?: LibuvStreamHandle | null })._handle;
}

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

  constructor(engine: SpliceEngine, source: Socket, sink: Socket) {
    this.engine = engine;
    this.source = source;
    this.sink = sink;
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
      (s as unknown as { _read: (n: number) => void })._read = noRead;
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
    const state = (this.source as unknown as { _readableState?: { ended?: boolean } })._readableState;
    return state?.ended === true || this.source.readableEnded;
  }

  /** Hands both fds to the engine; false when it cannot (engine off, a socket gone): stay on the JS path. */
  start(handlers: RelayHandlers): boolean {
    if (this.id !== undefined) return true;
    if (this.source.destroyed || this.sink.destroyed || this.sink.writableLength > 0) return false;
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
      delete (s as unknown as { _read?: unknown })._read; // back to net.Socket.prototype._read
    }
    const h = handleOf(s);
    if (h && !h.reading && !s.connecting && !s.destroyed && typeof h.readStart === 'function') {
      h.reading = true;
      h.readStart();
    }
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

function noRead(): void {}

/** The shape of a Node system error (`code` = errno name), so the close-reason logic treats it alike. */
function systemError(errno: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${errno}`);
  err.code = errno;
  err.syscall = syscall;
  return err;
}

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
