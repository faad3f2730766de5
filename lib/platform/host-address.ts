import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { formatIpAddress, isIPv4Mapped, parseIpAddress } from '../common/ip-address';
import { optionalLinux } from './addon';

/**
 * Whether `address` is one of this host's own (in this network namespace), asked anew each
 * time: addresses come and go, and a stale answer is how a freshly added address loops. The loop
 * guard (lib/common/loop-guard.ts) asks it for each flow whose target port is a wildcard
 * listener's, so it has to be cheap whatever the host's routing table holds.
 */
export function isHostAddress(address: string): boolean {
  if (address.startsWith('127.') || address === '::1') return true;
  const parsed = parseIpAddress(address);
  if (parsed === undefined) return false;
  const v4 = parsed.family === 'IPv4' || isIPv4Mapped(parsed.bytes);
  // IPv4 on Linux: one route lookup (every local address is RTN_LOCAL, on an interface with or
  // without carrier). IPv6 keeps the interface list: a tentative or down address has no local
  // route yet, and the list is short.
  if (v4 && process.platform === 'linux') {
    const text = formatIpAddress(parsed.bytes.subarray(parsed.bytes.length - 4));
    const addon = optionalLinux();
    if (addon !== undefined && typeof addon.isLocalRoute === 'function') {
      try {
        return addon.isLocalRoute(text);
      } catch {
        // netlink could not answer: ask procfs below
      }
    }
    return listedInterface(text) || fibHasLocal(text);
  }
  if (listedInterface(address)) return true;
  return process.platform === 'linux' && !v4 && inet6HasAddress(parsed.bytes);
}

/** libuv's list: only interfaces that are up and running (a veth without carrier is left out). */
function listedInterface(address: string): boolean {
  const wanted = address.toLowerCase();
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) {
      if (info.address.toLowerCase() === wanted) return true;
    }
  }
  return false;
}

/**
 * Without the addon: the address is a /32 host LOCAL entry of /proc/net/fib_trie, every local
 * address whatever its interface's state. A walk of the whole routing table, so it is the fallback.
 */
export function fibHasLocal(v4: string): boolean {
  try {
    const lines = readFileSync('/proc/net/fib_trie', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i++) {
      if (lines[i]?.trimEnd().endsWith(`|-- ${v4}`) && lines[i + 1]?.includes('/32 host LOCAL')) return true;
    }
  } catch {
    // no procfs: the interface list is all we know
  }
  return false;
}

/** An IPv6 address on any interface, whatever its state (/proc/net/if_inet6). */
function inet6HasAddress(bytes: Uint8Array): boolean {
  const hex = Buffer.from(bytes).toString('hex');
  try {
    return readFileSync('/proc/net/if_inet6', 'utf8')
      .split('\n')
      .some((line) => line.startsWith(hex));
  } catch {
    return false;
  }
}
