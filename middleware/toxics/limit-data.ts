import { RedirectError } from '../../lib/common/errors';
import type { Middleware } from '../../lib/common/types';
import { readAttributes, type ToxicOptions, type ToxicType, toxicMiddleware } from './toxic';

export interface LimitDataAttributes {
  /** Bytes let through on this stream before the connection is closed. */
  bytes: number;
}

/**
 * Toxiproxy's `limit_data`: the first `bytes` bytes pass; then the connection closes with reason
 * `fault-limit` (ERR_REDIRECT_FAULT_LIMIT): FIN both ways after those bytes. The count survives
 * an update of `bytes` on a live connection.
 */
export const LIMIT_DATA: ToxicType<LimitDataAttributes> = {
  type: 'limit_data',
  attributes: (input, base) => readAttributes('limit_data', input, { bytes: 0 }, base),
  stage(attrs) {
    let sent = 0;
    const close = (limit: number): never => {
      throw new RedirectError('ERR_REDIRECT_FAULT_LIMIT', `limit_data toxic: closed after ${limit} bytes`);
    };
    return {
      async chunk(data, _at, pass) {
        const limit = attrs().bytes;
        const room = Math.max(0, limit - sent);
        const piece = room < data.length ? data.subarray(0, room) : data;
        if (piece.length > 0) {
          sent += piece.length;
          await pass(piece);
        }
        if (sent >= limit) close(limit);
      },
      stop: () => {},
    };
  },
};

export function limitData(options: Partial<LimitDataAttributes> & ToxicOptions): Middleware {
  return toxicMiddleware(LIMIT_DATA, options);
}
