import type { Middleware } from '../../lib/common/types';
import { Waiter } from './stage';
import { readAttributes, type ToxicOptions, type ToxicType, toxicMiddleware } from './toxic';

export interface LatencyAttributes {
  /** Added delay, ms. */
  latency: number;
  /** Each chunk's delay is `latency ± jitter` (uniform), ms. */
  jitter: number;
}

/**
 * Toxiproxy's `latency`: each chunk leaves `latency ± jitter` ms after it was read (not after the
 * previous one left), so a stream keeps its throughput and only gains the delay. Chunks never
 * overtake each other: with jitter, one drawn shorter than its predecessor's waits for it.
 * What waits is held against the core's high-water mark, so a fast sender is stopped, not buffered.
 */
export const LATENCY: ToxicType<LatencyAttributes> = {
  type: 'latency',
  attributes: (input, base) => readAttributes('latency', input, { latency: 0, jitter: 0 }, base),
  stage(attrs, random) {
    const waiter = new Waiter();
    return {
      async chunk(data, arrivedAt, pass) {
        const { latency, jitter } = attrs();
        const delay = jitter > 0 ? latency + random.below(jitter * 2) - jitter : latency;
        await waiter.sleep(arrivedAt + delay - performance.now());
        await pass(data);
      },
      stop: () => waiter.stop(),
    };
  },
};

/**
 * @example
 * ```ts
 * middleware: [toxics.latency({ latency: 100, jitter: 20, direction: 'both', seed: 42 })]
 * ```
 */
export function latency(options: Partial<LatencyAttributes> & ToxicOptions): Middleware {
  return toxicMiddleware(LATENCY, options);
}
