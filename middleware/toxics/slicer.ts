import { invalidOption } from '../../lib/common/errors';
import type { Middleware } from '../../lib/common/types';
import type { Random } from './random';
import { Waiter } from './stage';
import { readAttributes, type ToxicOptions, type ToxicType, toxicMiddleware } from './toxic';

export interface SlicerAttributes {
  /** Mean size of a slice, bytes (at least 1). */
  average_size: number;
  /** Slices vary by up to this much around the mean, bytes (less than average_size). */
  size_variation: number;
  /** Wait between slices, µs (Node's timers round it up to whole ms; 0 = no wait). */
  delay: number;
}

/**
 * Toxiproxy's `slicer`: each chunk is cut into slices of about `average_size` bytes (halving it
 * at a point moved by up to `size_variation`, until the pieces are small enough), sent in order
 * with `delay` µs between them. Bytes are unchanged; with a seed the cuts repeat exactly.
 */
export const SLICER: ToxicType<SlicerAttributes> = {
  type: 'slicer',
  attributes(input, base) {
    const a = readAttributes('slicer', input, { average_size: 0, size_variation: 0, delay: 0 }, base);
    if (a.average_size < 1) throw invalidOption('slicer.average_size', 'must be at least 1');
    if (a.size_variation >= a.average_size) {
      throw invalidOption('slicer.size_variation', 'must be smaller than average_size');
    }
    return a;
  },
  stage(attrs, random) {
    const waiter = new Waiter();
    return {
      async chunk(data, _at, pass) {
        const { delay } = attrs();
        const cuts = sliceBounds(data.length, attrs(), random);
        let start = 0;
        for (const end of cuts) {
          if (start > 0 && delay > 0) await waiter.sleep(delay / 1000);
          await pass(data.subarray(start, end));
          start = end;
        }
      },
      stop: () => waiter.stop(),
    };
  },
};

/** The end offset of each slice of a `length`-byte chunk, in order. */
export function sliceBounds(length: number, a: SlicerAttributes, random: Random): number[] {
  const ends: number[] = [];
  // An explicit stack instead of recursion: left halves first, so offsets come out in order.
  const stack: [number, number][] = [[0, length]];
  while (stack.length > 0) {
    const [start, end] = stack.pop() as [number, number];
    if (end - start - a.average_size <= a.size_variation) {
      ends.push(end);
      continue;
    }
    let mid = start + Math.floor((end - start) / 2);
    if (a.size_variation > 0) mid += random.below(a.size_variation * 2) - a.size_variation;
    stack.push([mid, end], [start, mid]);
  }
  return ends;
}

export function slicer(options: Partial<SlicerAttributes> & ToxicOptions): Middleware {
  return toxicMiddleware(SLICER, options);
}
