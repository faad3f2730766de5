import type { Middleware } from '../../lib/common/types';
import { Waiter } from './stage';
import { readAttributes, type ToxicOptions, type ToxicType, toxicMiddleware } from './toxic';

export interface SlowCloseAttributes {
  /** How long the FIN waits after the last byte, ms. */
  delay: number;
}

/** Toxiproxy's `slow_close`: bytes pass at once; the FIN that follows them waits `delay` ms. */
export const SLOW_CLOSE: ToxicType<SlowCloseAttributes> = {
  type: 'slow_close',
  attributes: (input, base) => readAttributes('slow_close', input, { delay: 0 }, base),
  stage(attrs) {
    const waiter = new Waiter();
    return {
      chunk: (data, _at, pass) => pass(data),
      end: () => waiter.sleep(attrs().delay),
      stop: () => waiter.stop(),
    };
  },
};

export function slowClose(options: Partial<SlowCloseAttributes> & ToxicOptions): Middleware {
  return toxicMiddleware(SLOW_CLOSE, options);
}
