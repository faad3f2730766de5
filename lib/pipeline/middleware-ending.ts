import type { RedirectError } from '../common/errors';
import type { CloseReason } from '../common/types';

/** How a middleware's error ends its flow: RST both ways, or FIN after what was written. */
export type Ending = 'reset' | 'close';

/**
 * Codes with which a middleware ends its flow for a reason of its own (the fault-injection
 * toxics); every other error is `middleware-error` with RST both ways. Here, below both
 * drivers of the pipeline (the server's Connection and testMiddleware), so they agree.
 */
const MIDDLEWARE_ENDINGS: Partial<Record<RedirectError['code'], { reason: CloseReason; how: Ending }>> = {
  ERR_REDIRECT_FAULT_RESET: { reason: 'fault-reset', how: 'reset' },
  ERR_REDIRECT_FAULT_TIMEOUT: { reason: 'fault-timeout', how: 'close' },
  ERR_REDIRECT_FAULT_LIMIT: { reason: 'fault-limit', how: 'close' },
};

/** A middleware errored its chain: the close reason and manner its code names. */
export function middlewareFault(error: RedirectError): { reason: CloseReason; error: RedirectError; how: Ending } {
  const ending = MIDDLEWARE_ENDINGS[error.code];
  return ending ? { ...ending, error } : { reason: 'middleware-error', how: 'reset', error };
}
