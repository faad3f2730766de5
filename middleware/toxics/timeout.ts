import { RedirectError } from '../../lib/common/errors';
import type { Middleware } from '../../lib/common/types';
import { Waiter } from './stage';
import { readAttributes, type ToxicOptions, type ToxicType, toxicMiddleware } from './toxic';

export interface TimeoutAttributes {
  /** Close the connection this long after the toxic applies, ms; 0 = stall until the toxic is removed. */
  timeout: number;
}

/**
 * Toxiproxy's `timeout`: nothing gets through (bytes and FIN are held, against the high-water
 * mark, so the sender is stopped); after `timeout` ms the connection closes with reason
 * `fault-timeout` (ERR_REDIRECT_FAULT_TIMEOUT): FIN both ways after what was already delivered.
 * With 0 it stalls until removed through the control API; then what it held goes on, in order.
 * (Toxiproxy drops the bytes it stalls; here none is lost.)
 */
export const TIMEOUT: ToxicType<TimeoutAttributes> = {
  type: 'timeout',
  attributes: (input, base) => readAttributes('timeout', input, { timeout: 0 }, base),
  stage(attrs) {
    const waiter = new Waiter();
    let timer: NodeJS.Timeout | undefined;
    let fail: ((err: RedirectError) => void) | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      const ms = attrs().timeout;
      if (ms > 0 && fail && !waiter.stopped) {
        const end = fail;
        timer = setTimeout(
          () => end(new RedirectError('ERR_REDIRECT_FAULT_TIMEOUT', `timeout toxic: closed after ${ms} ms`)),
          ms,
        );
      }
    };
    return {
      async chunk(data, _at, pass) {
        await waiter.hold();
        await pass(data);
      },
      end: () => waiter.hold(),
      start(f) {
        fail = f;
        arm();
      },
      // Toxiproxy restarts a toxic on update: the countdown starts again.
      update: arm,
      stop() {
        clearTimeout(timer);
        waiter.stop();
      },
    };
  },
};

export function timeout(options: Partial<TimeoutAttributes> & ToxicOptions): Middleware {
  return toxicMiddleware(TIMEOUT, options);
}
