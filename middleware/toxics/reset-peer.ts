import { RedirectError } from '../../lib/common/errors';
import type { Middleware } from '../../lib/common/types';
import { Waiter } from './stage';
import { readAttributes, type ToxicOptions, type ToxicType, toxicMiddleware } from './toxic';

export interface ResetPeerAttributes {
  /** Wait this long after the first byte (or FIN) on the stream, then reset, ms; 0 = at once. */
  timeout: number;
}

/**
 * Toxiproxy's `reset_peer`: the first chunk (or FIN) on its stream starts the countdown and is
 * not delivered; after `timeout` ms both sockets are reset (a real RST, SO_LINGER 0) with reason
 * `fault-reset` (ERR_REDIRECT_FAULT_RESET). Removed before then, it lets everything through.
 */
export const RESET_PEER: ToxicType<ResetPeerAttributes> = {
  type: 'reset_peer',
  attributes: (input, base) => readAttributes('reset_peer', input, { timeout: 0 }, base),
  stage(attrs) {
    const waiter = new Waiter();
    const reset = async (): Promise<boolean> => {
      const ms = attrs().timeout;
      await waiter.sleep(ms);
      if (waiter.stopped) return false;
      throw new RedirectError('ERR_REDIRECT_FAULT_RESET', `reset_peer toxic: reset after ${ms} ms`);
    };
    return {
      async chunk(data, _at, pass) {
        await reset();
        await pass(data);
      },
      end: async () => {
        await reset();
      },
      stop: () => waiter.stop(),
    };
  },
};

export function resetPeer(options: Partial<ResetPeerAttributes> & ToxicOptions): Middleware {
  return toxicMiddleware(RESET_PEER, options);
}
