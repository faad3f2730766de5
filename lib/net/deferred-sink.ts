import type { Transport, TransportHandlers } from './transport';
import type { Endpoint } from '../common/types';

/**
 * The upstream pump's sink while a middleware defers the upstream connect (`ctx.deferConnect()`):
 * queues writes and a FIN until the real socket exists, then hands them over in order. Its
 * `writableLength` is what it queued, so the pump's flow control stops reading the client at the
 * high-water mark exactly as it does for a socket still connecting.
 */
export class DeferredSink implements Transport {
  private queue: Array<[Buffer, (err?: Error | null) => void]> = [];
  private queued = 0;
  private ended = false;
  private target: Transport | undefined;

  get localEndpoint(): Endpoint | undefined {
    return this.target?.localEndpoint;
  }

  get remoteEndpoint(): Endpoint | undefined {
    return this.target?.remoteEndpoint;
  }

  get writableLength(): number {
    return this.target ? this.target.writableLength : this.queued;
  }

  get destroyed(): boolean {
    return this.target?.destroyed ?? false;
  }

  /** Only a sink: the connection reads the real transport itself. */
  attach(_handlers: TransportHandlers): void {}

  startReading(): void {}

  stopReading(): void {}

  write(chunk: Buffer, flushed: (err?: Error | null) => void): void {
    if (this.target) this.target.write(chunk, flushed);
    else {
      this.queue.push([chunk, flushed]);
      this.queued += chunk.length;
    }
  }

  end(): void {
    if (this.target) this.target.end();
    else this.ended = true;
  }

  reset(): void {
    if (this.target) this.target.reset();
    else this.drop();
  }

  destroy(): void {
    if (this.target) this.target.destroy();
    else this.drop();
  }

  /** From now on everything goes to `target`; what was queued goes first. */
  connectTo(target: Transport): void {
    this.target = target;
    const queue = this.queue;
    this.queue = [];
    this.queued = 0;
    for (const [chunk, flushed] of queue) target.write(chunk, flushed);
    if (this.ended) target.end();
  }

  private drop(): void {
    this.queue = [];
    this.queued = 0;
  }
}
