/**
 * Outbound PROXY protocol: an egress plugin whose preamble tells the next hop who the
 * original client was and where it was going, and (v2) which proxies already handled
 * the flow, ours included, in a custom TLV. Format and rules: docs/proxy-protocol.md.
 */
import { randomUUID } from 'node:crypto';
import { PROXY_ID_PATTERN } from '../common/record';
import { invalidOption, RedirectError } from '../common/errors';
import {
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  type ProxyHeader,
  type ProxyTlvInit,
  ProxyTlvType,
} from '../proxy-protocol/index';
import type { EgressPlugin } from './types';
import type { RedirectRecord } from '../common/types';
import { encodeChainTlv, checkChainTlvType, checkHopLimit } from '../proxy-protocol/chain-tlv';

/** Proxy ids follow the `id` option's rule. */

export interface ProxyProtocolEgressOptions {
  version: 'v1' | 'v2';
  /**
   * This proxy's id, written last in the chain TLV. Must equal the server's `id`
   * option (checked at createRedirectServer). The string form
   * `egress: { proxyProtocol }` fills it in. Default 'rxredirect'.
   */
  id?: string;
  /** v2: TLV type of the chain, 0xE0–0xEF. Default 0xE0. */
  chainTlvType?: number;
  /**
   * v2: PP2_TYPE_UNIQUE_ID. `true` passes on the inbound unique id when the flow came
   * with one, else writes a random UUID; a function returns the bytes (at most 128).
   */
  uniqueId?: boolean | ((record: RedirectRecord) => Buffer);
  /** v2: PP2_TYPE_AUTHORITY (the host name the client asked for). */
  authority?: string | ((record: RedirectRecord) => string | undefined);
  /** v2: inbound TLV types (from a PROXY-protocol record) to copy to the next hop. */
  passTlvs?: readonly number[];
  /** Most proxies the chain may name, ours included. Default 8. */
  hopLimit?: number;
}

/** The egress plugin, with the proxy id it writes (checked against the server's `id`). */
export interface ProxyProtocolEgressPlugin extends EgressPlugin {
  readonly name: 'proxy-protocol';
  readonly proxyId: string;
}

const KNOWN = new Set(['version', 'id', 'chainTlvType', 'uniqueId', 'authority', 'passTlvs', 'hopLimit']);

/**
 * An egress plugin that writes a PROXY header before any payload.
 *
 * @example
 * createRedirectServer({ resolve: 'netfilter', id: 'edge-1',
 *   egress: { plugins: [proxyProtocolEgress({ version: 'v2', id: 'edge-1' })] } });
 */
export function proxyProtocolEgress(
  options: ProxyProtocolEgressOptions,
  path = 'egress.proxyProtocol',
): ProxyProtocolEgressPlugin {
  if (options === null || typeof options !== 'object') {
    throw invalidOption(path, "must be 'v1', 'v2' or { version, … }");
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw invalidOption(`${path}.${key}`, `unknown option (known: ${[...KNOWN].join(', ')})`);
  }
  const { version } = options;
  if (version !== 'v1' && version !== 'v2') throw invalidOption(`${path}.version`, "must be 'v1' or 'v2'");
  const id = options.id ?? 'rxredirect';
  if (typeof id !== 'string' || !PROXY_ID_PATTERN.test(id)) {
    throw invalidOption(`${path}.id`, 'must be 1–64 characters of A–Z a–z 0–9 . _ : - (the server id)');
  }
  const chainTlvType = checkChainTlvType(options.chainTlvType, `${path}.chainTlvType`);
  const hopLimit = checkHopLimit(options.hopLimit, `${path}.hopLimit`);
  const { uniqueId, authority } = options;
  const passTlvs = options.passTlvs ?? [];
  if (version === 'v1') {
    for (const key of ['chainTlvType', 'uniqueId', 'authority', 'passTlvs'] as const) {
      if (options[key] !== undefined) {
        throw invalidOption(`${path}.${key}`, "v1 headers carry no TLVs; use version: 'v2'");
      }
    }
  }
  if (uniqueId !== undefined && typeof uniqueId !== 'boolean' && typeof uniqueId !== 'function') {
    throw invalidOption(`${path}.uniqueId`, 'must be a boolean or a function (record) => Buffer');
  }
  if (authority !== undefined && typeof authority !== 'string' && typeof authority !== 'function') {
    throw invalidOption(`${path}.authority`, 'must be a string or a function (record) => string | undefined');
  }
  if (!Array.isArray(passTlvs)) throw invalidOption(`${path}.passTlvs`, 'must be an array of TLV types');
  passTlvs.forEach((type, i) => {
    if (!Number.isInteger(type) || type < 0 || type > 0xff) {
      throw invalidOption(`${path}.passTlvs[${i}]`, 'must be a TLV type 0..255');
    }
    if (type === chainTlvType || type === ProxyTlvType.CRC32C) {
      throw invalidOption(`${path}.passTlvs[${i}]`, 'the chain and CRC32C TLVs are written by us, not copied');
    }
  });
  const pass = new Set(passTlvs);

  return {
    name: 'proxy-protocol',
    proxyId: id,
    preamble(record) {
      const chain = [...record.chain.map((e) => e.id), id];
      if (chain.length > hopLimit) {
        throw new RedirectError(
          'ERR_REDIRECT_LOOP_DETECTED',
          `the chain would name ${chain.length} proxies, more than hopLimit ${hopLimit} (${chain.join(' → ')})`,
        );
      }
      const source = { address: record.source.address, port: record.source.port };
      const destination = { address: record.destination.address, port: record.destination.port };
      if (version === 'v1') return encodeProxyHeaderV1({ source, destination });
      const inbound = inboundHeader(record);
      const unique =
        typeof uniqueId === 'function'
          ? uniqueId(record)
          : uniqueId === true
            ? (inbound?.uniqueId ?? Buffer.from(randomUUID(), 'latin1'))
            : undefined;
      const host = typeof authority === 'function' ? authority(record) : authority;
      const ours = new Set<number>([chainTlvType]);
      if (unique !== undefined) ours.add(ProxyTlvType.UNIQUE_ID);
      if (host !== undefined) ours.add(ProxyTlvType.AUTHORITY);
      const copied: ProxyTlvInit[] = (inbound?.tlvs ?? [])
        .filter((t) => pass.has(t.type) && !ours.has(t.type))
        .map((t) => ({ type: t.type, value: t.value }));
      return encodeProxyHeaderV2({
        source,
        destination,
        ...(unique !== undefined ? { uniqueId: unique } : {}),
        ...(host !== undefined ? { authority: host } : {}),
        tlvs: [...copied, { type: chainTlvType, value: encodeChainTlv(chain) }],
      });
    },
  };
}

/** The header a PROXY-protocol resolver put in the record, if any. */
function inboundHeader(record: RedirectRecord): ProxyHeader | undefined {
  const ext = record.extensions?.proxyProtocol as ProxyHeader | undefined;
  return ext !== null && typeof ext === 'object' && Array.isArray(ext.tlvs) ? ext : undefined;
}
