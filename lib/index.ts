export { createAddressMatcher, parseCidr } from './cidr';
export { both, compose, downstream, upstream } from './compose';
export { Connection } from './connection';
export { formatDoctor, runDoctor } from './doctor';
export { chainFromMark, type CooperatingMarks, type MarkEgressOptions, markEgress } from './egress-mark';
export {
  DEFAULT_CHAIN_TLV_TYPE,
  decodeChainTlv,
  encodeChainTlv,
  type ProxyProtocolEgressOptions,
  type ProxyProtocolEgressPlugin,
  proxyProtocolEgress,
} from './egress-proxy-protocol';
export { errnoOf, RedirectError, type RedirectErrorCode } from './errors';
export { type Capabilities, native, requireNative, type SpliceEngineStats } from './native';
export { DEFAULT_LIMITS } from './options';
export * from './proxy-header';
export { createRecord, normaliseAddress } from './record';
export { type AutoResolverOptions, autoResolver } from './resolve-auto';
export { type NetfilterResolverOptions, netfilterResolver } from './resolve-netfilter';
export {
  type ProxyProtocolExtension,
  type ProxyProtocolResolverOptions,
  proxyProtocolResolver,
} from './resolve-proxy-protocol';
export { type TproxyResolverOptions, tproxyResolver } from './resolve-tproxy';
export { type WfpResolverOptions, wfpResolver } from './resolve-wfp';
export { functionResolver, staticResolver } from './resolvers';
export { formatCommand, formatRules, generateRules, type RuleSet, type RulesOptions } from './rules';
export {
  createRedirectServer,
  type ListenOptions,
  RedirectServer,
  type RedirectServerEvents,
  type ServerStats,
} from './server';
export { splits, type TestMiddlewareOptions, type TestMiddlewareResult, testMiddleware } from './test-harness';
export { SocketTransport, type Transport, type TransportHandlers } from './transport';
export {
  configureZeroCopy,
  DEFAULT_ZERO_COPY_BUDGET,
  type ZeroCopyBudget,
  type ZeroCopyMode,
  zeroCopyStats,
} from './zero-copy';
export type * from './types';
