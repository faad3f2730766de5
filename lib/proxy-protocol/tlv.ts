// Size: one check and decoder per TLV type the spec registers, in the spec's order.
/**
 * PROXY v2 TLVs (spec section 2.2): splitting the vector, checking and decoding the
 * registered types, and building TLV bytes for the encoder.
 */
import { isUtf8 } from 'node:buffer';
import { crc32c } from './crc32c';
import { invalidOption } from '../common/errors';
import { ProxyHeaderError, type ProxySslInfo, type ProxyTlv, ProxyTlvType as T, UNIQUE_ID_MAX_LENGTH } from './types';

/** The decoded TLV part of a header. */
export interface DecodedTlvs {
  tlvs: ProxyTlv[];
  alpn?: string;
  authority?: string;
  crc32c?: number;
  uniqueId?: Buffer;
  ssl?: ProxySslInfo;
  netns?: string;
}

interface PlacedTlv extends ProxyTlv {
  /** Offset of the value inside the buffer it was split from. */
  readonly at: number;
}

/**
 * Types that carry one fact each. A second copy is refused: two components reading the
 * first and the last copy would otherwise disagree about, say, the SNI.
 */
const SINGLE_TOP = new Set<number>([T.ALPN, T.AUTHORITY, T.CRC32C, T.UNIQUE_ID, T.SSL, T.NETNS]);
const SINGLE_SUB = new Set<number>([
  T.SSL_VERSION,
  T.SSL_CN,
  T.SSL_CIPHER,
  T.SSL_SIG_ALG,
  T.SSL_KEY_ALG,
  T.SSL_GROUP,
  T.SSL_SIG_SCHEME,
  T.SSL_CLIENT_CERT,
]);

const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

/** Splits [start, end) of `buf` into TLVs; the last one must end exactly at `end`. */
function split(buf: Buffer, start: number, end: number, where: string): PlacedTlv[] {
  const out: PlacedTlv[] = [];
  let p = start;
  while (p < end) {
    if (end - p < 3) {
      throw new ProxyHeaderError('tlv-overrun', `${where} at byte ${p}: ${end - p} byte(s) left, a TLV needs 3`);
    }
    const type = buf[p]!;
    const length = buf.readUInt16BE(p + 1);
    const at = p + 3;
    if (at + length > end) {
      throw new ProxyHeaderError(
        'tlv-overrun',
        `${where} type ${hex(type)} at byte ${p} declares ${length} byte(s), ${end - at} left`,
      );
    }
    out.push({ type, value: buf.subarray(at, at + length), at });
    p = at + length;
  }
  return out;
}

function checkSingle(seen: Set<number>, single: Set<number>, type: number, where: string): void {
  if (!single.has(type)) return;
  if (seen.has(type)) throw new ProxyHeaderError('tlv-duplicate', `${where} type ${hex(type)} appears twice`);
  seen.add(type);
}

/** US-ASCII as the spec says for versions, cipher and algorithm names, and netns. */
function ascii(value: Buffer, what: string): string {
  for (let i = 0; i < value.length; i++) {
    if (value[i]! > 0x7f) throw new ProxyHeaderError('tlv-bad-value', `${what} is not US-ASCII (byte ${i})`);
  }
  return value.toString('latin1');
}

/** UTF-8 that must decode exactly: a lossy decode could make two different values look equal. */
function utf8(value: Buffer, what: string): string {
  if (!isUtf8(value)) throw new ProxyHeaderError('tlv-bad-value', `${what} is not valid UTF-8`);
  return value.toString('utf8');
}

type SslText = 'version' | 'cn' | 'cipher' | 'sigAlg' | 'keyAlg' | 'group' | 'sigScheme';

/** SSL sub-TLVs that carry text: the CN is UTF-8, the rest US-ASCII (spec 2.2.6). */
const SSL_TEXT: ReadonlyMap<number, readonly [SslText, 'ascii' | 'utf8']> = new Map([
  [T.SSL_VERSION, ['version', 'ascii']],
  [T.SSL_CN, ['cn', 'utf8']],
  [T.SSL_CIPHER, ['cipher', 'ascii']],
  [T.SSL_SIG_ALG, ['sigAlg', 'ascii']],
  [T.SSL_KEY_ALG, ['keyAlg', 'ascii']],
  [T.SSL_GROUP, ['group', 'ascii']],
  [T.SSL_SIG_SCHEME, ['sigScheme', 'ascii']],
] as const);

function decodeSsl(value: Buffer): ProxySslInfo {
  if (value.length < 5) {
    throw new ProxyHeaderError('tlv-bad-length', `SSL TLV has ${value.length} byte(s), needs at least 5`);
  }
  const subs = split(value, 5, value.length, 'SSL sub-TLV');
  const info: { -readonly [K in keyof ProxySslInfo]: ProxySslInfo[K] } = {
    client: value[0]!,
    verify: value.readUInt32BE(1),
    subTlvs: subs.map(({ type, value }) => ({ type, value })),
  };
  const seen = new Set<number>();
  for (const { type, value: v } of subs) {
    checkSingle(seen, SINGLE_SUB, type, 'SSL sub-TLV');
    const text = SSL_TEXT.get(type);
    if (text !== undefined) {
      const [field, encoding] = text;
      info[field] = encoding === 'ascii' ? ascii(v, `SSL ${field}`) : utf8(v, `SSL ${field}`);
    } else if (type === T.SSL_CLIENT_CERT) {
      info.clientCert = v;
    }
  }
  return info;
}

const ZERO_CRC = new Uint8Array(4);

/** Checks the CRC32C TLV (if any) over the whole header with its value read as zero. */
function checkCrc(raw: Buffer, placed: readonly PlacedTlv[]): number | undefined {
  const crcs = placed.filter((t) => t.type === T.CRC32C);
  const first = crcs[0];
  if (first === undefined) return undefined;
  if (first.value.length !== 4) {
    throw new ProxyHeaderError('tlv-bad-length', `CRC32C TLV has ${first.value.length} byte(s), needs 4`);
  }
  const at = first.at;
  const expected = raw.readUInt32BE(at);
  const actual = crc32c(raw.subarray(at + 4), crc32c(ZERO_CRC, crc32c(raw.subarray(0, at))));
  if (actual !== expected) {
    throw new ProxyHeaderError('crc-mismatch', `CRC32C is ${hex32(expected)}, the header sums to ${hex32(actual)}`);
  }
  return expected;
}

/**
 * Splits and checks the TLVs from `start` to the end of `raw`, the complete header
 * (the CRC32C covers all of it, signature included). The checksum is checked before
 * any value is interpreted, so a corrupted header reports 'crc-mismatch' rather than
 * whatever its corruption happens to look like.
 */
export function decodeTlvs(raw: Buffer, start: number): DecodedTlvs {
  const placed = split(raw, start, raw.length, 'TLV');
  const crc = checkCrc(raw, placed);
  const out: DecodedTlvs = { tlvs: placed.map(({ type, value }) => ({ type, value })) };
  if (crc !== undefined) out.crc32c = crc;
  const seen = new Set<number>();
  for (const { type, value } of placed) {
    checkSingle(seen, SINGLE_TOP, type, 'TLV');
    switch (type) {
      case T.ALPN:
        // ALPN ids are byte strings; latin1 maps each byte to one char, so nothing is lost.
        out.alpn = value.toString('latin1');
        break;
      case T.AUTHORITY:
        out.authority = utf8(value, 'AUTHORITY');
        break;
      case T.UNIQUE_ID:
        if (value.length > UNIQUE_ID_MAX_LENGTH) {
          throw new ProxyHeaderError(
            'unique-id-too-long',
            `UNIQUE_ID has ${value.length} bytes, at most ${UNIQUE_ID_MAX_LENGTH} allowed`,
          );
        }
        out.uniqueId = value;
        break;
      case T.SSL:
        out.ssl = decodeSsl(value);
        break;
      case T.NETNS:
        out.netns = ascii(value, 'NETNS');
        break;
    }
  }
  return out;
}

const hex32 = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

// ---------------------------------------------------------------------------
// Encoding

export interface ProxyTlvInit {
  type: number;
  value: Uint8Array;
}

export interface ProxySslInit {
  /** Bit field, see ProxySslClient. Required: there is no safe default. */
  client: number;
  /** 0 claims "certificate presented and verified", so it must be given explicitly. */
  verify: number;
  version?: string;
  cn?: string;
  cipher?: string;
  sigAlg?: string;
  keyAlg?: string;
  group?: string;
  sigScheme?: string;
  clientCert?: Uint8Array;
  /** Further raw sub-TLVs, written after the named ones. */
  subTlvs?: readonly ProxyTlvInit[];
}

/** The TLV-related fields of encodeProxyHeaderV2's input. */
export interface ProxyTlvFieldsInit {
  /** Latin1 text or raw bytes. */
  alpn?: string | Uint8Array;
  authority?: string;
  uniqueId?: Uint8Array;
  netns?: string;
  ssl?: ProxySslInit;
  /** Raw TLVs, written after the named fields in this order. A CRC32C TLV here gets its value filled in. */
  tlvs?: readonly ProxyTlvInit[];
  /** Append a CRC32C TLV (unless `tlvs` already holds one). */
  crc32c?: boolean;
}

function tlvBytes(type: number, value: Uint8Array, path: string): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > 0xff)
    throw invalidOption(path, 'TLV type must be an integer 0..255');
  if (!(value instanceof Uint8Array)) throw invalidOption(path, 'TLV value must be a Buffer or Uint8Array');
  if (value.length > 0xffff) throw invalidOption(path, `TLV value has ${value.length} bytes, at most 65535 fit`);
  const out = Buffer.allocUnsafe(3 + value.length);
  out[0] = type;
  out.writeUInt16BE(value.length, 1);
  out.set(value, 3);
  return out;
}

function charsBelow(text: string, limit: number): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= limit) return false;
  return true;
}

function asciiBytes(text: unknown, path: string): Buffer {
  if (typeof text !== 'string' || !charsBelow(text, 0x80)) throw invalidOption(path, 'must be a US-ASCII string');
  return Buffer.from(text, 'latin1');
}

function utf8Bytes(text: unknown, path: string): Buffer {
  if (typeof text !== 'string') throw invalidOption(path, 'must be a string');
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.toString('utf8') !== text) throw invalidOption(path, 'contains a lone surrogate, not encodable as UTF-8');
  return bytes;
}

function sslBytes(ssl: ProxySslInit): Buffer {
  if (ssl === null || typeof ssl !== 'object') throw invalidOption('ssl', 'must be an object { client, verify, … }');
  if (!Number.isInteger(ssl.client) || ssl.client < 0 || ssl.client > 0xff) {
    throw invalidOption('ssl.client', 'must be an integer 0..255 (bits of ProxySslClient)');
  }
  if (!Number.isInteger(ssl.verify) || ssl.verify < 0 || ssl.verify > 0xffffffff) {
    throw invalidOption('ssl.verify', 'must be an integer 0..4294967295 (0 = certificate presented and verified)');
  }
  const head = Buffer.alloc(5);
  head[0] = ssl.client;
  head.writeUInt32BE(ssl.verify, 1);
  const parts: Buffer[] = [head];
  for (const [type, [field, encoding]] of SSL_TEXT) {
    const text = ssl[field];
    if (text === undefined) continue;
    const bytes = encoding === 'ascii' ? asciiBytes(text, `ssl.${field}`) : utf8Bytes(text, `ssl.${field}`);
    parts.push(tlvBytes(type, bytes, `ssl.${field}`));
  }
  if (ssl.clientCert !== undefined) parts.push(tlvBytes(T.SSL_CLIENT_CERT, ssl.clientCert, 'ssl.clientCert'));
  (ssl.subTlvs ?? []).forEach((t, i) => {
    parts.push(tlvBytes(t.type, t.value, `ssl.subTlvs[${i}]`));
  });
  return Buffer.concat(parts);
}

/**
 * TLV bytes for the encoder, and where the CRC32C value sits in them (-1 for none) so
 * the caller can fill it once the whole header exists. Content rules (duplicates,
 * lengths, encodings) are enforced by the caller re-parsing the result.
 */
export function encodeTlvs(init: ProxyTlvFieldsInit): { bytes: Buffer; crcAt: number } {
  const parts: Buffer[] = [];
  if (init.alpn !== undefined) {
    let alpn: Buffer;
    if (typeof init.alpn === 'string') {
      if (!charsBelow(init.alpn, 0x100)) throw invalidOption('alpn', 'a string ALPN must be latin1; pass bytes');
      alpn = Buffer.from(init.alpn, 'latin1');
    } else {
      alpn = Buffer.from(init.alpn);
    }
    parts.push(tlvBytes(T.ALPN, alpn, 'alpn'));
  }
  if (init.authority !== undefined)
    parts.push(tlvBytes(T.AUTHORITY, utf8Bytes(init.authority, 'authority'), 'authority'));
  if (init.uniqueId !== undefined) parts.push(tlvBytes(T.UNIQUE_ID, init.uniqueId, 'uniqueId'));
  if (init.ssl !== undefined) parts.push(tlvBytes(T.SSL, sslBytes(init.ssl), 'ssl'));
  if (init.netns !== undefined) parts.push(tlvBytes(T.NETNS, asciiBytes(init.netns, 'netns'), 'netns'));
  let crcAt = -1;
  let length = parts.reduce((n, p) => n + p.length, 0);
  (init.tlvs ?? []).forEach((t, i) => {
    const bytes = tlvBytes(t?.type, t?.value, `tlvs[${i}]`);
    if (t.type === T.CRC32C) {
      if (t.value.length !== 4) throw invalidOption(`tlvs[${i}]`, 'a CRC32C TLV value has 4 bytes');
      if (crcAt !== -1) throw invalidOption(`tlvs[${i}]`, 'only one CRC32C TLV is allowed');
      crcAt = length + 3;
    }
    parts.push(bytes);
    length += bytes.length;
  });
  if (init.crc32c === true && crcAt === -1) {
    parts.push(tlvBytes(T.CRC32C, ZERO_CRC, 'crc32c'));
    crcAt = length + 3;
  }
  return { bytes: Buffer.concat(parts), crcAt };
}
