/**
 * Inbound PROXY protocol: the record comes from the header a trusted load balancer
 * sends before the payload. Security model and record layout: docs/proxy-protocol.md.
 */
import type { Socket } from 'node:net';
import { createAddressMatcher } from '../common/ip-address';
import { invalidOption, RedirectError } from '../common/errors';
import { checkChainTlvType, checkHopLimit, decodeChainTlv } from '../proxy-protocol/chain-tlv';
import {
  createProxyHeaderParser,
  normalizeProxyAddress,
  type ProxyHeader,
  ProxyHeaderError,
  type ProxyProtocolVersion,
} from '../proxy-protocol/index';
import { createRecord, makeEndpoint } from '../common/record';
import { stopSocketReading } from '../net/socket-transport';
import type { ChainEntry, Endpoint } from '../common/types';
import type { Resolver, ResolverContext, ResolveResult } from './types';

export interface ProxyProtocolResolverOptions {
  /** Peers (CIDR or address) allowed to send a header: the load balancers. Required. */
  trust: readonly string[];
  /** Versions accepted. Default both. */
  versions?: readonly ProxyProtocolVersion[];
  /** Most header bytes buffered, 107–65551. Default 4096. */
  maxHeaderBytes?: number;
  /**
   * An untrusted peer: 'refuse' (default) ends the flow with ERR_REDIRECT_UNTRUSTED_SOURCE;
   * 'no-header' reads no header from it and lets `inner` resolve it (refused without `inner`).
   */
  untrusted?: 'refuse' | 'no-header';
  /** Resolves untrusted peers when `untrusted` is 'no-header'. */
  inner?: Resolver;
  /** TLV type of the chain TLV, 0xE0–0xEF. Default 0xE0. */
  chainTlvType?: number;
  /** A chain naming more proxies than this is refused as a loop. Default 8. */
  hopLimit?: number;
}

/** What `record.extensions.proxyProtocol` holds: the parsed header plus the real peer. */
export type ProxyProtocolExtension = ProxyHeader & {
  /** The socket's peer: the load balancer that sent the header. */
  readonly peer: Endpoint;
};

const KNOWN = new Set(['trust', 'versions', 'maxHeaderBytes', 'untrusted', 'inner', 'chainTlvType', 'hopLimit']);

/**
 * A resolver that reads a PROXY v1/v2 header from trusted peers (mechanism 'proxy-protocol').
 *
 * @example
 * createRedirectServer({ resolve: proxyProtocolResolver({ trust: ['10.0.0.0/8'] }), target });
 */
export function proxyProtocolResolver(
  options: ProxyProtocolResolverOptions,
  path = 'proxyProtocol',
): Resolver & { readonly name: 'proxy-protocol' } {
  if (options === null || typeof options !== 'object') {
    throw invalidOption(path, "must be { trust: ['10.0.0.0/8', …] } listing the peers allowed to send a header");
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw invalidOption(`${path}.${key}`, `unknown option (known: ${[...KNOWN].join(', ')})`);
  }
  if (options.trust === undefined) {
    throw invalidOption(
      `${path}.trust`,
      "is required: add trust: ['10.0.0.0/8', …] with the load balancers' addresses (anyone who may send a header can claim any client address)",
    );
  }
  const trusted = createAddressMatcher(options.trust, `${path}.trust`);
  const parserOptions = {
    ...(options.versions !== undefined ? { versions: options.versions } : {}),
    ...(options.maxHeaderBytes !== undefined ? { maxHeaderBytes: options.maxHeaderBytes } : {}),
  };
  try {
    createProxyHeaderParser(parserOptions); // checks versions and maxHeaderBytes now
  } catch (err) {
    if (err instanceof RedirectError && err.code === 'ERR_REDIRECT_INVALID_OPTION') {
      throw new RedirectError(err.code, err.message.replace(/^options\./, `options.${path}.`));
    }
    throw err;
  }
  const untrusted = options.untrusted ?? 'refuse';
  if (untrusted !== 'refuse' && untrusted !== 'no-header') {
    throw invalidOption(`${path}.untrusted`, "must be 'refuse' or 'no-header'");
  }
  const { inner } = options;
  if (inner !== undefined && (inner === null || typeof inner.resolve !== 'function')) {
    throw invalidOption(`${path}.inner`, 'must be a resolver object { name, resolve(ctx) }');
  }
  const chainTlvType = checkChainTlvType(options.chainTlvType, `${path}.chainTlvType`);
  const hopLimit = checkHopLimit(options.hopLimit, `${path}.hopLimit`);

  return {
    name: 'proxy-protocol',
    kernelRecords: false,
    ...(inner?.prepareListener ? { prepareListener: (server) => inner.prepareListener?.(server) } : {}),
    async resolve(ctx: ResolverContext): Promise<ResolveResult> {
      const { socket } = ctx;
      const peerAddress = socket.remoteAddress;
      // Decided before a single byte is read: no auto-detection, ever.
      if (peerAddress === undefined || !trusted(peerAddress)) {
        if (untrusted === 'no-header' && inner) return inner.resolve(ctx);
        throw new RedirectError(
          'ERR_REDIRECT_UNTRUSTED_SOURCE',
          `${peerAddress ?? 'an unknown peer'} is not in proxyProtocol.trust and may not send a PROXY header`,
        );
      }
      const peer = makeEndpoint({ address: peerAddress, port: socket.remotePort ?? 0 }, 'source');
      const { header, leftover } = await readHeader(socket, createProxyHeaderParser(parserOptions), ctx.signal);
      const chain = chainOf(header, chainTlvType);
      if (chain.length > hopLimit) {
        throw new RedirectError(
          'ERR_REDIRECT_LOOP_DETECTED',
          `the PROXY header's chain names ${chain.length} proxies, more than hopLimit ${hopLimit} (${chain.map((e) => e.id).join(' → ')})`,
        );
      }
      const proxyProtocol: ProxyProtocolExtension = Object.freeze({ ...header, peer });
      const addressed = header.command === 'proxy' && header.source !== undefined && header.destination !== undefined;
      // LOCAL (health checks), UNKNOWN/AF_UNSPEC and AF_UNIX: the real socket endpoints.
      const source = addressed ? normalizeProxyAddress(header.source!) : peer;
      const destination = addressed
        ? normalizeProxyAddress(header.destination!)
        : { address: socket.localAddress ?? '0.0.0.0', port: socket.localPort ?? 0 };
      const record = createRecord({
        mechanism: 'proxy-protocol',
        source,
        destination,
        chain,
        extensions: { proxyProtocol },
      });
      return leftover.length > 0 ? { record, leftover } : { record };
    },
  };
}

function chainOf(header: ProxyHeader, type: number): ChainEntry[] {
  const found = header.tlvs.filter((t) => t.type === type);
  if (found.length > 1)
    throw new ProxyHeaderError('tlv-duplicate', `more than one chain TLV (type 0x${type.toString(16)})`);
  return found[0] ? decodeChainTlv(found[0].value) : [];
}

/**
 * Reads exactly one header off the paused socket, then stops reading at the libuv
 * level; what followed the header in the last chunk comes back as `leftover`.
 */
function readHeader(
  socket: Socket,
  parser: ReturnType<typeof createProxyHeaderParser>,
  signal: AbortSignal,
): Promise<{ header: ProxyHeader; leftover: Buffer }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      signal.removeEventListener('abort', onAbort);
      stopSocketReading(socket);
      fn();
    };
    const onData = (chunk: Buffer): void => {
      let step: ReturnType<typeof parser.push>;
      try {
        step = parser.push(chunk);
      } catch (err) {
        finish(() => reject(err));
        return;
      }
      if (step.done) finish(() => resolve({ header: step.header, leftover: step.leftover }));
    };
    const onEnd = (): void =>
      finish(() =>
        reject(
          new RedirectError(
            'ERR_REDIRECT_PROXY_HEADER',
            `PROXY header refused (truncated): the peer closed after ${parser.bufferedBytes} header bytes`,
          ),
        ),
      );
    const onAbort = (): void =>
      finish(() => reject(new RedirectError('ERR_REDIRECT_RESOLVE_FAILED', 'stopped while reading the PROXY header')));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
