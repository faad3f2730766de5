import { isListenerEndpoint } from '../common/loop-guard';
import { isHostAddress } from '../platform/host-address';
import { requireLinux } from '../platform/addon';
import { endpointKey } from '../common/record';
import type { Resolver, ResolveResult, ResolverContext } from './types';
import {
  type LinuxResolverOptions,
  checkLinuxResolverOptions,
  acceptedFacts,
  originalDestinationOf,
  redirectedResult,
  notRedirectedResult,
  listenerEndpoint,
} from './linux';

export type NetfilterResolverOptions = LinuxResolverOptions;

/**
 * `netfilterResolver()`: the record's destination is the conntrack original
 * destination; a flow with none was not redirected.
 */
export function netfilterResolver(options?: NetfilterResolverOptions): Resolver {
  const checked = checkLinuxResolverOptions(options);
  return {
    name: 'netfilter',
    prepareListener() {
      requireLinux('resolve: netfilter');
    },
    async resolve(ctx: ResolverContext): Promise<ResolveResult> {
      const addon = requireLinux('resolve: netfilter');
      const facts = acceptedFacts(ctx.socket, addon);
      const destination = originalDestinationOf(addon, facts);
      if (destination === undefined) return notRedirectedResult('netfilter', facts, checked, 'no NAT entry');
      // A catch-all rule also rewrites a dial of one of our own addresses (to loopback):
      // the original destination is then this listener, and relaying would dial ourselves.
      if (isListenerEndpoint(destination, listenerEndpoint(ctx), isHostAddress)) {
        return notRedirectedResult(
          'netfilter',
          facts,
          checked,
          `it dialled the proxy's own address ${endpointKey(destination)}`,
        );
      }
      return redirectedResult('netfilter', facts, destination, checked);
    },
  };
}
