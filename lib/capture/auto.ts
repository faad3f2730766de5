import type { Server } from 'node:net';
import { RedirectError } from '../common/errors';
import { isListenerEndpoint } from '../common/loop-guard';
import { isHostAddress } from '../platform/host-address';
import { requireLinux } from '../platform/addon';
import {
  acceptedFacts,
  checkLinuxResolverOptions,
  type LinuxResolverOptions,
  listenerEndpoint,
  notRedirectedResult,
  originalDestinationOf,
  redirectedResult,
} from './linux';
import { makeTransparent } from './tproxy';
import { endpointKey } from '../common/record';
import type { Resolver, ResolveResult, ResolverContext } from './types';

/**
 * One listener for both REDIRECT and TPROXY rules, deciding per connection
 * from what the socket shows:
 *   1. conntrack has a NAT'd original destination  → 'netfilter'
 *   2. the local endpoint is not the listener's     → 'tproxy'
 *   3. otherwise the client connected to us directly → not redirected
 */

export interface AutoResolverOptions extends LinuxResolverOptions {
  /**
   * Make the listener transparent for TPROXY: true (fail listen() if not
   * allowed), false (never), 'try' (default: when allowed; REDIRECT works either way).
   */
  transparent?: boolean | 'try';
}

export function autoResolver(options?: AutoResolverOptions): Resolver {
  const checked = checkLinuxResolverOptions(options);
  const transparent = options?.transparent ?? 'try';
  return {
    name: 'auto',
    prepareListener(server: Server) {
      requireLinux('resolve: auto');
      if (transparent === false) return;
      try {
        makeTransparent(server);
      } catch (err) {
        if (transparent === true) throw err;
        // 'try': without CAP_NET_ADMIN TPROXY cannot deliver here; REDIRECT still can.
        if (!(err instanceof RedirectError) || err.code !== 'ERR_REDIRECT_PERMISSION') throw err;
      }
    },
    async resolve(ctx: ResolverContext): Promise<ResolveResult> {
      const addon = requireLinux('resolve: auto');
      const facts = acceptedFacts(ctx.socket, addon);
      const listen = listenerEndpoint(ctx);
      const natted = originalDestinationOf(addon, facts);
      if (natted !== undefined) {
        if (isListenerEndpoint(natted, listen, isHostAddress)) {
          return notRedirectedResult(
            'auto',
            facts,
            checked,
            `it dialled the proxy's own address ${endpointKey(natted)}`,
          );
        }
        return redirectedResult('netfilter', facts, natted, checked);
      }
      if (!isListenerEndpoint(facts.local, listen, isHostAddress)) {
        return redirectedResult('tproxy', facts, facts.local, checked);
      }
      return notRedirectedResult('auto', facts, checked, 'no NAT entry and its local address is the listener');
    },
  };
}
