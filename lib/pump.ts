import { Observable, type Subscriber, type Subscription } from 'rxjs';
import { RedirectError } from './errors';
import type { Transport } from './transport';
import type { ByteOperator, DataPath, DirectionSummary } from './types';

export interface PumpHooks {
  /** Bytes moved (re-arms the idle timer). */
  activity(): void;
  /** The chain errored or emitted something that is not bytes. */
  failed(err: RedirectError): void;
  /** The sink has been sent FIN after everything the chain emitted. */
  finished(): void;
}

/**
 * Moves one direction: source transport → operators → sink transport, and
 * owns that direction's flow control (see docs/design.md, "Flow control").
 */
export class Pump {
  bytesRead = 0;
  bytesWritten = 0;
  peakBuffered = 0;
  pauses = 0;
  path: DataPath = 'none';

  private readonly source: Transport;
  private readonly sink: Transport;
  private readonly operator: ByteOperator | undefined;
  private readonly highWaterMark: number;
  private readonly lowWaterMark: number;
  private readonly hooks: PumpHooks;

  private input: Subscriber<Buffer> | undefined;
  private subscription: Subscription | undefined;
  /** Bytes the chain has not answered for (see the design doc). */
  private backlog = 0;
  /** Input chunk sizes not yet paid back, oldest first (asynchronous chains only). */
  private pendingSizes: number[] = [];
  /**
   * What the chain has shown so far: 'unknown' until its first output,
   * 'sync' once it answered inside a feeding call, 'async' once it emitted
   * outside one. See the design doc.
   */
  private mode: 'unknown' | 'sync' | 'async' = 'unknown';
  private probing = false;
  private feeding = false;
  private emittedWhileFeeding = false;
  private stoppedForFlow = false;
  private reading = false;
  private chainDone = false;
  private stopped = false;
  private endedSink = false;

  constructor(
    source: Transport,
    sink: Transport,
    operator: ByteOperator | undefined,
    highWaterMark: number,
    hooks: PumpHooks,
  ) {
    this.source = source;
    this.sink = sink;
    this.operator = operator;
    this.highWaterMark = highWaterMark;
    this.lowWaterMark = Math.floor(highWaterMark / 2);
    this.hooks = hooks;
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
        output = this.operator(input$);
        if (!output || typeof output.subscribe !== 'function') {
          throw new TypeError('a middleware operator must return an Observable');
        }
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
    if (leftover && leftover.length > 0) this.onData(leftover);
    if (this.stopped) return;
    this.path = 'js';
    this.reading = true;
    if (!this.stoppedForFlow) this.source.startReading();
  }

  /** A chunk from the source. */
  onData(chunk: Buffer): void {
    if (this.stopped) return;
    this.bytesRead += chunk.length;
    this.hooks.activity();
    if (this.chainDone) return; // the chain finished early (e.g. take): the rest is discarded
    const input = this.input;
    if (input === undefined) {
      // No middleware on this direction: straight to the sink.
      this.write(chunk);
      this.checkHigh();
      return;
    }
    this.backlog += chunk.length;
    if (this.mode !== 'sync') this.pendingSizes.push(chunk.length);
    this.feeding = true;
    this.emittedWhileFeeding = false;
    try {
      input.next(chunk);
    } finally {
      this.feeding = false;
    }
    // A chain that answers inside the feeding call has dealt with everything
    // fed so far: what it did not emit it dropped or holds by design.
    if (this.emittedWhileFeeding && this.mode === 'unknown') this.mode = 'sync';
    if (this.mode === 'sync' || this.emittedWhileFeeding) {
      this.backlog = 0;
      this.pendingSizes.length = 0;
    }
    this.checkHigh();
  }

  /** The source sent FIN. */
  onSourceEnd(): void {
    if (this.stopped) return;
    if (this.input) this.input.complete();
    else if (!this.operator) this.chainCompleted();
  }

  /** Stops everything; no more writes or callbacks. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.subscription?.unsubscribe();
    this.input = undefined;
  }

  get ended(): boolean {
    return this.endedSink;
  }

  get held(): number {
    return this.backlog + this.sink.writableLength;
  }

  summary(): DirectionSummary {
    return {
      bytesRead: this.bytesRead,
      bytesWritten: this.bytesWritten,
      peakBuffered: this.peakBuffered,
      pauses: this.pauses,
      path: this.path,
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
    if (this.feeding) this.emittedWhileFeeding = true;
    else if (this.input !== undefined || this.backlog > 0) this.payBack(buf.length);
    if (buf.length === 0) return;
    this.write(buf);
    this.hooks.activity();
    if (!this.feeding) this.checkHigh();
  }

  /** An output arrived outside a feeding call: the chain is asynchronous. */
  private payBack(outputBytes: number): void {
    this.mode = 'async';
    let paid = 0;
    do {
      const size = this.pendingSizes.shift();
      if (size === undefined) break;
      paid += size;
    } while (paid < outputBytes);
    this.backlog = Math.max(0, this.backlog - Math.max(paid, outputBytes));
    this.maybeResume();
  }

  private write(buf: Buffer): void {
    this.bytesWritten += buf.length;
    this.sink.write(buf, this.onFlushed);
    const held = this.backlog + this.sink.writableLength;
    if (held > this.peakBuffered) this.peakBuffered = held;
  }

  private readonly onFlushed = (): void => {
    if (!this.stopped) this.maybeResume();
  };

  private checkHigh(): void {
    const held = this.backlog + this.sink.writableLength;
    if (held > this.peakBuffered) this.peakBuffered = held;
    if (!this.stoppedForFlow && held >= this.highWaterMark) {
      this.stoppedForFlow = true;
      this.pauses++;
      this.source.stopReading();
      if (this.mode === 'unknown' && !this.probing) this.probeSilentChain();
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
      if (this.stopped || this.mode !== 'unknown') return;
      this.mode = 'sync';
      this.backlog = 0;
      this.pendingSizes.length = 0;
      this.maybeResume();
    });
  }

  private maybeResume(): void {
    if (!this.stoppedForFlow) return;
    if (this.backlog + this.sink.writableLength > this.lowWaterMark) return;
    this.stoppedForFlow = false;
    if (this.reading && !this.stopped) this.source.startReading();
  }

  private chainCompleted(): void {
    if (this.stopped || this.chainDone) return;
    this.chainDone = true;
    this.backlog = 0;
    this.pendingSizes.length = 0;
    this.maybeResume();
    this.endedSink = true;
    this.sink.end();
    this.hooks.finished();
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
