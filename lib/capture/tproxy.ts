import type { Server } from 'node:net';
import { invalidOption } from '../common/errors';
import { TRANSPARENT_PERMISSION_REMEDY } from '../common/marks';
import { isListenerEndpoint } from '../common/loop-guard';
import { isHostAddress } from '../platform/host-address';
import { fdOf, nativeError, optionalLinux, requireLinux } from '../platform/addon';
import {
  acceptedFacts,
  checkLinuxResolverOptions,
  type LinuxResolverOptions,
  listenerEndpoint,
  notRedirectedResult,
  redirectedResult,
} from './linux';
import type { Resolver, ResolveResult, ResolverContext } from './types';

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
      if (isListenerEndpoint(facts.local, listenerEndpoint(ctx), isHostAddress)) {
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
