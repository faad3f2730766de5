import type { Middleware } from '../../lib/common/types';
import { TokenBucket } from '../throttle';
import { Waiter } from './stage';
import { readAttributes, type ToxicOptions, type ToxicType, toxicMiddleware } from './toxic';

export interface BandwidthAttributes {
  /** KB/s (1 KB = 1000 bytes, as in Toxiproxy); 0 = no limit. */
  rate: number;
}

/** A piece is at most this long a slice of the rate (Toxiproxy sends in 100 ms steps too). */
const STEP_MS = 100;

/**
 * Toxiproxy's `bandwidth`, on `throttle`'s token bucket: each piece (at most 100 ms worth of the
 * rate) waits until the bucket allows its bytes. The bucket banks at most one piece, so an idle
 * spell buys at most 100 ms worth: enough to make up for late timers, so the long-run rate holds
 * (a bucket banking nothing loses each timer's lateness: 0.7 of the rate at 10 MB/s). A rate
 * changed live takes effect from the next piece.
 */
export const BANDWIDTH: ToxicType<BandwidthAttributes> = {
  type: 'bandwidth',
  attributes: (input, base) => readAttributes('bandwidth', input, { rate: 0 }, base),
  stage(attrs) {
    const waiter = new Waiter();
    let bucket: TokenBucket | undefined;
    return {
      async chunk(data, _at, pass) {
        let rest = data;
        while (rest.length > 0) {
          const { rate } = attrs();
          if (rate === 0 || waiter.stopped) {
            await pass(rest);
            return;
          }
          const bytesPerSecond = rate * 1000;
          const step = Math.max(1, Math.floor((bytesPerSecond * STEP_MS) / 1000));
          if (bucket?.bytesPerSecond !== bytesPerSecond) {
            bucket = new TokenBucket(bytesPerSecond, step);
            bucket.reserve(step); // starts empty: the first piece waits like the rest, as in Toxiproxy
          }
          const piece = rest.subarray(0, step);
          rest = rest.subarray(piece.length);
          await waiter.sleep(bucket.reserve(piece.length));
          await pass(piece);
        }
      },
      stop: () => waiter.stop(),
    };
  },
};

/** @example `toxics.bandwidth({ rate: 100 })` — 100 KB/s to the client. */
export function bandwidth(options: Partial<BandwidthAttributes> & ToxicOptions): Middleware {
  return toxicMiddleware(BANDWIDTH, options);
}
