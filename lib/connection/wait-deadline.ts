import { RedirectError } from '../common/errors';
import type { CloseReason, ResolvedTarget } from '../common/types';

/** What a connection waits for under a deadline, at most one at a time (docs/design.md, "Deadlines"). */
export type Wait = 'resolve' | 'choose' | 'connect';

/** The close reason and error of a deadline that passed while waiting for `wait`. */
export function waitExpired(
  wait: Wait,
  ms: number,
  to: ResolvedTarget | undefined,
): { reason: CloseReason; error: RedirectError } {
  if (wait === 'resolve') {
    return {
      reason: 'resolve-failed',
      error: new RedirectError('ERR_REDIRECT_RESOLVE_TIMEOUT', `no redirect record within ${ms} ms`),
    };
  }
  if (wait === 'choose') {
    return {
      reason: 'connect-timeout',
      error: new RedirectError('ERR_REDIRECT_CONNECT_TIMEOUT', `no upstream target was chosen within ${ms} ms`),
    };
  }
  return {
    reason: 'connect-timeout',
    error: new RedirectError(
      'ERR_REDIRECT_CONNECT_TIMEOUT',
      `no connection to ${to?.host}:${to?.port} within ${ms} ms`,
    ),
  };
}
