/**
 * One error class for the whole library (subclasses, such as ProxyHeaderError, add
 * fields and have their own `name`). Every error carries a stable `code`, one per
 * cause, and, where there is one, the underlying `cause`. docs/errors.md lists every
 * code (test/api.test.ts checks it against this list).
 */
export const REDIRECT_ERROR_CODES = [
  'ERR_REDIRECT_INVALID_OPTION',
  'ERR_REDIRECT_INVALID_RECORD',
  'ERR_REDIRECT_RESOLVE_FAILED',
  'ERR_REDIRECT_RESOLVE_TIMEOUT',
  'ERR_REDIRECT_NOT_REDIRECTED',
  'ERR_REDIRECT_LOOP_DETECTED',
  'ERR_REDIRECT_MIDDLEWARE',
  'ERR_REDIRECT_DEFER_CONNECT',
  'ERR_REDIRECT_CONNECT_TIMEOUT',
  'ERR_REDIRECT_UPSTREAM_REFUSED',
  'ERR_REDIRECT_UPSTREAM_UNREACHABLE',
  'ERR_REDIRECT_UPSTREAM_RESET',
  'ERR_REDIRECT_UPSTREAM_FAILED',
  'ERR_REDIRECT_CLIENT_RESET',
  'ERR_REDIRECT_CLIENT_FAILED',
  'ERR_REDIRECT_EGRESS_FAILED',
  'ERR_REDIRECT_IDLE_TIMEOUT',
  'ERR_REDIRECT_SERVER_STATE',
  'ERR_REDIRECT_LISTEN_FAILED',
  'ERR_REDIRECT_ACCEPT_FAILED',
  'ERR_REDIRECT_SERVER_SHUTDOWN',
  'ERR_REDIRECT_MAX_CONNECTIONS',
  'ERR_REDIRECT_INTERNAL',
  'ERR_REDIRECT_ADDON_UNAVAILABLE',
  'ERR_REDIRECT_NATIVE',
  'ERR_REDIRECT_PERMISSION',
  'ERR_REDIRECT_PROXY_HEADER',
  'ERR_REDIRECT_UNTRUSTED_SOURCE',
  'ERR_REDIRECT_DENIED',
  'ERR_REDIRECT_MAX_DURATION',
  'ERR_REDIRECT_FRAMING',
  'ERR_REDIRECT_FAULT_RESET',
  'ERR_REDIRECT_FAULT_TIMEOUT',
  'ERR_REDIRECT_FAULT_LIMIT',
  'ERR_REDIRECT_CONFIG_MODULE',
  'ERR_REDIRECT_WORKER_FAILED',
  'ERR_REDIRECT_METRICS_UNAVAILABLE',
] as const;

export type RedirectErrorCode = (typeof REDIRECT_ERROR_CODES)[number];

export class RedirectError extends Error {
  override name = 'RedirectError';
  readonly code: RedirectErrorCode;
  /** errno name (e.g. 'ECONNREFUSED') when the error comes from a system call. */
  readonly syscallCode: string | undefined;

  constructor(code: RedirectErrorCode, message: string, options: { cause?: unknown; syscallCode?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.syscallCode = options.syscallCode ?? errnoOf(options.cause);
  }
}

/** Reads the errno name (`code` of a Node system error) off an unknown value. */
export function errnoOf(err: unknown): string | undefined {
  if (err !== null && typeof err === 'object' && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** `path` is the option as the user wrote it, below `options` (e.g. 'limits.highWaterMark'). */
export function invalidOption(path: string, message: string): RedirectError {
  return new RedirectError('ERR_REDIRECT_INVALID_OPTION', path === '' ? message : `options.${path}: ${message}`);
}

/** Anything thrown by user code: a RedirectError keeps its own code, the rest gets `code`. */
export function asRedirectError(err: unknown, code: RedirectError['code'], message: string): RedirectError {
  if (err instanceof RedirectError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new RedirectError(code, `${message}: ${detail}`, { cause: err });
}
