/**
 * IP address text <-> bytes, and CIDR ranges for deciding whom to trust.
 *
 * Written here rather than borrowed from node:net because the PROXY protocol and the
 * trust list both need exact control: net.isIP() says nothing about canonical form,
 * leading zeroes or zone ids, and BlockList has no way to parse a prefix strictly.
 */
import { invalidOption } from './errors';
import type { AddressFamily } from './types';

export interface ParsedIp {
  readonly family: AddressFamily;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  readonly bytes: Uint8Array;
}

export interface Cidr {
  readonly family: AddressFamily;
  /** The network address in canonical text form. */
  readonly network: string;
  readonly prefixLength: number;
  /** The network address, 4 or 16 bytes. */
  readonly bytes: Uint8Array;
  /** Canonical `network/prefixLength`. */
  readonly cidr: string;
}

const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const PREFIX = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * Strict dotted quad: exactly four decimal numbers 0..255, no leading zeroes (which
 * some parsers read as octal, so "010.0.0.1" could mean two different hosts).
 */
export function parseIPv4(text: string): Uint8Array | undefined {
  if (text.length < 7 || text.length > 15) return undefined;
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** Groups of one colon-separated run, with an optional dotted quad as the very last piece. */
function parseGroups(text: string, allowIPv4Tail: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (allowIPv4Tail && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4(part);
      if (v4 === undefined) return undefined;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      if (!HEX_GROUP.test(part)) return undefined;
      groups.push(Number.parseInt(part, 16));
    }
  }
  return groups;
}

/**
 * RFC 4291 section 2.2 text forms: eight groups of 1-4 hex digits, at most one "::"
 * standing for one or more zero groups, and an optional trailing dotted quad. Zone ids
 * ("%eth0") are not addresses and are refused.
 */
export function parseIPv6(text: string): Uint8Array | undefined {
  // 45 = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
  if (text.length < 2 || text.length > 45) return undefined;
  const gap = text.indexOf('::');
  let groups: number[];
  if (gap === -1) {
    const all = parseGroups(text, true);
    if (all === undefined || all.length !== 8) return undefined;
    groups = all;
  } else {
    if (text.indexOf('::', gap + 1) !== -1) return undefined;
    const head = parseGroups(text.slice(0, gap), false);
    const tail = parseGroups(text.slice(gap + 2), true);
    if (head === undefined || tail === undefined) return undefined;
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i]! >> 8;
    out[i * 2 + 1] = groups[i]! & 0xff;
  }
  return out;
}

/** Parses an IPv4 or IPv6 literal (strict, no zone id). */
export function parseIpAddress(text: string): ParsedIp | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.includes(':')) {
    const bytes = parseIPv6(text);
    return bytes === undefined ? undefined : { family: 'IPv6', bytes };
  }
  const bytes = parseIPv4(text);
  return bytes === undefined ? undefined : { family: 'IPv4', bytes };
}

/** True for ::ffff:a.b.c.d, the form dual-stack sockets report IPv4 peers in. */
export function isIPv4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * Canonical text: dotted quad for 4 bytes, RFC 5952 for 16 (lower case, no leading
 * zeroes, the first longest run of two or more zero groups as "::", and IPv4-mapped
 * addresses as ::ffff:a.b.c.d like Node prints them).
 */
export function formatIpAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new TypeError('an IP address has 4 or 16 bytes');
  if (isIPv4Mapped(bytes)) return `::ffff:${formatIpAddress(bytes.subarray(12))}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[i * 2]! << 8) | bytes[i * 2 + 1]!);
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed (RFC 5952 4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** Canonical text of an address literal, or undefined when it is not one. */
export function canonicalIpAddress(text: string): string | undefined {
  const ip = parseIpAddress(text);
  return ip === undefined ? undefined : formatIpAddress(ip.bytes);
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value;
}

/**
 * Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a single host). A range
 * with host bits set is refused rather than silently widened or narrowed: in a trust
 * list, "10.0.0.1/8" is more likely a typo than a wish to trust 16 million hosts.
 */
export function parseCidr(text: string, optionPath = 'cidr'): Cidr {
  if (typeof text !== 'string') {
    throw invalidOption(optionPath, `expected a CIDR string such as "10.0.0.0/8" or "::1/128", got ${describe(text)}`);
  }
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const ip = parseIpAddress(addressText);
  if (ip === undefined) {
    throw invalidOption(
      optionPath,
      `${JSON.stringify(addressText)} is not an IPv4 or IPv6 address (write e.g. "10.0.0.0/8" or "fd00::/8", no zone id, no leading zeroes)`,
    );
  }
  const maxPrefix = ip.bytes.length * 8;
  let prefixLength = maxPrefix;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    const n = PREFIX.test(prefixText) ? Number(prefixText) : Number.NaN;
    if (!(n >= 0 && n <= maxPrefix)) {
      throw invalidOption(
        optionPath,
        `prefix length ${JSON.stringify(prefixText)} must be a whole number from 0 to ${maxPrefix} for ${ip.family}`,
      );
    }
    prefixLength = n;
  }
  const network = maskBytes(ip.bytes, prefixLength);
  if (!sameBytes(network, ip.bytes)) {
    const fixed = `${formatIpAddress(network)}/${prefixLength}`;
    throw invalidOption(
      optionPath,
      `${JSON.stringify(text)} has bits set after the /${prefixLength} prefix; write "${fixed}" for the range or "${addressText}/${maxPrefix}" for the single host`,
    );
  }
  const canonical = formatIpAddress(network);
  return {
    family: ip.family,
    network: canonical,
    prefixLength,
    bytes: network,
    cidr: `${canonical}/${prefixLength}`,
  };
}

function maskBytes(bytes: Uint8Array, prefixLength: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.min(8, Math.max(0, prefixLength - i * 8));
    out[i] = bytes[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function inRange(address: Uint8Array, range: Cidr): boolean {
  return sameBytes(maskBytes(address, range.prefixLength), range.bytes);
}

/**
 * A predicate telling whether an address lies in any of the ranges.
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, how a dual-stack listener reports IPv4
 * peers) are treated as the IPv4 address they carry, so "10.0.0.0/8" matches
 * "::ffff:10.1.2.3". IPv6 ranges written inside ::ffff:0:0/96 likewise match IPv4
 * peers. Other IPv6 ranges, even "::/0", never match IPv4 peers: a trust list errs on
 * the side of trusting less, so write "0.0.0.0/0" too if you mean everyone.
 *
 * A zone id on the address ("fe80::1%eth0", as Node reports link-local peers) is
 * ignored. Anything that is not an address literal matches nothing. An empty list
 * matches nothing.
 */
export function createAddressMatcher(cidrs: readonly string[], optionPath = 'trust'): (address: string) => boolean {
  if (!Array.isArray(cidrs)) {
    throw invalidOption(
      optionPath,
      `expected an array of CIDR strings such as ["10.0.0.0/8", "::1/128"], got ${describe(cidrs)}`,
    );
  }
  const v4: Cidr[] = [];
  const v6: Cidr[] = [];
  cidrs.forEach((text, i) => {
    const range = parseCidr(text, `${optionPath}[${i}]`);
    if (range.family === 'IPv4') {
      v4.push(range);
    } else if (range.prefixLength >= 96 && isIPv4Mapped(range.bytes)) {
      const bytes = range.bytes.slice(12);
      const prefixLength = range.prefixLength - 96;
      const network = formatIpAddress(bytes);
      v4.push({ family: 'IPv4', network, prefixLength, bytes, cidr: `${network}/${prefixLength}` });
    } else {
      v6.push(range);
    }
  });
  return (address: string): boolean => {
    if (typeof address !== 'string') return false;
    const zone = address.indexOf('%');
    const ip = parseIpAddress(zone === -1 ? address : address.slice(0, zone));
    if (ip === undefined || (zone !== -1 && (ip.family !== 'IPv6' || zone === address.length - 1))) return false;
    if (ip.family === 'IPv4') return v4.some((r) => inRange(ip.bytes, r));
    if (isIPv4Mapped(ip.bytes)) {
      const carried = ip.bytes.subarray(12);
      return v4.some((r) => inRange(carried, r));
    }
    return v6.some((r) => inRange(ip.bytes, r));
  };
}
