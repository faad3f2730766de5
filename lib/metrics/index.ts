// Prometheus metrics (docs/metrics.md); prom-client is an optional peer dependency, loaded on first use.
export { type MetricsOptions, type RedirectMetrics, createMetrics } from './metrics';
export { aggregateMetrics, type MetricsEndpoint, type MetricsSource, serveMetrics } from './http';
export { createClusterMetrics, type WorkerStatsSource } from './cluster';
