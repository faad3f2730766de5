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
} from './server/server';
export type { Connection, ConnectionEvents } from './connection/connection';
export { DEFAULT_LIMITS } from './config/options';
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
  Endpoint,
  Limits,
  Middleware,
  MiddlewareOperators,
  RedirectMechanism,
  RedirectRecord,
  RedirectRecordInit,
  ResolvedTarget,
  TargetAddress,
} from './common/types';
export type { EgressOptions, RedirectServerOptions, TargetOption } from './config/types';
export type { EgressPlugin } from './egress/types';
export type { NativeResolverContext, ResolveOption, Resolver, ResolverContext, ResolveResult } from './capture/types';
export type { Transport, TransportHandlers } from './net/transport';

// Errors
export { RedirectError, type RedirectErrorCode } from './common/errors';

// Middleware composition (also exported by `rxredirect/middleware`)
export { both, compose, downstream, upstream } from './pipeline/compose';

// Resolvers: how a flow's redirect record is found
export { functionResolver, staticResolver } from './capture/resolvers';
export { type NetfilterResolverOptions, netfilterResolver } from './capture/netfilter';
export { type TproxyResolverOptions, tproxyResolver } from './capture/tproxy';
export { type AutoResolverOptions, autoResolver } from './capture/auto';
export {
  type ProxyProtocolExtension,
  type ProxyProtocolResolverOptions,
  proxyProtocolResolver,
} from './capture/proxy-protocol';
export { type WfpResolverOptions, wfpResolver } from './capture/wfp';

// Egress plugins: how the record is passed on to the next hop
export type { CooperatingMarks } from './common/marks';
export { type MarkEgressOptions, markEgress } from './egress/mark';
export {
  type ProxyProtocolEgressOptions,
  type ProxyProtocolEgressPlugin,
  proxyProtocolEgress,
} from './egress/proxy-protocol';

// Records
export { createRecord } from './common/record';

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
} from './proxy-protocol/index';

// Large reads' process-wide slab budget (docs/design.md, "The slab budget")
export { configureLargeReads, type LargeReadBudget, type LargeReadStats, largeReadStats } from './net/slab-pool';

// Zero-copy (Linux, docs/zero-copy.md)
export {
  configureZeroCopy,
  DEFAULT_ZERO_COPY_BUDGET,
  type ZeroCopyBudget,
  type ZeroCopyMode,
  zeroCopyStats,
} from './zero-copy/engine';
export type { SpliceEngineStats } from './platform/addon';

// Prometheus metrics (docs/metrics.md; prom-client is an optional peer dependency)
export {
  aggregateMetrics,
  createClusterMetrics,
  createMetrics,
  type MetricsEndpoint,
  type MetricsOptions,
  type MetricsSource,
  type RedirectMetrics,
  serveMetrics,
  type WorkerStatsSource,
} from './metrics/index';

// Testing a middleware chain without sockets (docs/middleware.md)
export { splits, type TestMiddlewareOptions, type TestMiddlewareResult, testMiddleware } from './pipeline/test-harness';

// Worker processes on one address, crash restart, zero-downtime reload (Linux, docs/workers.md)
export {
  type ClusterListenOptions,
  type ClusterStats,
  createRedirectCluster,
  loadConfigModule,
  type RedirectCluster,
  type RedirectClusterEvents,
  type RedirectClusterOptions,
  type ServerOptionsFactory,
  type WorkerInfo,
  type WorkerProcessInfo,
  type WorkerReply,
  type WorkerStatsReply,
} from './workers/index';
