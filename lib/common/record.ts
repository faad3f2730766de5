import { isIP } from 'node:net';
import { RedirectError } from './errors';
import type { AddressFamily, ChainEntry, Endpoint, RedirectRecord, RedirectRecordInit } from './types';

const MAPPED_PREFIX = '::ffff:';

/** Normalises an address: IPv4-mapped IPv6 becomes plain IPv4; IPv6 is lower-cased. */
export function normaliseAddress(address: string): { address: string; family: AddressFamily } {
  const lower = address.toLowerCase();
  if (lower.startsWith(MAPPED_PREFIX)) {
    const tail = lower.slice(MAPPED_PREFIX.length);
    if (isIP(tail) === 4) return { address: tail, family: 'IPv4' };
  }
  const kind = isIP(lower);
  if (kind === 4) return { address: lower, family: 'IPv4' };
  if (kind === 6) return { address: lower, family: 'IPv6' };
  throw new RedirectError('ERR_REDIRECT_INVALID_RECORD', `"${address}" is not an IP address`);
}

export function makeEndpoint(
  input: { address: string; port: number; family?: AddressFamily | undefined },
  what: string,
): Endpoint {
  if (input === null || typeof input !== 'object') {
    throw new RedirectError('ERR_REDIRECT_INVALID_RECORD', `record.${what} must be an object { address, port }`);
  }
  if (typeof input.address !== 'string') {
    throw new RedirectError('ERR_REDIRECT_INVALID_RECORD', `record.${what}.address must be an IP address string`);
  }
  if (!Number.isInteger(input.port) || input.port < 0 || input.port > 65535) {
    throw new RedirectError(
      'ERR_REDIRECT_INVALID_RECORD',
      `record.${what}.port must be an integer 0–65535, got ${String(input.port)}`,
    );
  }
  const { address, family } = normaliseAddress(input.address);
  return Object.freeze({ address, port: input.port, family });
}

export const UNKNOWN_SOURCE: Endpoint = Object.freeze({ address: '0.0.0.0', port: 0, family: 'IPv4' });
/** A proxy id (`options.id`, chain entries): what every hop can carry in a mark table or a TLV. */
export const PROXY_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

export const EMPTY_CHAIN: readonly ChainEntry[] = Object.freeze([]);

/** Builds a frozen, normalised record from what a resolver found. */
export function createRecord(init: RedirectRecordInit | RedirectRecord, fallbackSource?: Endpoint): RedirectRecord {
  if (init === null || typeof init !== 'object') {
    throw new RedirectError('ERR_REDIRECT_INVALID_RECORD', 'a record must be an object with at least a destination');
  }
  const chain = (init.chain ?? []).map((entry, i): ChainEntry => {
    if (entry === null || typeof entry !== 'object' || typeof entry.id !== 'string' || entry.id === '') {
      throw new RedirectError('ERR_REDIRECT_INVALID_RECORD', `record.chain[${i}] must be { id: string }`);
    }
    return Object.freeze(entry.via === undefined ? { id: entry.id } : { id: entry.id, via: entry.via });
  });
  const record: {
    -readonly [K in keyof RedirectRecord]: RedirectRecord[K];
  } = {
    mechanism: init.mechanism ?? 'function',
    source: init.source ? makeEndpoint(init.source, 'source') : (fallbackSource ?? UNKNOWN_SOURCE),
    destination: makeEndpoint(init.destination, 'destination'),
    chain: Object.freeze(chain),
  };
  if (init.context !== undefined) record.context = init.context;
  if (init.records !== undefined) record.records = init.records;
  if (init.mark !== undefined) record.mark = init.mark;
  if (init.extensions !== undefined) record.extensions = Object.freeze({ ...init.extensions });
  return Object.freeze(record);
}

export function sameEndpoint(a: Endpoint | undefined, b: Endpoint | undefined): boolean {
  return a !== undefined && b !== undefined && a.port === b.port && a.address === b.address;
}

export function endpointKey(e: Endpoint): string {
  return e.family === 'IPv6' ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}
