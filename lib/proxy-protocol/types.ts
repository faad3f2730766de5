/**
 * Types, constants and the error of the PROXY protocol codec (haproxy's
 * doc/proxy-protocol.txt, versions 1 and 2). Kept apart from the entry points so the
 * v1, v2 and TLV modules can share them without importing each other in a circle.
 */
import { RedirectError } from '../common/errors';

/** The 12-byte v2 signature. */
export const V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** What a v1 line starts with, including the one space that must follow "PROXY". */
export const V1_PREFIX: Buffer = Buffer.from('PROXY ', 'latin1');
/** Longest v1 line the spec allows, CRLF included ("PROXY UNKNOWN" + two full IPv6 addresses and ports). */
export const V1_MAX_LENGTH = 107;
/** Fixed part of a v2 header: signature, version/command, family/protocol, length. */
export const V2_FIXED_LENGTH = 16;
/** Largest v2 header the 16-bit length field can describe. */
export const V2_MAX_LENGTH = V2_FIXED_LENGTH + 0xffff;
/** Default cap on buffered header bytes: room for a UNIX address block plus a few KiB of TLVs. */
export const DEFAULT_MAX_HEADER_BYTES = 4096;
/** The spec's cap on PP2_TYPE_UNIQUE_ID. */
export const UNIQUE_ID_MAX_LENGTH = 128;
/** Size of each AF_UNIX address in a v2 header (sun_path). */
export const UNIX_PATH_LENGTH = 108;

/** Registered TLV types (top level) and SSL sub-TLV types. */
export const ProxyTlvType = Object.freeze({
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  SSL_VERSION: 0x21,
  SSL_CN: 0x22,
  SSL_CIPHER: 0x23,
  SSL_SIG_ALG: 0x24,
  SSL_KEY_ALG: 0x25,
  SSL_GROUP: 0x26,
  SSL_SIG_SCHEME: 0x27,
  SSL_CLIENT_CERT: 0x28,
  NETNS: 0x30,
  MIN_CUSTOM: 0xe0,
  MAX_CUSTOM: 0xef,
  MIN_EXPERIMENT: 0xf0,
  MAX_EXPERIMENT: 0xf7,
  MIN_FUTURE: 0xf8,
  MAX_FUTURE: 0xff,
} as const);

/** Bits of the SSL TLV's `client` field. */
export const ProxySslClient = Object.freeze({
  SSL: 0x01,
  CERT_CONN: 0x02,
  CERT_SESS: 0x04,
} as const);

export type ProxyProtocolVersion = 'v1' | 'v2';
export type ProxyCommand = 'proxy' | 'local';
/** Address family of the header; 'unspec' for v1 UNKNOWN and v2 AF_UNSPEC. */
export type ProxyFamily = 'unspec' | 'IPv4' | 'IPv6' | 'unix';
/** Transport protocol; for AF_UNIX the family is folded in. */
export type ProxyTransport = 'unspec' | 'tcp' | 'udp' | 'unix-stream' | 'unix-dgram';

export interface ProxyAddress {
  /** Canonical text: dotted quad, or RFC 5952 IPv6 (IPv4-mapped kept as ::ffff:a.b.c.d). */
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

export interface ProxyUnixAddress {
  /** The path as UTF-8 text; an abstract socket name starts with "\0". */
  readonly path: string;
  /** The path bytes, cut at the terminating NUL (abstract names: trailing NULs trimmed). */
  readonly raw: Buffer;
}

export interface ProxyTlv {
  readonly type: number;
  readonly value: Buffer;
}

export interface ProxySslInfo {
  /** Bit field, see ProxySslClient. */
  readonly client: number;
  /** Zero only when the client presented a certificate and it verified. */
  readonly verify: number;
  readonly version?: string;
  readonly cn?: string;
  readonly cipher?: string;
  readonly sigAlg?: string;
  readonly keyAlg?: string;
  readonly group?: string;
  readonly sigScheme?: string;
  /** DER client certificate (PP2_SUBTYPE_SSL_CLIENT_CERT). */
  readonly clientCert?: Buffer;
  /** Every sub-TLV in wire order, the decoded ones included. */
  readonly subTlvs: readonly ProxyTlv[];
}

/** A parsed PROXY header. Faithful to the wire: nothing is rewritten except address text. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /**
   * v1 is always 'proxy'. For 'local' the caller must use the real socket endpoints: the block
   * after the fixed 16 bytes is discarded (family and transport read 'unspec', no TLVs).
   */
  readonly command: ProxyCommand;
  readonly family: ProxyFamily;
  readonly transport: ProxyTransport;
  /** Present for command 'proxy' with family IPv4 or IPv6. */
  readonly source?: ProxyAddress;
  readonly destination?: ProxyAddress;
  /** Present for command 'proxy' with family 'unix'. */
  readonly unixSource?: ProxyUnixAddress;
  readonly unixDestination?: ProxyUnixAddress;
  /** Every top-level TLV in wire order (v2 PROXY only; empty for v1 and LOCAL). */
  readonly tlvs: readonly ProxyTlv[];
  /** PP2_TYPE_ALPN bytes as latin1 text (one char per byte, lossless). */
  readonly alpn?: string;
  /** PP2_TYPE_AUTHORITY (SNI), UTF-8. */
  readonly authority?: string;
  /** The PP2_TYPE_CRC32C value, present only when it was checked and matched. */
  readonly crc32c?: number;
  readonly uniqueId?: Buffer;
  readonly ssl?: ProxySslInfo;
  readonly netns?: string;
  /** The exact header bytes (a private copy; TLV values are views into it). */
  readonly raw: Buffer;
}

export interface ProxyHeaderParserOptions {
  /** Most bytes ever buffered; a longer header is refused with 'header-too-large'. 107..65551, default 4096. */
  maxHeaderBytes?: number;
  /** Versions accepted. Default both. */
  versions?: readonly ProxyProtocolVersion[];
}

export type ProxyHeaderParseStep =
  | { readonly done: false }
  | { readonly done: true; readonly header: ProxyHeader; readonly leftover: Buffer };

/** Why a header was refused. Stable strings; see docs/proxy-protocol.md. */
export type ProxyHeaderErrorReason =
  | 'bad-signature'
  | 'version-not-allowed'
  | 'header-too-large'
  | 'v1-too-long'
  | 'v1-bad-crlf'
  | 'v1-bad-char'
  | 'v1-bad-protocol'
  | 'v1-bad-format'
  | 'v1-bad-address'
  | 'v1-bad-port'
  | 'v2-bad-version'
  | 'v2-bad-command'
  | 'v2-bad-family'
  | 'v2-length-mismatch'
  | 'tlv-overrun'
  | 'tlv-bad-length'
  | 'tlv-bad-value'
  | 'tlv-duplicate'
  | 'crc-mismatch'
  | 'unique-id-too-long'
  | 'parser-closed';

/** A refused header: code ERR_REDIRECT_PROXY_HEADER plus a stable `reason`. */
export class ProxyHeaderError extends RedirectError {
  override name = 'ProxyHeaderError';
  readonly reason: ProxyHeaderErrorReason;

  constructor(reason: ProxyHeaderErrorReason, message: string) {
    super('ERR_REDIRECT_PROXY_HEADER', `PROXY header refused (${reason}): ${message}`);
    this.reason = reason;
  }
}

export function isProxyHeaderError(err: unknown): err is ProxyHeaderError {
  return err instanceof ProxyHeaderError;
}

/** Input endpoint for the encoders; family is inferred from the address when omitted. */
export interface ProxyAddressInit {
  address: string;
  port: number;
  family?: 'IPv4' | 'IPv6' | undefined;
}
