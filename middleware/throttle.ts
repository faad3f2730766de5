import { asapScheduler, concatMap, map, type Observable, of, timer } from 'rxjs';
import { invalidOption } from '../lib/common/errors';
import type { Middleware } from '../lib/common/types';
import { checkDirection, type Direction, onDirections, positiveInt } from './direction';

/**
 * A token bucket: `bytesPerSecond` refill, at most `burst` bytes banked. Share one between
 * `throttle` middlewares (or connections) to cap their sum.
 */
export class TokenBucket {
  readonly bytesPerSecond: number;
  readonly burst: number;
  private tokens: number;
  private last = performance.now();

  constructor(bytesPerSecond: number, burst = bytesPerSecond) {
    this.bytesPerSecond = positiveInt('TokenBucket.bytesPerSecond', bytesPerSecond);
    this.burst = positiveInt('TokenBucket.burst', burst);
    this.tokens = this.burst;
  }

  /** Takes `bytes` now (going into debt if needed) and returns how many ms to wait before using them. */
  reserve(bytes: number): number {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000);
    this.last = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond;
  }
}

export interface ThrottleOptions {
  /** Rate per connection and direction (ignored when `shared` is given). */
  bytesPerSecond?: number;
  /** Bytes that may pass at once after a quiet spell. Default: one second's worth. */
  burst?: number;
  /** One bucket for every connection (and direction) using it: their sum is capped. */
  shared?: TokenBucket;
  /** Default 'both'. */
  direction?: Direction;
}

/**
 * Limits throughput by delaying each chunk's emission until the token bucket allows its bytes
 * (concatMap with a timer). It never buffers on its own account: once a chunk waits, the chain
 * is asynchronous to the core, whose flow control stops reading the sender when the bytes held
 * reach `highWaterMark` (the first chunk is emitted a microtask late so that this holds from the
 * first read on). Memory bound: `limits.highWaterMark` plus one read per direction (what
 * the core lets in), bytes unchanged and in order.
 *
 * @example
 * ```ts
 * const all = new TokenBucket(10 * 1024 * 1024); // 10 MiB/s across every connection
 * middleware: [throttle({ shared: all, direction: 'downstream' }), throttle({ bytesPerSecond: 1024 * 1024 })];
 * ```
 */
export function throttle(options: ThrottleOptions): Middleware {
  if (options === null || typeof options !== 'object') throw invalidOption('throttle', 'must be an object');
  const direction = checkDirection('throttle', options.direction, 'both');
  const { shared } = options;
  if (shared !== undefined && !(shared instanceof TokenBucket)) {
    throw invalidOption('throttle.shared', 'must be a TokenBucket');
  }
  let rate = 0;
  let burst: number | undefined;
  if (!shared) {
    rate = positiveInt('throttle.bytesPerSecond', options.bytesPerSecond);
    burst = positiveInt('throttle.burst', options.burst, rate);
  }
  return () =>
    onDirections(direction, () => {
      const bucket = shared ?? new TokenBucket(rate, burst);
      return (source: Observable<Buffer>) =>
        source.pipe(
          concatMap((chunk, index) => {
            const wait = bucket.reserve(chunk.length);
            if (wait > 0) return timer(wait).pipe(map(() => chunk));
            // The first chunk leaves a microtask later: the core then counts this chain as
            // asynchronous before the next read, so bytes queued behind a wait are held
            // against the high-water mark from the start (docs/design.md, "Flow control").
            return index === 0 ? timer(0, asapScheduler).pipe(map(() => chunk)) : of(chunk);
          }),
        );
    });
}
