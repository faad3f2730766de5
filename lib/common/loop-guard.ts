import { endpointKey } from './record';
import type { Endpoint, RedirectRecord, ResolvedTarget } from './types';

/** Mechanisms whose record is the kernel's 4-tuple of the flow. */
const KERNEL_MECHANISMS: ReadonlySet<string> = new Set(['netfilter', 'tproxy', 'wfp']);

/** `local>remote`: the key under which a server keeps its live upstream sockets. */
export function flowKey(from: Endpoint, to: Endpoint): string {
  return `${endpointKey(from)}>${endpointKey(to)}`;
}

/**
 * Why an accepted flow is a loop, judged from its record alone (before any
 * upstream is made); undefined when it is not one.
 */
export function recordLoop(
  record: RedirectRecord,
  proxyId: string,
  egressEndpoints: Set<string> | undefined,
): string | undefined {
  if (record.chain.some((entry) => entry.id === proxyId)) {
    return `this flow already passed through "${proxyId}" (chain: ${record.chain.map((e) => e.id).join(' → ')})`;
  }
  // Only a record that carries the kernel's own view of the flow (its real
  // original destination) can be matched against our outbound sockets: both
  // ends must match, since the kernel reuses a local port for connections to
  // different destinations, and a static record's destination is not the
  // flow's.
  if (egressEndpoints === undefined || egressEndpoints.size === 0 || !KERNEL_MECHANISMS.has(record.mechanism)) {
    return undefined;
  }
  const key = flowKey(record.source, record.destination);
  if (egressEndpoints.has(key)) {
    return `this flow is our own outbound connection ${key} coming back`;
  }
  return undefined;
}

/** Asks whether an address is one of this host's (lib/platform/host-address.ts: the kernel knows). */
export type HostAddressCheck = (address: string) => boolean;

/** Why connecting to `target` would reach this very listener; undefined when it would not. */
export function selfTargetLoop(
  target: ResolvedTarget,
  listen: Endpoint | undefined,
  isHostAddress: HostAddressCheck,
): string | undefined {
  const endpoint = { address: target.host, port: target.port, family: target.family };
  return isListenerEndpoint(endpoint, listen, isHostAddress)
    ? `the target ${endpointKey(endpoint)} is this server itself`
    : undefined;
}

/**
 * Whether `endpoint` is the listener itself: the same port, and the listener's
 * address or, on a wildcard listener, any address of this host (its own
 * wildcard address, loopback, or an interface's: a client may dial any of them).
 * Only then is the host asked, so most flows cost a port comparison.
 */
export function isListenerEndpoint(
  endpoint: { address: string; port: number },
  listen: Endpoint | undefined,
  isHostAddress: HostAddressCheck,
): boolean {
  if (listen === undefined || endpoint.port !== listen.port) return false;
  if (!isWildcard(listen.address)) return endpoint.address === listen.address;
  return isWildcard(endpoint.address) || isHostAddress(endpoint.address);
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}
