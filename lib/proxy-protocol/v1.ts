/**
 * PROXY protocol v1, the text line (spec section 2.1):
 *   "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF
 *   "PROXY" SP "UNKNOWN" [SP anything] CRLF
 * The byte-level checks (CRLF, printable, length) happen as bytes arrive in the
 * parser; this module decodes a complete line and builds one.
 */
import { formatIpAddress, parseIPv4, parseIPv6, parseIpAddress } from '../common/ip-address';
import { invalidOption } from '../common/errors';
import { type ProxyAddress, type ProxyAddressInit, type ProxyHeader, ProxyHeaderError, V1_MAX_LENGTH } from './types';

const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

/** The protocol tokens a v1 line may carry, each with what must follow it. */
export const V1_PROTOCOLS: readonly string[] = ['TCP4 ', 'TCP6 ', 'UNKNOWN'];

function quote(text: string): string {
  // The line was checked to be printable ASCII, so this cannot smuggle control bytes into logs.
  return JSON.stringify(text.length > 48 ? `${text.slice(0, 45)}...` : text);
}

function port(text: string, which: string): number {
  const n = PORT.test(text) ? Number(text) : Number.NaN;
  if (!(n <= 0xffff)) {
    throw new ProxyHeaderError(
      'v1-bad-port',
      `${which} port ${quote(text)} is not a decimal 0..65535 without leading zeroes`,
    );
  }
  return n;
}

function address(text: string, v6: boolean, which: string): string {
  const bytes = v6 ? parseIPv6(text) : parseIPv4(text);
  if (bytes === undefined) {
    throw new ProxyHeaderError(
      'v1-bad-address',
      `${which} address ${quote(text)} is not a valid ${v6 ? 'IPv6' : 'IPv4'} address`,
    );
  }
  return formatIpAddress(bytes);
}

/** Decodes a complete v1 line; `raw` ends with CRLF and is printable ASCII before it. */
export function decodeV1(raw: Buffer): ProxyHeader {
  const line = raw.toString('latin1', 0, raw.length - 2);
  if (line === 'PROXY UNKNOWN' || line.startsWith('PROXY UNKNOWN ')) {
    // The spec says the receiver must ignore whatever follows UNKNOWN.
    return { version: 1, command: 'proxy', family: 'unspec', transport: 'unspec', tlvs: [], raw };
  }
  const fields = line.split(' ');
  const protocol = fields[1] ?? '';
  if (protocol !== 'TCP4' && protocol !== 'TCP6') {
    throw new ProxyHeaderError('v1-bad-protocol', `protocol ${quote(protocol)} is not TCP4, TCP6 or UNKNOWN`);
  }
  if (fields.length !== 6 || fields.some((f) => f === '')) {
    throw new ProxyHeaderError(
      'v1-bad-format',
      'expected "PROXY TCPx <src> <dst> <sport> <dport>" with exactly one space between fields',
    );
  }
  const v6 = protocol === 'TCP6';
  const family = v6 ? 'IPv6' : 'IPv4';
  const srcAddress = address(fields[2]!, v6, 'source');
  const dstAddress = address(fields[3]!, v6, 'destination');
  const source: ProxyAddress = { address: srcAddress, port: port(fields[4]!, 'source'), family };
  const destination: ProxyAddress = { address: dstAddress, port: port(fields[5]!, 'destination'), family };
  return { version: 1, command: 'proxy', family, transport: 'tcp', source, destination, tlvs: [], raw };
}

export type ProxyHeaderV1Init = { source: ProxyAddressInit; destination: ProxyAddressInit } | { unknown: true };

/** Checks an encoder endpoint and returns its bytes (4 or 16). */
export function endpointBytes(init: ProxyAddressInit | undefined, path: string): { bytes: Uint8Array; port: number } {
  if (init === null || typeof init !== 'object') throw invalidOption(path, 'must be { address, port }');
  const ip = parseIpAddress(init.address);
  if (ip === undefined) {
    throw invalidOption(`${path}.address`, 'must be an IPv4 or IPv6 literal (no host name, no zone id)');
  }
  if (init.family !== undefined && init.family !== ip.family) {
    throw invalidOption(`${path}.family`, `is ${init.family} but the address is ${ip.family}`);
  }
  if (!Number.isInteger(init.port) || init.port < 0 || init.port > 0xffff) {
    throw invalidOption(`${path}.port`, 'must be an integer 0..65535');
  }
  return { bytes: ip.bytes, port: init.port };
}

/** 4-byte addresses become ::ffff:a.b.c.d when the other end is IPv6. */
export function toIPv6(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 16) return bytes;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(bytes, 12);
  return out;
}

/**
 * Builds a v1 line. Source and destination of different families are both written
 * as IPv6 (TCP6), the IPv4 one as ::ffff:a.b.c.d, because one line has one family.
 * Addresses are written in canonical form.
 */
export function encodeProxyHeaderV1(init: ProxyHeaderV1Init): Buffer {
  if (init !== null && typeof init === 'object' && 'unknown' in init && init.unknown === true) {
    return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  }
  const { source, destination } = (init ?? {}) as { source?: ProxyAddressInit; destination?: ProxyAddressInit };
  let src = endpointBytes(source, 'source');
  let dst = endpointBytes(destination, 'destination');
  if (src.bytes.length !== dst.bytes.length) {
    src = { bytes: toIPv6(src.bytes), port: src.port };
    dst = { bytes: toIPv6(dst.bytes), port: dst.port };
  }
  const protocol = src.bytes.length === 4 ? 'TCP4' : 'TCP6';
  const line = `PROXY ${protocol} ${formatIpAddress(src.bytes)} ${formatIpAddress(dst.bytes)} ${src.port} ${dst.port}\r\n`;
  // Cannot exceed the limit with canonical addresses; asserted so a future change cannot slip.
  if (line.length > V1_MAX_LENGTH) throw new RangeError('internal: v1 line too long');
  return Buffer.from(line, 'latin1');
}
