import { networkInterfaces } from 'node:os';
import type { Server } from 'node:net';
import { invalidOption } from './errors';
import { TRANSPARENT_PERMISSION_REMEDY } from './egress-mark';
import { fdOf, nativeError, optionalLinux, requireLinux } from './native';
import {
  acceptedFacts,
  checkLinuxResolverOptions,
  type LinuxResolverOptions,
  listenerEndpoint,
  notRedirectedResult,
  redirectedResult,
} from './resolve-netfilter';
import type { Endpoint, Resolver, ResolveResult, ResolverContext } from './types';

/**
 * Resolver for iptables/nftables TPROXY: the packet is delivered unchanged to
 * a transparent listener, so the accepted socket's local address IS the
 * original destination. No conntrack lookup, and without the addon it still
 * resolves (only `mark` and the mark-based chain are then missing).
 */

export interface TproxyResolverOptions extends LinuxResolverOptions {
  /**
   * Set IP_TRANSPARENT / IPV6_TRANSPARENT on the listener at listen() (needs
   * CAP_NET_ADMIN and the addon). Default true. Set false when the listening
   * socket is already transparent, e.g. made by a privileged parent and passed
   * in with `server.listen({ fd })`.
   */
  transparent?: boolean;
}

export function tproxyResolver(options?: TproxyResolverOptions): Resolver {
  const checked = checkLinuxResolverOptions(options);
  const transparent = options?.transparent ?? true;
  if (typeof transparent !== 'boolean') throw invalidOption('resolve.transparent', 'must be a boolean');
  return {
    name: 'tproxy',
    prepareListener(server: Server) {
      if (transparent) makeTransparent(server);
    },
    async resolve(ctx: ResolverContext): Promise<ResolveResult> {
      const facts = acceptedFacts(ctx.socket, optionalLinux());
      if (isListenerEndpoint(facts.local, listenerEndpoint(ctx))) {
        return notRedirectedResult('tproxy', facts, checked, 'its local address is the listener');
      }
      return redirectedResult('tproxy', facts, facts.local, checked);
    },
  };
}

/** Sets IP_TRANSPARENT on a bound listener, or throws a coded error with the remedy. */
export function makeTransparent(server: Server): void {
  const addon = requireLinux('TPROXY (IP_TRANSPARENT on the listener)');
  try {
    addon.setTransparent(fdOf(server));
  } catch (err) {
    throw nativeError(err, 'cannot make the listener transparent (IP_TRANSPARENT)', TRANSPARENT_PERMISSION_REMEDY);
  }
}

/**
 * Whether a flow's local endpoint is the listener itself, i.e. the client
 * connected to us rather than being steered to us. On a wildcard listener the
 * port must match and the address must be one this host owns; TPROXY'd flows
 * carry foreign addresses (or foreign ports) instead.
 */
export function isListenerEndpoint(local: Endpoint, listen: Endpoint | undefined): boolean {
  if (listen === undefined || local.port !== listen.port) return false;
  if (listen.address !== '0.0.0.0' && listen.address !== '::') return local.address === listen.address;
  return isLocalAddress(local.address);
}

function isLocalAddress(address: string): boolean {
  if (address === '::1' || address.startsWith('127.')) return true;
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) {
      if (info.address.toLowerCase() === address) return true;
    }
  }
  return false;
}
