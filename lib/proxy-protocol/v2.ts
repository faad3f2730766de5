/**
 * PROXY protocol v2, the binary header (spec section 2.2): 12-byte signature,
 * version/command byte, family/protocol byte, 16-bit length, address block, TLVs.
 */
import { formatIpAddress } from '../common/ip-address';
import { crc32c } from './crc32c';
import { invalidOption } from '../common/errors';
import {
  type ProxyAddressInit,
  type ProxyCommand,
  type ProxyFamily,
  type ProxyHeader,
  ProxyHeaderError,
  type ProxyTransport,
  type ProxyUnixAddress,
  UNIX_PATH_LENGTH,
  V2_FIXED_LENGTH,
  V2_MAX_LENGTH,
  V2_SIGNATURE,
} from './types';
import { decodeTlvs, encodeTlvs, type ProxyTlvFieldsInit } from './tlv';
import { endpointBytes, toIPv6 } from './v1';

const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

/** Checks the 13th byte; returns the command. */
export function checkVersionCommand(byte: number): ProxyCommand {
  if (byte >> 4 !== 2) throw new ProxyHeaderError('v2-bad-version', `version nibble is ${byte >> 4}, only 2 exists`);
  const command = byte & 0x0f;
  if (command > 1)
    throw new ProxyHeaderError('v2-bad-command', `command ${command} is neither LOCAL (0) nor PROXY (1)`);
  return command === 1 ? 'proxy' : 'local';
}

interface FamilyInfo {
  readonly family: ProxyFamily;
  readonly transport: ProxyTransport;
  /** Bytes of the address block this family requires. */
  readonly addressLength: number;
}

/** The seven family/protocol bytes the spec defines; it says receivers must refuse others. */
const FAMILIES = new Map<number, FamilyInfo>([
  [0x00, { family: 'unspec', transport: 'unspec', addressLength: 0 }],
  [0x11, { family: 'IPv4', transport: 'tcp', addressLength: 12 }],
  [0x12, { family: 'IPv4', transport: 'udp', addressLength: 12 }],
  [0x21, { family: 'IPv6', transport: 'tcp', addressLength: 36 }],
  [0x22, { family: 'IPv6', transport: 'udp', addressLength: 36 }],
  [0x31, { family: 'unix', transport: 'unix-stream', addressLength: 2 * UNIX_PATH_LENGTH }],
  [0x32, { family: 'unix', transport: 'unix-dgram', addressLength: 2 * UNIX_PATH_LENGTH }],
]);

/**
 * LOCAL (spec 2.2): the receiver must accept the connection, use the real endpoints and discard
 * the protocol block, family included. So whatever byte 13 and the length say, everything after
 * the fixed 16 bytes is skipped unread: no family check, no addresses, no TLVs.
 */
const LOCAL_BLOCK: FamilyInfo = Object.freeze({ family: 'unspec', transport: 'unspec', addressLength: 0 });

/** Checks the 14th byte; a LOCAL header's family byte is ignored (any value passes). */
export function checkFamily(byte: number, command: ProxyCommand): FamilyInfo {
  if (command === 'local') return LOCAL_BLOCK;
  const info = FAMILIES.get(byte);
  if (info === undefined) {
    throw new ProxyHeaderError('v2-bad-family', `family/protocol byte ${hex(byte)} is not one the spec defines`);
  }
  return info;
}

/** Checks the length field against the family's address block; returns the total header length. */
export function checkLength(length: number, info: FamilyInfo): number {
  if (length < info.addressLength) {
    throw new ProxyHeaderError(
      'v2-length-mismatch',
      `length ${length} is shorter than the ${info.addressLength}-byte ${info.family} address block`,
    );
  }
  return V2_FIXED_LENGTH + length;
}

function unixAddress(bytes: Buffer): ProxyUnixAddress {
  let end: number;
  if (bytes[0] === 0) {
    // Linux abstract name: starts with NUL and is not NUL-terminated; the sender pads
    // with zeroes, so trailing NULs are the best guess at its end.
    end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
  } else {
    end = bytes.indexOf(0);
    if (end === -1) end = bytes.length;
  }
  const raw = Buffer.from(bytes.subarray(0, end));
  return { path: raw.toString('utf8'), raw };
}

/** Decodes a complete v2 header (`raw` is exactly 16 + length bytes). */
export function decodeV2(raw: Buffer): ProxyHeader {
  if (raw.length < V2_FIXED_LENGTH || !raw.subarray(0, 12).equals(V2_SIGNATURE)) {
    throw new ProxyHeaderError('bad-signature', 'not a v2 signature');
  }
  const command = checkVersionCommand(raw[12]!);
  const info = checkFamily(raw[13]!, command);
  const total = checkLength(raw.readUInt16BE(14), info);
  if (raw.length !== total) {
    throw new ProxyHeaderError('v2-length-mismatch', `header has ${raw.length} bytes, its length field says ${total}`);
  }
  const a = V2_FIXED_LENGTH;
  const header: { -readonly [K in keyof ProxyHeader]: ProxyHeader[K] } = {
    version: 2,
    command,
    family: info.family,
    transport: info.transport,
    tlvs: [],
    raw,
  };
  // LOCAL: the whole block is discarded (see LOCAL_BLOCK); only `raw` still holds it.
  if (command === 'local') return header;
  if (info.family === 'IPv4') {
    header.source = {
      address: formatIpAddress(raw.subarray(a, a + 4)),
      port: raw.readUInt16BE(a + 8),
      family: 'IPv4',
    };
    header.destination = {
      address: formatIpAddress(raw.subarray(a + 4, a + 8)),
      port: raw.readUInt16BE(a + 10),
      family: 'IPv4',
    };
  } else if (info.family === 'IPv6') {
    header.source = {
      address: formatIpAddress(raw.subarray(a, a + 16)),
      port: raw.readUInt16BE(a + 32),
      family: 'IPv6',
    };
    header.destination = {
      address: formatIpAddress(raw.subarray(a + 16, a + 32)),
      port: raw.readUInt16BE(a + 34),
      family: 'IPv6',
    };
  } else if (info.family === 'unix') {
    header.unixSource = unixAddress(raw.subarray(a, a + UNIX_PATH_LENGTH));
    header.unixDestination = unixAddress(raw.subarray(a + UNIX_PATH_LENGTH, a + 2 * UNIX_PATH_LENGTH));
  }
  return { ...header, ...decodeTlvs(raw, a + info.addressLength) };
}

export interface ProxyHeaderV2Init extends ProxyTlvFieldsInit {
  /** Default 'proxy'. 'local' (health checks) carries no addresses: family AF_UNSPEC. */
  command?: ProxyCommand;
  /** Default: 'tcp' with source/destination, 'unix-stream' with unix paths, else 'unspec'. */
  transport?: ProxyTransport;
  source?: ProxyAddressInit;
  destination?: ProxyAddressInit;
  /** AF_UNIX paths, at most 108 bytes; an abstract name starts with "\0". */
  unixSource?: string | Uint8Array;
  unixDestination?: string | Uint8Array;
}

function unixBytes(path: string | Uint8Array | undefined, name: string): Buffer {
  if (typeof path !== 'string' && !(path instanceof Uint8Array)) {
    throw invalidOption(name, 'a unix transport needs a path (string or bytes)');
  }
  const bytes = typeof path === 'string' ? Buffer.from(path, 'utf8') : Buffer.from(path);
  if (bytes.length > UNIX_PATH_LENGTH) {
    throw invalidOption(name, `has ${bytes.length} bytes, at most ${UNIX_PATH_LENGTH} fit`);
  }
  return bytes;
}

function addressBlock(init: ProxyHeaderV2Init, transport: ProxyTransport): { fam: number; block: Buffer } {
  if (transport === 'tcp' || transport === 'udp') {
    const src = endpointBytes(init.source, 'source');
    const dst = endpointBytes(init.destination, 'destination');
    // One header has one family: a mixed pair is written as IPv6 with ::ffff:a.b.c.d.
    const v6 = src.bytes.length === 16 || dst.bytes.length === 16;
    const n = v6 ? 16 : 4;
    const block = Buffer.alloc(2 * n + 4);
    block.set(v6 ? toIPv6(src.bytes) : src.bytes, 0);
    block.set(v6 ? toIPv6(dst.bytes) : dst.bytes, n);
    block.writeUInt16BE(src.port, 2 * n);
    block.writeUInt16BE(dst.port, 2 * n + 2);
    return { fam: (v6 ? 0x20 : 0x10) | (transport === 'tcp' ? 1 : 2), block };
  }
  if (transport === 'unix-stream' || transport === 'unix-dgram') {
    const block = Buffer.alloc(2 * UNIX_PATH_LENGTH);
    block.set(unixBytes(init.unixSource, 'unixSource'), 0);
    block.set(unixBytes(init.unixDestination, 'unixDestination'), UNIX_PATH_LENGTH);
    return { fam: transport === 'unix-stream' ? 0x31 : 0x32, block };
  }
  if (transport === 'unspec') return { fam: 0x00, block: Buffer.alloc(0) };
  throw invalidOption('transport', "must be 'tcp', 'udp', 'unix-stream', 'unix-dgram' or 'unspec'");
}

/**
 * Builds a v2 header. TLVs are written in this order: alpn, authority, uniqueId, ssl,
 * netns, then `tlvs` as given, then the CRC32C TLV when `crc32c` asks for one (a
 * CRC32C TLV inside `tlvs` is filled in where it stands). The result is re-parsed
 * before it is returned, so this never emits a header the parser would refuse.
 */
export function encodeProxyHeaderV2(init: ProxyHeaderV2Init): Buffer {
  if (init === null || typeof init !== 'object') throw invalidOption('header', 'must be an object');
  const command = init.command ?? 'proxy';
  if (command !== 'proxy' && command !== 'local') throw invalidOption('command', "must be 'proxy' or 'local'");
  const hasIp = init.source !== undefined || init.destination !== undefined;
  const hasUnix = init.unixSource !== undefined || init.unixDestination !== undefined;
  if (command === 'local' && (hasIp || hasUnix || (init.transport ?? 'unspec') !== 'unspec')) {
    throw invalidOption('command', "'local' carries no addresses (receivers must use the real endpoints)");
  }
  const transport = init.transport ?? (hasIp ? 'tcp' : hasUnix ? 'unix-stream' : 'unspec');
  if (transport === 'unspec' && (hasIp || hasUnix)) {
    throw invalidOption('transport', "'unspec' carries no addresses; drop them or name the transport");
  }
  const { fam, block } = addressBlock(init, transport);
  const { bytes: tlvs, crcAt } = encodeTlvs(init);
  const length = block.length + tlvs.length;
  if (V2_FIXED_LENGTH + length > V2_MAX_LENGTH) {
    throw invalidOption('tlvs', `header would be ${V2_FIXED_LENGTH + length} bytes, at most ${V2_MAX_LENGTH} fit`);
  }
  const out = Buffer.alloc(V2_FIXED_LENGTH + length);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x20 | (command === 'proxy' ? 1 : 0);
  out[13] = fam;
  out.writeUInt16BE(length, 14);
  block.copy(out, V2_FIXED_LENGTH);
  const tlvStart = V2_FIXED_LENGTH + block.length;
  tlvs.copy(out, tlvStart);
  if (crcAt !== -1) {
    const at = tlvStart + crcAt;
    out.writeUInt32BE(0, at);
    out.writeUInt32BE(crc32c(out), at);
  }
  try {
    decodeV2(out);
  } catch (err) {
    if (err instanceof ProxyHeaderError)
      throw invalidOption('tlvs', `would produce a header receivers refuse: ${err.message}`);
    throw err;
  }
  return out;
}
