// The public API of `rxredirect`, name by name (docs/api.md documents each one).
// Internals (Connection's and the Transport's implementations, the addon, the CLI's
// doctor and rules, helpers such as errnoOf) are imported from their modules by tests
// and benchmarks, never from here. test/api.test.ts checks this list against docs/api.md.

// The server
export {
  createRedirectServer,
  type ListenOptions,
  type RedirectServer,
  type RedirectServerEvents,
  type ServerStats,
} from './server';
export type { Connection, ConnectionEvents } from './connection';
export { DEFAULT_LIMITS } from './options';
export type {
  AddressFamily,
  BypassDirection,
  ByteOperator,
  ChainEntry,
  CloseReason,
  CloseSummary,
  ConnectionContext,
  DataPath,
  DirectionSummary,
  EgressOptions,
  EgressPlugin,
  Endpoint,
  Limits,
  Middleware,
  MiddlewareOperators,
  NativeResolverContext,
  RedirectMechanism,
  RedirectRecord,
  RedirectRecordInit,
  RedirectServerOptions,
  ResolvedTarget,
  ResolveOption,
  Resolver,
  ResolverContext,
  ResolveResult,
  TargetAddress,
  TargetOption,
} from './types';
export type { Transport, TransportHandlers } from './transport';

// Errors
export { RedirectError, type RedirectErrorCode } from './errors';

// Middleware composition (also exported by `rxredirect/middleware`)
export { both, compose, downstream, upstream } from './compose';

// Resolvers: how a flow's redirect record is found
export { functionResolver, staticResolver } from './resolvers';
export { type NetfilterResolverOptions, netfilterResolver } from './resolve-netfilter';
export { type TproxyResolverOptions, tproxyResolver } from './resolve-tproxy';
export { type AutoResolverOptions, autoResolver } from './resolve-auto';
export {
  type ProxyProtocolExtension,
  type ProxyProtocolResolverOptions,
  proxyProtocolResolver,
} from './resolve-proxy-protocol';
export { type WfpResolverOptions, wfpResolver } from './resolve-wfp';

// Egress plugins: how the record is passed on to the next hop
export { type CooperatingMarks, type MarkEgressOptions, markEgress } from './egress-mark';
export {
  type ProxyProtocolEgressOptions,
  type ProxyProtocolEgressPlugin,
  proxyProtocolEgress,
} from './egress-proxy-protocol';

// Records
export { createRecord } from './record';

// The PROXY protocol codec (docs/proxy-protocol.md)
export {
  createProxyHeaderParser,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  isProxyHeaderError,
  normalizeProxyAddress,
  parseProxyHeader,
  type ProxyAddress,
  type ProxyAddressInit,
  type ProxyCommand,
  type ProxyFamily,
  type ProxyHeader,
  ProxyHeaderError,
  type ProxyHeaderErrorReason,
  type ProxyHeaderParser,
  type ProxyHeaderParserOptions,
  type ProxyHeaderParseStep,
  type ProxyHeaderV1Init,
  type ProxyHeaderV2Init,
  type ProxyProtocolVersion,
  ProxySslClient,
  type ProxySslInfo,
  type ProxySslInit,
  type ProxyTlv,
  type ProxyTlvFieldsInit,
  type ProxyTlvInit,
  ProxyTlvType,
  type ProxyTransport,
  type ProxyUnixAddress,
} from './proxy-header';

// Large reads' process-wide slab budget (docs/design.md, "The slab budget")
export { configureLargeReads, type LargeReadBudget, type LargeReadStats, largeReadStats } from './slab-pool';

// Zero-copy (Linux, docs/zero-copy.md)
export {
  configureZeroCopy,
  DEFAULT_ZERO_COPY_BUDGET,
  type ZeroCopyBudget,
  type ZeroCopyMode,
  zeroCopyStats,
} from './zero-copy';
export type { SpliceEngineStats } from './native';

// Testing a middleware chain without sockets (docs/middleware.md)
export { splits, type TestMiddlewareOptions, type TestMiddlewareResult, testMiddleware } from './test-harness';
