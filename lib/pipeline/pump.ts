// Size: one direction's state machine (docs/design.md, "A direction's states") in one file; its
// flow-control accounting is the pure unit in flow-control.ts.
import { Observable, type Subscriber, type Subscription } from 'rxjs';
import { applyChain } from './compose';
import { RedirectError } from '../common/errors';
import type { ReadSizer } from '../net/large-reads';
import type { Transport } from '../net/transport';
import type { ByteOperator, DataPath, DirectionSummary } from '../common/types';
import type { RelayHandlers } from '../zero-copy/engine';
import type { ZeroCopyLink } from '../zero-copy/link';
import { FlowControl } from './flow-control';

/** A direction's phase; the diagram is in docs/design.md, "A direction's states". */
export type PumpPhase = 'idle' | 'flowing' | 'bypassing' | 'raw' | 'handing-off' | 'spliced' | 'ended' | 'stopped';

export interface PumpHooks {
  /** Bytes moved (re-arms the idle timer). */
  activity(): void;
  /** The chain errored or emitted something that is not bytes. */
  failed(err: RedirectError): void;
  /** The sink has been sent FIN after everything the chain emitted. */
  finished(): void;
  /** Zero-copy path: the engine saw the source's FIN (and passed it on) at `atNs` (process.hrtime's clock). */
  sourceEnded?(atNs: number): void;
  /** Zero-copy path: the engine hit a socket error on the source or the sink. */
  relayFailed?(err: Error, side: 'source' | 'sink'): void;
}

/** Reads are never smaller than Node's own. */
const LARGE_READ_MIN = 64 * 1024;

/**
 * Moves one direction: source transport → operators → sink transport, and
 * owns that direction's flow control (see docs/design.md, "Flow control").
 */
export class Pump implements ReadSizer {
  bytesRead = 0;
  reads = 0;
  bytesWritten = 0;
  path: DataPath = 'none';
  /** Bytes the zero-copy engine moved (included in bytesWritten). */
  zeroCopyBytes = 0;
  /** The engine took this direction over at some point. */
  handedOff = false;

  private readonly source: Transport;
  private readonly sink: Transport;
  private readonly operator: ByteOperator | undefined;
  /** High/low marks and the chain's backlog (lib/pipeline/flow-control.ts). */
  private readonly flow: FlowControl;
  private readonly hooks: PumpHooks;
  /** limits.maxReadBytes: large reads on a raw direction; 0 or 64 KiB keeps Node's reads. */
  private readonly maxReadBytes: number;

  private input: Subscriber<Buffer> | undefined;
  private subscription: Subscription | undefined;
  private probing = false;
  private reading = false;
  private chainDone = false;
  /** Where this direction is (docs/design.md, "A direction's states"). */
  private phase: PumpPhase = 'idle';
  /** The sink got its FIN (kept after a later stop(), for the connection's close). */
  private endedSink = false;
  private heldForBypass: Buffer[] | undefined;
  /** Zero-copy: undefined when this direction must stay on the JS path. */
  private readonly link: ZeroCopyLink | undefined;
  /** The source's FIN arrived while the chain was finishing for a bypass, or during a handoff. */
  private endPending = false;
  private splicedIn = 0;
  /** Raw direction with a link: the handoff waits for bulk ('auto') and is tried once. */
  private spliceTried = false;

  constructor(
    source: Transport,
    sink: Transport,
    operator: ByteOperator | undefined,
    highWaterMark: number,
    hooks: PumpHooks,
    link?: ZeroCopyLink,
    maxReadBytes = 0,
  ) {
    this.maxReadBytes = maxReadBytes;
    this.source = source;
    this.sink = sink;
    this.operator = operator;
    this.flow = new FlowControl(highWaterMark);
    this.hooks = hooks;
    this.link = link;
  }

  /** Wires the chain, feeds bytes a resolver already read, then starts reading. */
  start(leftover?: Buffer): void {
    if (this.operator) {
      let output: Observable<Buffer>;
      const input$ = new Observable<Buffer>((subscriber) => {
        this.input = subscriber;
        return () => {
          this.input = undefined;
        };
      });
      try {
        output = applyChain(this.operator, input$);
      } catch (err) {
        this.fail(err);
        return;
      }
      this.subscription = output.subscribe({
        next: (chunk) => this.emit(chunk),
        error: (err: unknown) => this.fail(err),
        complete: () => this.chainCompleted(),
      });
    }
    if (this.stopped) return;
    if (this.phase === 'idle') this.phase = 'flowing';
    if (leftover && leftover.length > 0) this.onData(leftover);
    if (this.stopped) return;
    this.path = 'js';
    if (this.phase === 'bypassing') {
      // bypassed before the first byte: the chain completes at once, then the raw path starts
      if (!this.chainDone) this.input?.complete();
      return;
    }
    this.reading = true;
    // A raw direction with a link goes to the kernel at once ('always', or a bypass asked before
    // the start), otherwise once it shows bulk (bulk()).
    if (!this.operator && this.link && (this.link.atOnce || this.spliceTried)) {
      this.spliceTried = true;
      void this.handOff();
      return;
    }
    this.allowLargeReads();
    if (!this.flow.paused) this.source.startReading();
  }

  /**
   * ctx.bypass(): the chain gets no more bytes; once it completes (after
   * flushing what it emitted) the rest flows raw, in the kernel when a link
   * is available. A direction without a chain is handed to the kernel now (not
   * at bulk); a no-op on one whose chain ended.
   */
  bypass(): void {
    if (!this.operator) {
      if (this.stopped || !this.link || this.spliceTried) return;
      this.spliceTried = true;
      if (this.reading) queueMicrotask(() => void this.handOff());
      return;
    }
    if ((this.phase !== 'idle' && this.phase !== 'flowing') || this.chainDone) return;
    this.phase = 'bypassing';
    this.reading = false;
    this.source.stopReading();
    // Inside a feeding call the chain is still handling the current chunk:
    // onData completes the input once that returns.
    if (!this.flow.isFeeding) this.input?.complete();
  }

  /** Reads may be large once the flow shows bulk (docs/design.md, "Large reads"). */
  private allowLargeReads(): void {
    // A read never exceeds the mark, so neither does a slab's region.
    const largest = Math.min(this.maxReadBytes, this.flow.highWaterMark);
    // With a link the transport also reports bulk for the handoff, even without large reads.
    if (largest > LARGE_READ_MIN || this.link) this.source.largeReads?.(largest, this);
  }

  /**
   * The flow showed bulk (a read filled Node's 64 KiB). A raw direction with a link is handed to
   * the kernel now (docs/zero-copy.md, "When to splice"); otherwise raw and synchronous
   * directions read large.
   */
  bulk(): boolean {
    if (this.stopped) return false;
    if (this.link && !this.operator && !this.spliceTried) {
      this.spliceTried = true;
      // Not inside the socket's read callback: the handoff reads out what Node buffered.
      queueMicrotask(() => void this.handOff());
      return false;
    }
    return this.operator === undefined || this.flow.mode === 'sync';
  }

  /** Large reads: regions may be reused once the sink took their bytes (no chain keeps a view). */
  get reusable(): boolean {
    return this.operator === undefined;
  }

  /** Large reads: bytes handed on that may still be referenced (none once the sink is gone). */
  get inUse(): number {
    return this.sink.destroyed ? 0 : this.flow.backlog + this.sink.writableLength;
  }

  /** Large reads: the next read may take what is left under the high-water mark. */
  nextReadSize(): number {
    return this.flow.nextReadSize(
      this.operator !== undefined,
      this.sink.writableLength,
      this.maxReadBytes,
      LARGE_READ_MIN,
    );
  }

  /** A chunk from the source. */
  onData(chunk: Buffer): void {
    if (this.stopped) return;
    this.bytesRead += chunk.length;
    this.reads++;
    this.hooks.activity();
    if (this.chainDone) {
      // The chain finished early (e.g. take): the rest is discarded, unless it completed for a bypass.
      if (!this.pastChain) return;
      this.write(chunk);
      this.checkHigh();
      return;
    }
    if (this.phase === 'bypassing' && this.input !== undefined) {
      // Bytes Node had buffered before the bypass: they belong after the chain's output.
      if (this.heldForBypass === undefined) this.heldForBypass = [chunk];
      else this.heldForBypass.push(chunk);
      return;
    }
    const input = this.input;
    if (input === undefined) {
      // No middleware on this direction: straight to the sink.
      this.write(chunk);
      this.checkHigh();
      return;
    }
    this.flow.feedStart(chunk.length);
    try {
      input.next(chunk);
    } finally {
      this.flow.feedEnd();
    }
    if (this.phase === 'bypassing') this.input?.complete();
    this.checkHigh();
  }

  /** The source sent FIN. */
  onSourceEnd(): void {
    if (this.stopped) return;
    if (this.phase === 'handing-off' || this.phase === 'bypassing') {
      this.endPending = true;
      return;
    }
    if (this.pastChain) {
      this.finishSink();
      return;
    }
    if (this.input) this.input.complete();
    else if (!this.operator) this.chainCompleted();
  }

  /** Stops everything; no more writes or callbacks. */
  stop(): void {
    if (this.stopped) return;
    this.phase = 'stopped';
    this.subscription?.unsubscribe();
    this.input = undefined;
    // Stops the engine now: a reset or destroy that follows closes the fds it was using.
    const moved = this.link?.abort();
    if (moved) this.spliced(moved[0], moved[1]);
  }

  private get stopped(): boolean {
    return this.phase === 'stopped';
  }

  /** Bytes flow past a chain that completed for a bypass (raw, or on the way to or in the engine). */
  private get pastChain(): boolean {
    return this.chainDone && (this.phase === 'raw' || this.phase === 'handing-off' || this.phase === 'spliced');
  }

  get ended(): boolean {
    return this.endedSink;
  }

  get held(): number {
    return this.flow.backlog + this.sink.writableLength;
  }

  summary(): DirectionSummary {
    return {
      bytesRead: this.bytesRead,
      reads: this.reads,
      bytesWritten: this.bytesWritten,
      peakBuffered: this.flow.peakBuffered,
      pauses: this.flow.pauses,
      path: this.handedOff ? (this.bytesWritten > this.zeroCopyBytes ? 'mixed' : 'zero-copy') : this.path,
      zeroCopyBytes: this.zeroCopyBytes,
    };
  }

  private emit(chunk: unknown): void {
    if (this.stopped) return;
    let buf: Buffer;
    if (Buffer.isBuffer(chunk)) buf = chunk;
    else if (chunk instanceof Uint8Array) buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    else {
      this.fail(new TypeError(`a middleware emitted ${describe(chunk)} where a Buffer was expected`));
      return;
    }
    const feeding = this.flow.isFeeding;
    if (this.flow.emitted(buf.length, this.input !== undefined)) this.maybeResume();
    if (buf.length === 0) return;
    this.write(buf);
    this.hooks.activity();
    if (!feeding) this.checkHigh();
  }

  private write(buf: Buffer): void {
    this.bytesWritten += buf.length;
    this.sink.write(buf, this.onFlushed);
    this.flow.measure(this.sink.writableLength);
  }

  private readonly onFlushed = (): void => {
    if (!this.stopped) this.maybeResume();
    if (this.flow.backlog + this.sink.writableLength === 0) this.source.readsDrained?.();
  };

  private checkHigh(): void {
    if (this.flow.shouldPause(this.sink.writableLength)) {
      this.source.stopReading();
      if (this.flow.mode === 'unknown' && !this.probing) this.probeSilentChain();
    }
  }

  /**
   * A chain that has emitted nothing yet and holds a high-water mark of input
   * is either slow to start or dropping everything. If nothing comes out
   * within a turn of the event loop, treat it as synchronous (dropping), so
   * it cannot stall the sender for good.
   */
  private probeSilentChain(): void {
    this.probing = true;
    setImmediate(() => {
      this.probing = false;
      if (this.stopped || this.flow.mode !== 'unknown') return;
      this.flow.assumeSync();
      this.maybeResume();
    });
  }

  private maybeResume(): void {
    if (this.flow.shouldResume(this.sink.writableLength) && this.reading && !this.stopped) {
      this.source.startReading();
    }
  }

  private chainCompleted(): void {
    if (this.stopped || this.chainDone) return;
    this.chainDone = true;
    this.flow.forgetBacklog();
    if (this.phase === 'bypassing') {
      this.continueRaw();
      return;
    }
    this.finishSink();
  }

  private finishSink(): void {
    if (this.endedSink) return;
    this.maybeResume();
    this.endedSink = true;
    this.phase = 'ended';
    this.sink.end();
    this.hooks.finished();
  }

  /** The bypassed chain has completed: the rest of the stream flows raw. */
  private continueRaw(): void {
    this.phase = 'raw';
    const held = this.heldForBypass ?? [];
    this.heldForBypass = undefined;
    for (const chunk of held) this.write(chunk);
    if (this.link) {
      void this.handOff();
      return;
    }
    if (this.endPending) {
      this.endPending = false;
      this.finishSink();
      return;
    }
    this.reading = true;
    if (this.flow.paused) return; // maybeResume restarts it
    this.source.startReading();
    this.checkHigh();
  }

  /**
   * The lossless switch to the engine (docs/zero-copy.md): stop the source at
   * libuv level, send what Node buffered through the JS path, wait until the
   * sink's JS queue is empty, then hand both fds over. Anything that makes the
   * engine refuse leaves the direction on the JS path.
   */
  private async handOff(): Promise<void> {
    const link = this.link;
    if (!link || this.stopped) return;
    // From flowing (a direction without a chain) or raw (after a bypass); a refusal goes back.
    const before = this.phase;
    this.phase = 'handing-off';
    this.source.stopReading();
    link.drainSource();
    await link.flushed();
    if (this.stopped) return;
    this.phase = before;
    if (!this.endPending && !link.sourceEnded() && !this.sink.destroyed) {
      let started = false;
      try {
        started = link.start(this.relayHandlers());
      } catch {
        started = false; // e.g. EBADF on a socket closing under us: the JS path reports it
      }
      if (started) {
        this.handedOff = true;
        this.phase = 'spliced';
        this.reading = false;
        this.source.endLargeReads?.();
        return;
      }
    }
    if (this.endPending) {
      this.endPending = false;
      this.onSourceEnd();
      return;
    }
    // Restart reading for real (the handle may be stopped behind Node's back);
    // checkHigh stops it again properly if the sink is still full.
    this.reading = true;
    this.flow.paused = false;
    this.allowLargeReads();
    this.source.startReading();
    link.resumeSource();
    this.checkHigh();
  }

  /** What the engine reports for this direction (made at handoff: most pumps never hand off). */
  private relayHandlers(): RelayHandlers {
    return {
      progress: (bytesIn, bytesOut) => this.spliced(bytesIn, bytesOut),
      end: (bytesIn, bytesOut, eofAtNs) => {
        this.spliced(bytesIn, bytesOut);
        if (this.stopped) return;
        this.chainDone = true;
        this.endedSink = true;
        this.phase = 'ended';
        this.hooks.sourceEnded?.(eofAtNs);
        this.hooks.finished();
      },
      error: (err, side, bytesIn, bytesOut) => {
        this.spliced(bytesIn, bytesOut);
        if (this.stopped) return;
        this.hooks.relayFailed?.(err, side);
      },
    };
  }

  /** Reads the engine's totals now (the idle timer calls this before it decides). */
  pollSpliced(): void {
    const moved = this.link?.poll();
    if (moved) this.spliced(moved[0], moved[1]);
  }

  /** Engine totals for this relay → the direction's counters. */
  private spliced(bytesIn: number, bytesOut: number): void {
    const dIn = bytesIn - this.splicedIn;
    const dOut = bytesOut - this.zeroCopyBytes;
    if (dIn <= 0 && dOut <= 0) return;
    this.splicedIn = bytesIn;
    this.zeroCopyBytes = bytesOut;
    this.bytesRead += Math.max(0, dIn);
    this.bytesWritten += Math.max(0, dOut);
    this.hooks.activity();
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    const wrapped =
      err instanceof RedirectError
        ? err
        : new RedirectError('ERR_REDIRECT_MIDDLEWARE', `middleware failed: ${messageOf(err)}`, { cause: err });
    this.stop();
    this.hooks.failed(wrapped);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'Object'})`;
  return `a ${typeof value}`;
}
