import { Observable } from 'rxjs';
import { invalidOption, RedirectError } from '../lib/common/errors';
import type { ConnectionContext, Middleware } from '../lib/common/types';
import { positiveInt } from './direction';

/** The `ctx.state` key under which `sniff` puts its {@link SniffResult}. */
export const SNIFF_KEY: unique symbol = Symbol.for('rxredirect.sniff');

export interface SniffResult {
  /** What the first bytes looked like. */
  readonly protocol: 'tls' | 'http' | 'unknown';
  /** TLS: the ClientHello's server_name. */
  readonly sni?: string;
  /** TLS: the ClientHello's ALPN protocols. */
  readonly alpn?: readonly string[];
  /** HTTP/1: the Host header, lowercased, without its port. */
  readonly host?: string;
  /** HTTP/1: the request method. */
  readonly method?: string;
  /** HTTP/1: the request target as sent. */
  readonly path?: string;
  /** Why sniffing stopped: it found what it looks for, hit maxBytes or timeoutMs, or the input ended. */
  readonly stoppedBy: 'parsed' | 'max-bytes' | 'timeout' | 'end';
}

export interface SniffOptions {
  /** Most client bytes looked at (and held) before deciding. Default 16 384. */
  maxBytes?: number;
  /** Longest wait for those bytes, from the chain's start. Default 5 000 ms. */
  timeoutMs?: number;
  /** Called once with the result; 'deny' ends the connection with ERR_REDIRECT_DENIED. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback may return nothing.
  onSniff?: (result: SniffResult, ctx: ConnectionContext) => 'allow' | 'deny' | undefined | void;
  /**
   * Hold the upstream connect until `onSniff` has allowed the flow (`ctx.deferConnect()`), so a
   * denied flow never touches its destination: no SYN, no RST. Default: true when `onSniff` is
   * given, false otherwise. `false` connects at accept, as without a policy: the destination then
   * sees every flow, denied ones included, but a server-speaks-first protocol gets its connect
   * before the client's first bytes (with the hold it waits `timeoutMs`, then `onSniff` decides
   * on `stoppedBy: 'timeout'`).
   */
  deferConnect?: boolean;
}

/**
 * Reads the TLS ClientHello (SNI, ALPN) or the HTTP/1 request line and Host header from the first
 * client bytes, puts a {@link SniffResult} on `ctx.state` under {@link SNIFF_KEY}, and calls
 * `onSniff`. Upstream direction only; bytes are passed on unchanged and in order.
 *
 * With `onSniff` (a policy) the upstream connect waits for its verdict (see `deferConnect`): a
 * denied flow is reset without any packet to its destination. Keep `timeoutMs` under
 * `limits.connectTimeoutMs`, which also covers this wait.
 *
 * Memory bound: until it decides, it holds the client's first bytes, at most `maxBytes` (plus the
 * last chunk that crossed the limit), and emits them as one chunk once decided; after that it holds
 * nothing and is a pass-through. Deciding takes at most `timeoutMs`: a client that sends nothing
 * (a server-speaks-first protocol) gets `protocol: 'unknown', stoppedBy: 'timeout'`; no byte was
 * held, but with a policy the upstream connect waited for that verdict.
 *
 * @example
 * ```ts
 * sniff({ onSniff: (r) => (r.sni && allowed.has(r.sni) ? 'allow' : 'deny') });
 * // later in the chain, or in a tap: (ctx.state.get(SNIFF_KEY) as SniffResult | undefined)?.host
 * ```
 */
export function sniff(options: SniffOptions = {}): Middleware {
  if (options === null || typeof options !== 'object') throw invalidOption('sniff', 'must be an object');
  const maxBytes = positiveInt('sniff.maxBytes', options.maxBytes, 16384);
  const timeoutMs = positiveInt('sniff.timeoutMs', options.timeoutMs, 5000);
  const { onSniff } = options;
  if (onSniff !== undefined && typeof onSniff !== 'function')
    throw invalidOption('sniff.onSniff', 'must be a function');
  const { deferConnect = onSniff !== undefined } = options;
  if (typeof deferConnect !== 'boolean') throw invalidOption('sniff.deferConnect', 'must be true or false');

  return (ctx) => {
    // A firewall must not touch the destination of a flow it refuses: no connect before the verdict.
    let release: (() => void) | undefined;
    if (deferConnect) {
      release = ctx.deferConnect();
    }
    return { upstream: (source) => sniffHead(source, ctx, maxBytes, timeoutMs, onSniff, release) };
  };
}

/** The upstream operator of one flow; `release` lets the held connect go once the flow is allowed. */
function sniffHead(
  source: Observable<Buffer>,
  ctx: ConnectionContext,
  maxBytes: number,
  timeoutMs: number,
  onSniff: SniffOptions['onSniff'],
  release: (() => void) | undefined,
): Observable<Buffer> {
  return new Observable<Buffer>((subscriber) => {
    let held: Buffer[] = [];
    let heldBytes = 0;
    let decided = false;
    const decide = (result: SniffResult): boolean => {
      decided = true;
      clearTimeout(timer);
      ctx.state.set(SNIFF_KEY, result);
      try {
        if (onSniff?.(result, ctx) === 'deny') {
          const what = result.sni ?? result.host ?? result.protocol;
          subscriber.error(new RedirectError('ERR_REDIRECT_DENIED', `sniff: ${what} was denied`));
          return false;
        }
      } catch (err) {
        subscriber.error(err);
        return false;
      }
      const first = heldBytes > 0 ? Buffer.concat(held, heldBytes) : undefined;
      held = [];
      heldBytes = 0;
      // Allowed: connect now. The head goes into the core's queue and is sent first.
      release?.();
      if (first) subscriber.next(first);
      return true;
    };
    const timer = setTimeout(() => {
      if (!decided) decide(examine(Buffer.concat(held, heldBytes), 'timeout'));
    }, timeoutMs);
    const subscription = source.subscribe({
      next(chunk) {
        if (decided) {
          subscriber.next(chunk);
          return;
        }
        held.push(chunk);
        heldBytes += chunk.length;
        const seen = held.length === 1 ? chunk : Buffer.concat(held, heldBytes);
        const full = heldBytes >= maxBytes;
        const result = examine(full ? seen.subarray(0, maxBytes) : seen, full ? 'max-bytes' : undefined);
        if (result) decide(result);
      },
      error: (err) => subscriber.error(err),
      complete() {
        if (!decided && !decide(examine(Buffer.concat(held, heldBytes), 'end'))) return;
        subscriber.complete();
      },
    });
    return () => {
      clearTimeout(timer);
      subscription.unsubscribe();
    };
  });
}

/** A result if the bytes decide it, or if `final` says no more are coming. */
function examine(data: Buffer, final: SniffResult['stoppedBy']): SniffResult;
function examine(data: Buffer, final: SniffResult['stoppedBy'] | undefined): SniffResult | undefined;
function examine(data: Buffer, final: SniffResult['stoppedBy'] | undefined): SniffResult | undefined {
  if (data.length === 0) return final ? { protocol: 'unknown', stoppedBy: final } : undefined;
  if (data[0] === 0x16) {
    const hello = clientHello(data);
    if (hello === 'more') return final ? { protocol: 'tls', stoppedBy: final } : undefined;
    if (hello === 'invalid') return { protocol: 'unknown', stoppedBy: final ?? 'parsed' };
    return { protocol: 'tls', ...hello, stoppedBy: 'parsed' };
  }
  return http(data, final);
}

interface Hello {
  sni?: string;
  alpn?: string[];
}

/** Parses the ClientHello, which may span several TLS records. */
function clientHello(data: Buffer): Hello | 'more' | 'invalid' {
  const fragments: Buffer[] = [];
  let off = 0;
  for (;;) {
    if (data.length - off < 5) return 'more';
    if (data[off] !== 0x16 || data[off + 1] !== 0x03) return 'invalid';
    const length = data.readUInt16BE(off + 3);
    if (length === 0 || length > 16384) return 'invalid';
    if (data.length - off - 5 < length) return 'more';
    fragments.push(data.subarray(off + 5, off + 5 + length));
    off += 5 + length;
    const hs = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
    if (hs.length < 4) continue;
    if (hs[0] !== 0x01) return 'invalid';
    const size = hs.readUIntBE(1, 3);
    if (hs.length >= 4 + size) {
      try {
        return helloBody(hs.subarray(4, 4 + size));
      } catch {
        return 'invalid';
      }
    }
  }
}

/** Throws RangeError on any truncation (caught as 'invalid'). */
function helloBody(b: Buffer): Hello {
  let p = 2 + 32; // client_version, random
  p += 1 + b.readUInt8(p); // session_id
  p += 2 + b.readUInt16BE(p); // cipher_suites
  p += 1 + b.readUInt8(p); // compression_methods
  const hello: Hello = {};
  if (p >= b.length) return hello; // no extensions
  const end = p + 2 + b.readUInt16BE(p);
  p += 2;
  if (end > b.length) throw new RangeError('extensions overrun');
  while (p + 4 <= end) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    const ext = b.subarray(p + 4, p + 4 + len);
    if (ext.length !== len) throw new RangeError('extension overrun');
    p += 4 + len;
    if (type === 0) {
      // server_name_list: (name_type, host_name)*
      let q = 2;
      while (q + 3 <= ext.length) {
        const nameLen = ext.readUInt16BE(q + 1);
        if (ext[q] === 0) hello.sni = ext.toString('latin1', q + 3, q + 3 + nameLen).toLowerCase();
        q += 3 + nameLen;
      }
    } else if (type === 16) {
      const alpn: string[] = [];
      let q = 2;
      while (q < ext.length) {
        const n = ext.readUInt8(q);
        alpn.push(ext.toString('latin1', q + 1, q + 1 + n));
        q += 1 + n;
      }
      hello.alpn = alpn;
    }
  }
  return hello;
}

const TOKEN = /^[A-Z]{1,16}$/;

function http(data: Buffer, final: SniffResult['stoppedBy'] | undefined): SniffResult | undefined {
  const text = data.toString('latin1');
  const space = text.indexOf(' ');
  const method = space === -1 ? text : text.slice(0, space);
  if (!TOKEN.test(method)) {
    return { protocol: 'unknown', stoppedBy: final ?? 'parsed' };
  }
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd === -1 && !final) return undefined;
  const head = headEnd === -1 ? text : text.slice(0, headEnd + 2);
  const lines = head.split('\r\n');
  if (headEnd === -1) lines.pop(); // an incomplete last line is not read
  const requestLine = lines.shift();
  const parts = requestLine?.split(' ');
  if (parts?.length !== 3 || !TOKEN.test(parts[0]!) || !parts[2]!.startsWith('HTTP/1.')) {
    return { protocol: requestLine === undefined ? 'http' : 'unknown', stoppedBy: final ?? 'parsed' };
  }
  let host: string | undefined;
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).toLowerCase() === 'host') {
      host = stripPort(
        line
          .slice(colon + 1)
          .trim()
          .toLowerCase(),
      );
      break;
    }
  }
  return {
    protocol: 'http',
    method: parts[0]!,
    path: parts[1]!,
    ...(host ? { host } : {}),
    stoppedBy: headEnd === -1 ? (final ?? 'parsed') : 'parsed',
  };
}

function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    return close === -1 ? host : host.slice(0, close + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/** The sniff result of a connection, once `sniff` has decided. */
export function sniffed(ctx: ConnectionContext): SniffResult | undefined {
  return ctx.state.get(SNIFF_KEY) as SniffResult | undefined;
}
