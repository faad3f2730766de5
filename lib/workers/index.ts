/** The multi-core host (docs/workers.md). */
export {
  type ClusterStats,
  createRedirectCluster,
  RedirectCluster,
  type RedirectClusterEvents,
  type RedirectClusterOptions,
} from './host';
export { loadConfigModule, type ServerOptionsFactory, type WorkerInfo } from './config-module';
export type { ClusterListenOptions } from './sockets';
export type { WorkerProcessInfo, WorkerStatsReply } from './worker-process';
