import type { Socket } from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { invalidOption } from '../common/errors';
import {
  fdOf,
  type LinuxAddon,
  optionalLinux,
  type SpliceEngineStats,
  type SpliceReportCallback,
} from '../platform/addon';

/**
 * The zero-copy path (Linux): a direction with no middleware, or one a
 * middleware bypassed, is handed to the native splice engine
 * (native/splice-engine.cc) once its JS side is drained. The handoff story
 * and its traps are in docs/zero-copy.md.
 */

/**
 * 'auto': a direction without middleware goes to the kernel once it shows bulk; 'always': at once
 * (before the first byte); 'off': never (docs/zero-copy.md, "When to splice").
 */
export type ZeroCopyMode = 'auto' | 'always' | 'off';

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

  private readonly onReport: SpliceReportCallback = (id, kind, bytesIn, bytesOut, errno, side, eofAtNs) => {
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

/** The shape of a Node system error (`code` = errno name), so the close-reason logic treats it alike. */
function systemError(errno: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${errno}`);
  err.code = errno;
  err.syscall = syscall;
  return err;
}
