import type { Endpoint } from '../common/types';
import type { LogOptions } from './log';

export interface RunnerOptions {
  /** The config module: exports the server options (CommonJS or ESM, export or default export). */
  config: string;
  listen: { host: string; port: number };
  /**
   * Worker processes (lib/workers/). Default: the CPUs this process may use
   * (os.availableParallelism()). Without the worker host (no addon, not Linux) only 1, which runs
   * in this process.
   */
  workers?: number;
  metrics?: { host: string; port: number };
  log?: LogOptions;
  /**
   * A drain's deadline (SIGTERM, and a reload's old generation). Default: with workers, the
   * cluster's 30 s; in process, the options' limits.closeTimeoutMs.
   */
  closeTimeoutMs?: number;
}

/** One way of running the config: worker processes (cluster-run.ts) or this process (in-process.ts). */
export interface RunBackend {
  start(): Promise<void>;
  /** Resolves once the new generation serves (a bad config is logged, the running one stays). */
  reload(): Promise<void>;
  /** Stops accepting, lets connections finish, then stops. Called again: the deadline is now. */
  drain(): Promise<void>;
  /** Where the proxy listens, once started. */
  readonly address: Endpoint | undefined;
  /** Where /metrics is served, once started with `metrics`. */
  readonly metricsAddress: { host: string; port: number } | undefined;
}
