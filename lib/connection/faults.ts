import { asRedirectError, errnoOf, RedirectError } from '../common/errors';
import type { CloseReason } from '../common/types';

// Shared with testMiddleware, which drives the same pipeline (lib/pipeline/memory-flow.ts).
export { asRedirectError } from '../common/errors';
export { middlewareFault } from '../pipeline/middleware-ending';

/** How a connection ends after a fault: the close reason and the error reported with it. */
export interface Fault {
  readonly reason: CloseReason;
  readonly error: RedirectError;
}

/** A peer that went away abruptly: reported as `<side>-reset`, not as an error of ours. */
const RESET_ERRNOS: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
/** Connect failures the operator fixes in routing, not at the upstream: `upstream-unreachable`. */
const UNREACHABLE_ERRNOS: ReadonlySet<string> = new Set([
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENETDOWN',
  'EHOSTDOWN',
  'ETIMEDOUT',
]);

/** A socket error on `side`; before the upstream connected, it says why the connect failed. */
export function socketFault(side: 'client' | 'upstream', err: Error, connected: boolean): Fault {
  const errno = errnoOf(err);
  // A reset can only come from a peer that accepted (a refused SYN is ECONNREFUSED).
  // libuv reads SO_ERROR to finish a connect, so an upstream that accepted, sent
  // and reset before our loop got to it reports its reset as the connect's error.
  if (side === 'upstream' && !connected && !(errno !== undefined && RESET_ERRNOS.has(errno))) {
    if (errno === 'ECONNREFUSED') {
      return {
        reason: 'upstream-refused',
        error: coded('ERR_REDIRECT_UPSTREAM_REFUSED', 'the upstream refused the connection', err),
      };
    }
    if (errno !== undefined && UNREACHABLE_ERRNOS.has(errno)) {
      return {
        reason: 'upstream-unreachable',
        error: coded('ERR_REDIRECT_UPSTREAM_UNREACHABLE', 'the upstream is unreachable', err),
      };
    }
    return {
      reason: 'upstream-error',
      error: coded('ERR_REDIRECT_UPSTREAM_FAILED', 'the upstream connection failed', err),
    };
  }
  if (errno !== undefined && RESET_ERRNOS.has(errno)) {
    return side === 'client'
      ? { reason: 'client-reset', error: coded('ERR_REDIRECT_CLIENT_RESET', 'the client reset the connection', err) }
      : {
          reason: 'upstream-reset',
          error: coded('ERR_REDIRECT_UPSTREAM_RESET', 'the upstream reset the connection', err),
        };
  }
  return side === 'client'
    ? { reason: 'client-error', error: coded('ERR_REDIRECT_CLIENT_FAILED', 'the client socket failed', err) }
    : { reason: 'upstream-error', error: coded('ERR_REDIRECT_UPSTREAM_FAILED', 'the upstream socket failed', err) };
}

/** The resolver threw or rejected: a resolver may say "not redirected" or "a loop" by its code. */
export function resolveFault(err: unknown): Fault {
  const error = asRedirectError(err, 'ERR_REDIRECT_RESOLVE_FAILED', 'could not find the redirect record');
  const reason: CloseReason =
    error.code === 'ERR_REDIRECT_NOT_REDIRECTED'
      ? 'not-redirected'
      : error.code === 'ERR_REDIRECT_LOOP_DETECTED'
        ? 'loop-detected'
        : 'resolve-failed';
  return { reason, error };
}

/** An egress plugin threw; one that recognised a loop (e.g. by a mark) says so by its code. */
export function egressFault(err: unknown, message = 'an egress plugin failed'): Fault {
  const error = asRedirectError(err, 'ERR_REDIRECT_EGRESS_FAILED', message);
  return { reason: error.code === 'ERR_REDIRECT_LOOP_DETECTED' ? 'loop-detected' : 'upstream-error', error };
}

/** Wraps a socket error under our code; the errno goes into the message, where logs show it. */
function coded(code: RedirectError['code'], message: string, cause: Error): RedirectError {
  const errno = errnoOf(cause);
  return new RedirectError(code, errno ? `${message} (${errno})` : message, { cause });
}
