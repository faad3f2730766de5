import { createAddressMatcher } from '../../lib/common/ip-address';
import { invalidOption } from '../../lib/common/errors';
import type { ConnectionContext } from '../../lib/common/types';
import { sniffed } from '../sniff';

/**
 * Which flows a toxic applies to; every field given must match (unset: every flow). Sniffed names
 * need `sniff()` before the toxics in the chain; a flow whose first bytes named nothing does not
 * match a `sni` or `host` scope.
 */
export interface ToxicScope {
  /** The record's original destination: addresses or CIDRs. */
  destination?: readonly string[];
  /** The record's original destination port(s). */
  port?: readonly number[];
  /** The client's address: addresses or CIDRs. */
  source?: readonly string[];
  /** TLS server names: exact, or `*.example.com` for any name under it. */
  sni?: readonly string[];
  /** HTTP/1 Host headers, same forms as `sni`. */
  host?: readonly string[];
}

/** A compiled scope: true / false once it can tell, undefined while it waits for sniffed bytes. */
export type ScopeCheck = (ctx: ConnectionContext) => boolean | undefined;

/** Every flow. */
const ANY_FLOW: ScopeCheck = () => true;

export function compileScope(scope: unknown, path = 'scope'): ScopeCheck {
  if (scope === undefined || scope === null) return ANY_FLOW;
  if (typeof scope !== 'object' || Array.isArray(scope)) throw invalidOption(path, 'must be an object');
  const s = scope as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!['destination', 'port', 'source', 'sni', 'host'].includes(key)) {
      throw invalidOption(`${path}.${key}`, 'unknown field (destination, port, source, sni, host)');
    }
  }
  const destination = s.destination === undefined ? undefined : addresses(s.destination, `${path}.destination`);
  const source = s.source === undefined ? undefined : addresses(s.source, `${path}.source`);
  const ports = s.port === undefined ? undefined : portList(s.port, `${path}.port`);
  const sni = s.sni === undefined ? undefined : names(s.sni, `${path}.sni`);
  const host = s.host === undefined ? undefined : names(s.host, `${path}.host`);
  if (!destination && !source && !ports && !sni && !host) return ANY_FLOW;
  return (ctx) => {
    const { record } = ctx;
    if (destination && !destination(record.destination.address)) return false;
    if (ports && !ports.includes(record.destination.port)) return false;
    if (source && !source(record.source.address)) return false;
    if (!sni && !host) return true;
    const found = sniffed(ctx);
    if (found === undefined) return undefined;
    if (sni && !(found.sni !== undefined && sni(found.sni))) return false;
    if (host && !(found.host !== undefined && host(found.host))) return false;
    return true;
  };
}

function list(value: unknown, path: string): string[] {
  const items = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(items) || items.some((v) => typeof v !== 'string' || v.length === 0)) {
    throw invalidOption(path, 'must be a string or an array of non-empty strings');
  }
  return items as string[];
}

function addresses(value: unknown, path: string): (address: string) => boolean {
  // A bare address is a one-address range.
  const cidrs = list(value, path).map((a) => (a.includes('/') ? a : a.includes(':') ? `${a}/128` : `${a}/32`));
  return createAddressMatcher(cidrs, path);
}

function portList(value: unknown, path: string): number[] {
  const items = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(items) || items.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    throw invalidOption(path, 'must be a port or an array of ports (1-65535)');
  }
  return items as number[];
}

function names(value: unknown, path: string): (name: string) => boolean {
  const patterns = list(value, path).map((n) => n.toLowerCase());
  return (name) => {
    const lower = name.toLowerCase();
    return patterns.some((p) => (p.startsWith('*.') ? lower.endsWith(p.slice(1)) : lower === p));
  };
}
