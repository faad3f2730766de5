import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { formatIpAddress, isIPv4Mapped, parseIpAddress } from './ip-address';
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

/** Why connecting to `target` would reach this very listener; undefined when it would not. */
export function selfTargetLoop(target: ResolvedTarget, listen: Endpoint | undefined): string | undefined {
  const endpoint = { address: target.host, port: target.port, family: target.family };
  return isListenerEndpoint(endpoint, listen) ? `the target ${endpointKey(endpoint)} is this server itself` : undefined;
}

/**
 * Whether `endpoint` is the listener itself: the same port, and the listener's
 * address or, on a wildcard listener, any address of this host (its own
 * wildcard address, loopback, or an interface's: a client may dial any of them).
 */
export function isListenerEndpoint(endpoint: { address: string; port: number }, listen: Endpoint | undefined): boolean {
  if (listen === undefined || endpoint.port !== listen.port) return false;
  if (!isWildcard(listen.address)) return endpoint.address === listen.address;
  return isWildcard(endpoint.address) || isLocalAddress(endpoint.address);
}

/** An address of this host (in this network namespace), asked anew each time: interfaces change. */
function isLocalAddress(address: string): boolean {
  if (isLoopback(address)) return true;
  const wanted = address.toLowerCase();
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) {
      if (info.address.toLowerCase() === wanted) return true;
    }
  }
  // libuv lists only interfaces that are up and running (a veth without carrier is left out,
  // yet it may receive a connection): ask the kernel's own tables, which list every local address.
  return process.platform === 'linux' && kernelHasAddress(address);
}

/** Linux: the address is in the local routing table (IPv4) or on an interface (IPv6). */
function kernelHasAddress(address: string): boolean {
  const parsed = parseIpAddress(address);
  if (parsed === undefined) return false;
  try {
    if (parsed.family === 'IPv6' && !isIPv4Mapped(parsed.bytes)) {
      const hex = Buffer.from(parsed.bytes).toString('hex');
      return readFileSync('/proc/net/if_inet6', 'utf8')
        .split('\n')
        .some((line) => line.startsWith(hex));
    }
    const v4 = formatIpAddress(parsed.bytes.subarray(parsed.bytes.length - 4));
    const lines = readFileSync('/proc/net/fib_trie', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i++) {
      if (lines[i]?.trimEnd().endsWith(`|-- ${v4}`) && lines[i + 1]?.includes('/32 host LOCAL')) return true;
    }
  } catch {
    // no procfs: the interface list above is all we know
  }
  return false;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}
