import { errnoOf, RedirectError } from '../common/errors';
import type { CloseReason } from '../common/types';

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

/** How a middleware's error ends its flow: RST both ways, or FIN after what was written. */
export type Ending = 'reset' | 'close';

/**
 * Codes with which a middleware ends its flow for a reason of its own (the fault-injection
 * toxics); every other error is `middleware-error` with RST both ways.
 */
const MIDDLEWARE_ENDINGS: Partial<Record<RedirectError['code'], { reason: CloseReason; how: Ending }>> = {
  ERR_REDIRECT_FAULT_RESET: { reason: 'fault-reset', how: 'reset' },
  ERR_REDIRECT_FAULT_TIMEOUT: { reason: 'fault-timeout', how: 'close' },
  ERR_REDIRECT_FAULT_LIMIT: { reason: 'fault-limit', how: 'close' },
};

/** A middleware errored its chain: the close reason and manner its code names. */
export function middlewareFault(error: RedirectError): Fault & { how: Ending } {
  const ending = MIDDLEWARE_ENDINGS[error.code];
  return ending ? { ...ending, error } : { reason: 'middleware-error', how: 'reset', error };
}

/** Wraps a socket error under our code; the errno goes into the message, where logs show it. */
function coded(code: RedirectError['code'], message: string, cause: Error): RedirectError {
  const errno = errnoOf(cause);
  return new RedirectError(code, errno ? `${message} (${errno})` : message, { cause });
}

/** Anything thrown by user code: a RedirectError keeps its own code, the rest gets `code`. */
export function asRedirectError(err: unknown, code: RedirectError['code'], message: string): RedirectError {
  if (err instanceof RedirectError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new RedirectError(code, `${message}: ${detail}`, { cause: err });
}
