import { PROXY_ID_PATTERN } from '../common/record';
import { invalidOption } from '../common/errors';
import { ProxyHeaderError } from './types';
import type { ChainEntry } from '../common/types';

/** Default TLV type of the chain TLV (first of the spec's custom range 0xE0–0xEF). */
const DEFAULT_CHAIN_TLV_TYPE = 0xe0;
/** Default most proxies a flow may have passed through before us. */
const DEFAULT_HOP_LIMIT = 8;
/** The chain TLV's format version (first byte of its value). */
const CHAIN_FORMAT = 1;

/**
 * Chain TLV value: format byte (1), count byte, then per proxy, oldest first, a length
 * byte and that many bytes of its id (US-ASCII, the `id` option's characters).
 */
export function encodeChainTlv(ids: readonly string[]): Buffer {
  if (ids.length > 0xff) throw invalidOption('chain', 'at most 255 proxies fit in a chain TLV');
  const parts: Buffer[] = [Buffer.from([CHAIN_FORMAT, ids.length])];
  for (const id of ids) {
    if (!PROXY_ID_PATTERN.test(id)) throw invalidOption('chain', `"${id}" is not a valid proxy id`);
    parts.push(Buffer.from([id.length]), Buffer.from(id, 'latin1'));
  }
  return Buffer.concat(parts);
}

/** Parses a chain TLV value; a malformed one is a bad header ('tlv-bad-value'). */
export function decodeChainTlv(value: Buffer): ChainEntry[] {
  const bad = (why: string) => new ProxyHeaderError('tlv-bad-value', `chain TLV: ${why}`);
  if (value.length < 2) throw bad('shorter than its 2-byte head');
  if (value[0] !== CHAIN_FORMAT) throw bad(`unknown format ${value[0]}`);
  const count = value[1]!;
  const out: ChainEntry[] = [];
  let at = 2;
  for (let i = 0; i < count; i++) {
    const len = value[at];
    if (len === undefined || at + 1 + len > value.length) throw bad(`entry ${i} runs past the end`);
    const id = value.toString('latin1', at + 1, at + 1 + len);
    if (!PROXY_ID_PATTERN.test(id)) throw bad(`entry ${i} is not a valid proxy id`);
    out.push({ id, via: 'proxy-protocol' });
    at += 1 + len;
  }
  if (at !== value.length) throw bad(`${value.length - at} bytes after the last entry`);
  return out;
}

export function checkChainTlvType(value: unknown, path: string): number {
  if (value === undefined) return DEFAULT_CHAIN_TLV_TYPE;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0xe0 || value > 0xef) {
    throw invalidOption(path, 'must be a custom TLV type 0xE0–0xEF');
  }
  return value;
}

export function checkHopLimit(value: unknown, path: string): number {
  if (value === undefined) return DEFAULT_HOP_LIMIT;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 255) {
    throw invalidOption(path, 'must be an integer 1–255');
  }
  return value;
}
