import { RedirectError } from './errors';

// "host:port" as flags and config strings carry it: one parser and one printer for the
// fault-control API, the runner's flags and its log lines.

/** "host:port", "[v6]:port" or ":port" (every address). Bad forms throw ERR_REDIRECT_INVALID_OPTION. */
export function splitHostPort(text: string, field: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) {
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', `${field}: expected host:port, got "${text}"`);
  }
  const host = m[1] ?? m[2] ?? '';
  return { host: host === 'localhost' ? '127.0.0.1' : host, port };
}

/** The inverse: an IPv6 host goes in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
