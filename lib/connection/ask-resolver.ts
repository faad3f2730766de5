import type { Socket } from 'node:net';
import type { Endpoint } from '../common/types';
import type { ResolveResult } from '../capture/types';
import type { Transport } from '../net/transport';
import type { ConnectionHost } from './host';

/**
 * Asks the server's resolver for the record (docs/design.md, lifecycle step 2): the answer
 * itself for a resolver that needs no I/O, or a promise (the connection then arms the resolve
 * deadline). A native transport (Windows WFP) is resolved from what its listener reported at
 * accept; every other flow from its paused socket. `flow.signal` is read only when used: the
 * connection makes its AbortController lazily.
 */
export function askResolver(
  host: ConnectionHost<unknown>,
  client: Transport,
  accepted: unknown,
  flow: { readonly signal: AbortSignal; readonly peer?: Endpoint | undefined },
): ResolveResult | Promise<ResolveResult> {
  const { resolver } = host.config;
  const socket = client.socket;
  if (socket === undefined && resolver.resolveNative) {
    return resolver.resolveNative({
      transport: client,
      accepted,
      listenAddress: host.listenAddress,
      get signal() {
        return flow.signal;
      },
    });
  }
  return resolver.resolve({
    socket: socket as Socket,
    peer: flow.peer,
    listenAddress: host.listenAddress,
    get signal() {
      return flow.signal;
    },
  });
}
