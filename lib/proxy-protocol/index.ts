/**
 * PROXY protocol v1/v2 codec: an incremental parser for headers read off untrusted
 * sockets, and encoders. Pure: no sockets here; the server feeds chunks in.
 *
 * Parser guarantees (see docs/proxy-protocol.md):
 * - the version is decided on the first byte and every signature byte is checked as
 *   it arrives, so non-PROXY traffic fails at its first wrong byte;
 * - at most `maxHeaderBytes` are ever buffered (v1 lines at most 107); a v2 length
 *   field asking for more fails at once, before anything is allocated for it;
 * - each push does work proportional to the header bytes it consumes, never to the
 *   chunk size: bytes past the header are returned as a view of the chunk, uncopied;
 * - the outcome (header, leftover, or error reason) does not depend on how the input
 *   was split into chunks.
 */
import { formatIpAddress, isIPv4Mapped, parseIPv6 } from '../common/ip-address';
import { invalidOption } from '../common/errors';
import {
  DEFAULT_MAX_HEADER_BYTES,
  type ProxyAddress,
  type ProxyHeader,
  ProxyHeaderError,
  type ProxyHeaderParseStep,
  type ProxyHeaderParserOptions,
  type ProxyProtocolVersion,
  V1_MAX_LENGTH,
  V1_PREFIX,
  V2_FIXED_LENGTH,
  V2_MAX_LENGTH,
  V2_SIGNATURE,
} from './types';
import { decodeV1, V1_PROTOCOLS } from './v1';
import { checkFamily, checkLength, checkVersionCommand, decodeV2 } from './v2';

export {
  isProxyHeaderError,
  type ProxyAddress,
  type ProxyAddressInit,
  type ProxyCommand,
  type ProxyFamily,
  type ProxyHeader,
  ProxyHeaderError,
  type ProxyHeaderErrorReason,
  type ProxyHeaderParserOptions,
  type ProxyHeaderParseStep,
  type ProxyProtocolVersion,
  ProxySslClient,
  type ProxySslInfo,
  type ProxyTlv,
  ProxyTlvType,
  type ProxyTransport,
  type ProxyUnixAddress,
} from './types';
export { encodeProxyHeaderV1, type ProxyHeaderV1Init } from './v1';
export { encodeProxyHeaderV2, type ProxyHeaderV2Init } from './v2';
export type { ProxySslInit, ProxyTlvFieldsInit, ProxyTlvInit } from './tlv';

export interface ProxyHeaderParser {
  /**
   * Feeds the next bytes read from the connection. Returns `{ done: false }` while
   * more are needed, or the header and the bytes that followed it in this chunk.
   * Throws ProxyHeaderError (code ERR_REDIRECT_PROXY_HEADER) on a bad header; after
   * that every push throws the same error, and after success 'parser-closed'.
   */
  push(chunk: Uint8Array): ProxyHeaderParseStep;
  /** Header bytes held so far (never more than maxHeaderBytes). */
  readonly bufferedBytes: number;
  readonly state: 'reading' | 'done' | 'failed';
}

const LF = 0x0a;
const CR = 0x0d;
const NEED_MORE: ProxyHeaderParseStep = Object.freeze({ done: false });

function checkOptions(options: ProxyHeaderParserOptions): { max: number; v1: boolean; v2: boolean } {
  if (options === null || typeof options !== 'object') throw invalidOption('proxyProtocol', 'must be an object');
  const max = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (!Number.isInteger(max) || max < V1_MAX_LENGTH || max > V2_MAX_LENGTH) {
    throw invalidOption('maxHeaderBytes', `must be an integer from ${V1_MAX_LENGTH} to ${V2_MAX_LENGTH}`);
  }
  const versions: readonly ProxyProtocolVersion[] = options.versions ?? ['v1', 'v2'];
  if (!Array.isArray(versions) || versions.length === 0 || versions.some((v) => v !== 'v1' && v !== 'v2')) {
    throw invalidOption('versions', "must be a non-empty array of 'v1' and/or 'v2'");
  }
  return { max, v1: versions.includes('v1'), v2: versions.includes('v2') };
}

class Parser implements ProxyHeaderParser {
  readonly #max: number;
  readonly #allowV1: boolean;
  readonly #allowV2: boolean;
  #state: 'reading' | 'done' | 'failed' = 'reading';
  #error: ProxyHeaderError | undefined;
  /** 0 until the first byte, then 1 or 2. */
  #version: 0 | 1 | 2 = 0;
  #buf: Buffer = Buffer.alloc(0);
  #len = 0;
  // v1: protocol tokens still possible at the current position, and whether a CR was seen.
  #tokens: readonly string[] = V1_PROTOCOLS;
  #tokenDone = false;
  #sawCr = false;
  // v2: total header length once the 16 fixed bytes are in.
  #total = 0;
  #command: ReturnType<typeof checkVersionCommand> = 'proxy';
  #family: ReturnType<typeof checkFamily> | undefined;

  constructor(options: ProxyHeaderParserOptions) {
    const { max, v1, v2 } = checkOptions(options);
    this.#max = max;
    this.#allowV1 = v1;
    this.#allowV2 = v2;
  }

  get bufferedBytes(): number {
    return this.#state === 'reading' ? this.#len : 0;
  }

  get state(): 'reading' | 'done' | 'failed' {
    return this.#state;
  }

  push(chunk: Uint8Array): ProxyHeaderParseStep {
    if (this.#state === 'failed') throw this.#error!;
    if (this.#state === 'done') throw new ProxyHeaderError('parser-closed', 'the header was already parsed');
    if (!(chunk instanceof Uint8Array)) throw new TypeError('push() takes a Buffer or Uint8Array');
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    try {
      const step = this.#consume(data);
      if (step.done) this.#finish('done');
      return step;
    } catch (err) {
      if (err instanceof ProxyHeaderError) {
        this.#error = err;
        this.#finish('failed');
      }
      throw err;
    }
  }

  #finish(state: 'done' | 'failed'): void {
    this.#state = state;
    this.#buf = Buffer.alloc(0);
    this.#len = 0;
  }

  #consume(chunk: Buffer): ProxyHeaderParseStep {
    if (chunk.length === 0) return NEED_MORE;
    if (this.#version === 0) {
      const first = chunk[0]!;
      if (first === V1_PREFIX[0]) {
        this.#version = 1;
        this.#buf = Buffer.alloc(V1_MAX_LENGTH);
      } else if (first === V2_SIGNATURE[0]) {
        this.#version = 2;
        this.#buf = Buffer.alloc(V2_FIXED_LENGTH);
      } else {
        throw new ProxyHeaderError(
          'bad-signature',
          `first byte 0x${first.toString(16).padStart(2, '0')} starts no PROXY header`,
        );
      }
    }
    return this.#version === 1 ? this.#consumeV1(chunk) : this.#consumeV2(chunk);
  }

  #consumeV1(chunk: Buffer): ProxyHeaderParseStep {
    const buf = this.#buf;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      const pos = this.#len;
      if (pos < V1_PREFIX.length) {
        if (b !== V1_PREFIX[pos]) throw new ProxyHeaderError('bad-signature', `byte ${pos} does not continue "PROXY "`);
        buf[this.#len++] = b;
        if (this.#len === V1_PREFIX.length && !this.#allowV1) {
          throw new ProxyHeaderError('version-not-allowed', 'v1 headers are not accepted here');
        }
        continue;
      }
      if (this.#sawCr) {
        if (b !== LF) throw new ProxyHeaderError('v1-bad-crlf', `CR at byte ${pos - 1} is not followed by LF`);
        buf[this.#len++] = b;
        const header = freeze(decodeV1(Buffer.from(buf.subarray(0, this.#len))));
        return { done: true, header, leftover: chunk.subarray(i + 1) };
      }
      if (b === LF) throw new ProxyHeaderError('v1-bad-crlf', `LF at byte ${pos} without a CR before it`);
      if (b === CR) {
        // The LF still has to fit: CR at most at index 105 of a 107-byte line.
        if (pos > V1_MAX_LENGTH - 2) throw tooLong();
        this.#sawCr = true;
      } else {
        if (b < 0x20 || b > 0x7e)
          throw new ProxyHeaderError('v1-bad-char', `byte ${pos} (0x${b.toString(16)}) is not printable ASCII`);
        if (pos > V1_MAX_LENGTH - 3) throw tooLong();
        if (!this.#tokenDone) this.#checkToken(pos - V1_PREFIX.length, b);
      }
      buf[this.#len++] = b;
    }
    return NEED_MORE;
  }

  /** Fails at the first byte that no protocol token ("TCP4 ", "TCP6 ", "UNKNOWN") can start with. */
  #checkToken(k: number, b: number): void {
    this.#tokens = this.#tokens.filter((t) => t.charCodeAt(k) === b);
    if (this.#tokens.length === 0) {
      throw new ProxyHeaderError('v1-bad-protocol', 'protocol is not TCP4, TCP6 or UNKNOWN');
    }
    if (this.#tokens.some((t) => t.length === k + 1)) this.#tokenDone = true;
  }

  #consumeV2(chunk: Buffer): ProxyHeaderParseStep {
    let i = 0;
    while (this.#len < V2_FIXED_LENGTH && i < chunk.length) {
      const b = chunk[i++]!;
      const pos = this.#len;
      if (pos < V2_SIGNATURE.length) {
        if (b !== V2_SIGNATURE[pos])
          throw new ProxyHeaderError('bad-signature', `byte ${pos} does not continue the v2 signature`);
        if (pos === V2_SIGNATURE.length - 1 && !this.#allowV2) {
          throw new ProxyHeaderError('version-not-allowed', 'v2 headers are not accepted here');
        }
      } else if (pos === 12) {
        this.#command = checkVersionCommand(b);
      } else if (pos === 13) {
        this.#family = checkFamily(b, this.#command);
      }
      this.#buf[this.#len++] = b;
      if (this.#len === V2_FIXED_LENGTH) {
        const total = checkLength(this.#buf.readUInt16BE(14), this.#family!);
        if (total > this.#max) {
          throw new ProxyHeaderError(
            'header-too-large',
            `v2 header of ${total} bytes exceeds maxHeaderBytes ${this.#max}`,
          );
        }
        this.#total = total;
        const full = Buffer.alloc(total);
        this.#buf.copy(full, 0, 0, V2_FIXED_LENGTH);
        this.#buf = full;
      }
    }
    if (this.#len < V2_FIXED_LENGTH) return NEED_MORE;
    const take = Math.min(this.#total - this.#len, chunk.length - i);
    chunk.copy(this.#buf, this.#len, i, i + take);
    this.#len += take;
    i += take;
    if (this.#len < this.#total) return NEED_MORE;
    return { done: true, header: freeze(decodeV2(this.#buf)), leftover: chunk.subarray(i) };
  }
}

/**
 * Freezes the header's objects and arrays, like the library's records: one header may
 * be seen by several middleware, and none should be able to change it for the others.
 * (Buffers cannot be frozen; header.raw is a private copy all the same.)
 */
function freeze(header: ProxyHeader): ProxyHeader {
  for (const tlv of header.tlvs) Object.freeze(tlv);
  Object.freeze(header.tlvs);
  if (header.ssl !== undefined) {
    for (const tlv of header.ssl.subTlvs) Object.freeze(tlv);
    Object.freeze(header.ssl.subTlvs);
    Object.freeze(header.ssl);
  }
  for (const part of [header.source, header.destination, header.unixSource, header.unixDestination]) {
    if (part !== undefined) Object.freeze(part);
  }
  return Object.freeze(header);
}

function tooLong(): ProxyHeaderError {
  return new ProxyHeaderError('v1-too-long', `no CRLF within the first ${V1_MAX_LENGTH} bytes`);
}

/** A parser for one connection's header. Options are checked here (ERR_REDIRECT_INVALID_OPTION). */
export function createProxyHeaderParser(options: ProxyHeaderParserOptions = {}): ProxyHeaderParser {
  return new Parser(options);
}

/** One-shot parse of bytes already in hand; `{ done: false }` when they end mid-header. */
export function parseProxyHeader(data: Uint8Array, options: ProxyHeaderParserOptions = {}): ProxyHeaderParseStep {
  return createProxyHeaderParser(options).push(data);
}

/**
 * The address as the caller will usually want it: an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) becomes plain IPv4. Headers keep what the sender wrote; call this
 * where the distinction does not matter (logging, trust checks, records).
 */
export function normalizeProxyAddress(address: ProxyAddress): ProxyAddress {
  if (address.family !== 'IPv6') return address;
  const bytes = parseIPv6(address.address);
  if (bytes === undefined || !isIPv4Mapped(bytes)) return address;
  return { address: formatIpAddress(bytes.subarray(12)), port: address.port, family: 'IPv4' };
}
