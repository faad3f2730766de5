import type { RedirectRecord, TargetAddress, Middleware, Limits } from '../common/types';
import type { ResolveOption } from '../capture/types';
import type { EgressPlugin } from '../egress/types';

export type TargetOption = TargetAddress | ((record: RedirectRecord) => TargetAddress);

export interface RedirectServerOptions {
  /**
   * How a socket's record is found: `{ host, port }` (static), a function,
   * a Resolver object, or a mechanism name: 'netfilter', 'tproxy', 'auto' (Linux).
   */
  resolve: ResolveOption | 'netfilter' | 'tproxy' | 'auto' | 'proxy-protocol' | 'wfp';
  /**
   * Which sockets carry the flows: 'net' (node:net, the default) or 'native' (Windows: the
   * addon's WFP engine owns listener and sockets; the default with `resolve: 'wfp'`).
   */
  transport?: 'net' | 'native';
  target?: TargetOption;
  middleware?: readonly Middleware[];
  limits?: Limits;
  /** This proxy's name in redirect chains. Default 'rxredirect'. */
  id?: string;
  egress?: EgressOptions;
  /**
   * Cooperating proxies and their socket-mark bits (Linux, with
   * net.ipv4.tcp_fwmark_accept=1): `{ 'proxy-a': 0x1, 'proxy-b': 0x2 }`.
   * Our own `id` may be left out: it has the bit of `egress.mark` (a single bit
   * then). Given, it must be a bit of `egress.mark`.
   */
  cooperating?: Readonly<Record<string, number>>;
  /** Flows that were not redirected (netfilter, tproxy, auto, wfp): refuse them (default) or send them here. */
  notRedirected?: 'refuse' | TargetAddress;
  /** 'tproxy' and 'auto': set IP_TRANSPARENT on the listener (default true for 'tproxy', 'try' for 'auto'). */
  transparent?: boolean | 'try';
  /**
   * Linux: directions with no middleware (or bypassed) are relayed in the
   * kernel with splice(2) when the addon is loaded ('auto', the default);
   * 'off' keeps every byte on the JS path. See docs/zero-copy.md.
   */
  zeroCopy?: 'auto' | 'always' | 'off';
  /** With `resolve: 'proxy-protocol'`: who may send a header, and limits (docs/proxy-protocol.md). */
  proxyProtocol?: import('../capture/proxy-protocol').ProxyProtocolResolverOptions;
}

export interface EgressOptions {
  plugins?: readonly EgressPlugin[];
  /** Linux: SO_MARK for outbound sockets, set before connect (needs CAP_NET_ADMIN). */
  mark?: number;
  /** Bind the outbound socket to this local address. */
  localAddress?: string;
  /** Write a PROXY header to the upstream: 'v1', 'v2' or options (the server's `id` is filled in). */
  proxyProtocol?: 'v1' | 'v2' | Omit<import('../egress/proxy-protocol').ProxyProtocolEgressOptions, 'id'>;
}
