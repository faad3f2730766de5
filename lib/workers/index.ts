/** The multi-core host (docs/workers.md). */
export { loadConfigModule, type ServerOptionsFactory, type WorkerInfo } from './config-module';
export {
  type ClusterStats,
  createRedirectCluster,
  type RedirectCluster,
  type RedirectClusterEvents,
  type WorkerReply,
} from './host';
export type { RedirectClusterOptions } from './options';
export type { ClusterListenOptions } from './sockets';
export type { WorkerProcessInfo, WorkerStatsReply } from './worker-process';
