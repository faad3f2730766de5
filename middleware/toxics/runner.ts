import { Observable } from 'rxjs';
import type { RedirectError } from '../../lib/common/errors';
import type { ByteOperator } from '../../lib/common/types';
import type { ToxicStage } from './stage';

/** A stage as one connection sees it: `active` is this connection's toxicity (and scope) draw. */
export interface AppliedStage {
  readonly stage: ToxicStage;
  active: boolean;
}

interface Queued {
  readonly data: Buffer;
  readonly at: number;
}

const END = Symbol('end');
/** Marks the chain asynchronous before its first byte leaves (docs/design.md, "Flow control"). */
const ASYNC_MARK = Buffer.alloc(0);

/**
 * Runs the toxics of one direction of one connection: chunks go through the stages one at a
 * time, in arrival order (Toxiproxy's chain of toxics). The list may change while bytes flow
 * (the control API adds and removes toxics on live connections): a chunk goes through the stages
 * present when it started; a stage removed meanwhile stops waiting at once.
 *
 * Memory: the runner queues what the core lets in. Its first output, an empty Buffer at
 * subscription, tells the core that this chain is asynchronous, so every byte queued or held by a
 * stage counts against `highWaterMark` from the first read on, even behind a stage that never
 * emits (timeout). Held chunks that would pin a much larger read buffer are copied.
 */
export class ToxicRunner {
  readonly stages: AppliedStage[] = [];
  private readonly queue: (Queued | typeof END)[] = [];
  private running = false;
  private closed = false;
  private subscriber: { next(b: Buffer): void; error(e: unknown): void; complete(): void } | undefined;

  /** Adds a stage at the end of the chain, and starts it. */
  add(applied: AppliedStage): void {
    this.stages.push(applied);
    if (this.subscriber !== undefined) this.startStage(applied);
  }

  /** Takes a stage out: what it holds goes on at once. */
  remove(stage: ToxicStage): void {
    const i = this.stages.findIndex((a) => a.stage === stage);
    if (i >= 0) this.stages.splice(i, 1);
    stage.stop();
  }

  /** Ends the flow from outside a chunk (a stage's timer). */
  readonly fail = (err: RedirectError): void => {
    if (this.closed) return;
    this.close();
    this.subscriber?.error(err);
  };

  readonly operator: ByteOperator = (source) =>
    new Observable<Buffer>((subscriber) => {
      this.subscriber = subscriber;
      const subscription = source.subscribe({
        next: (chunk) => this.push({ data: holdable(chunk), at: performance.now() }),
        error: (err: unknown) => {
          this.close();
          subscriber.error(err);
        },
        complete: () => this.push(END),
      });
      subscriber.next(ASYNC_MARK);
      for (const applied of this.stages) this.startStage(applied);
      return () => {
        this.close();
        subscription.unsubscribe();
      };
    });

  private startStage(applied: AppliedStage): void {
    if (applied.active && !this.closed) applied.stage.start?.(this.fail);
  }

  private push(item: Queued | typeof END): void {
    if (this.closed) return;
    this.queue.push(item);
    if (!this.running) {
      this.running = true;
      void this.drain();
    }
  }

  private async drain(): Promise<void> {
    try {
      for (let item = this.queue.shift(); item !== undefined && !this.closed; item = this.queue.shift()) {
        const stages = this.stages.slice();
        if (item === END) {
          for (const applied of stages) if (applied.active) await applied.stage.end?.();
          if (this.closed) return;
          this.close();
          this.subscriber?.complete();
          return;
        }
        await this.run(stages, 0, item.data, item.at);
      }
    } catch (err) {
      this.fail(err as RedirectError);
    } finally {
      this.running = false;
    }
  }

  private run(stages: readonly AppliedStage[], i: number, data: Buffer, at: number): Promise<void> {
    for (; i < stages.length; i++) {
      const applied = stages[i] as AppliedStage;
      if (applied.active && this.stages.includes(applied)) {
        return applied.stage.chunk(data, at, (piece) => this.run(stages, i + 1, piece, at));
      }
    }
    if (!this.closed && data.length > 0) this.subscriber?.next(data);
    return DONE;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    for (const applied of this.stages) applied.stage.stop();
  }
}

const DONE: Promise<void> = Promise.resolve();

/** A chunk held past its turn keeps its whole backing buffer alive: copy a small view of a large one. */
function holdable(chunk: Buffer): Buffer {
  return chunk.byteLength * 2 < chunk.buffer.byteLength ? Buffer.from(chunk) : chunk;
}
