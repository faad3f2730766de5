import { resolve as resolvePath } from 'node:path';
import type { CloseSummary, Endpoint } from '../common/types';
import { createClusterMetrics } from '../metrics/cluster';
import { type MetricsEndpoint, serveMetrics } from '../metrics/http';
import { createRedirectCluster, type RedirectCluster } from '../workers/host';
import type { RunnerLog } from './log';
import type { RunBackend, RunnerOptions } from './options';

/**
 * The runner on the worker host (lib/workers/): `workers` processes on SO_REUSEPORT sockets the
 * primary (this process) keeps. Each worker forwards its close summaries; the primary writes the
 * log lines (one writer, lines never interleave) and serves /metrics. docs/runner.md.
 */
export class ClusterRun implements RunBackend {
  private readonly cluster: RedirectCluster;
  private endpoint: MetricsEndpoint | undefined;
  private reloading: Promise<void> = Promise.resolve();
  private draining: Promise<void> | undefined;
  /** cluster.close() has been called. */
  private closing = false;
  /** A second signal came: the drain's deadline is now. */
  private hurried = false;
  address: Endpoint | undefined;
  metricsAddress: { host: string; port: number } | undefined;

  constructor(
    private readonly options: RunnerOptions,
    workers: number,
    private readonly log: RunnerLog,
  ) {
    this.cluster = createRedirectCluster({
      module: resolvePath(options.config),
      listen: { host: options.listen.host, port: options.listen.port },
      workers,
      summaries: true,
      ...(options.closeTimeoutMs === undefined ? {} : { closeTimeoutMs: options.closeTimeoutMs }),
    });
    const logger = log.logger;
    // Summaries arrive as plain data (error as { code, message }): what the log line reads.
    this.cluster.on('closed', (summary, info) =>
      log.closed(summary as unknown as CloseSummary, { worker: info.slot, generation: info.generation }),
    );
    this.cluster.on('worker-exit', (info, code, signal) => {
      if (info.expected) return;
      // The cluster restarts it (or says why not, as 'error'); its connections ended with it.
      logger.error(
        { event: 'worker-exit', worker: info.slot, generation: info.generation, workerPid: info.pid, code, signal },
        'worker exited',
      );
    });
    this.cluster.on('error', (err) =>
      logger.error({ event: 'error', code: (err as { code?: string }).code, err: err.message }, 'error'),
    );
  }

  async start(): Promise<void> {
    if (this.options.metrics) {
      this.endpoint = await serveMetrics(createClusterMetrics(this.cluster), this.options.metrics);
      this.metricsAddress = this.endpoint.address;
    }
    try {
      this.address = await this.cluster.start();
    } catch (err) {
      await this.endpoint?.close();
      throw err;
    }
    this.log.logger.info(
      {
        event: 'listening',
        address: this.address,
        metrics: this.metricsAddress,
        workers: this.cluster.workers,
        generation: this.cluster.generation,
      },
      'listening',
    );
  }

  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.swap());
    return this.reloading;
  }

  /** Resolves once the new generation serves; the old one drains on in the cluster. */
  private swap(): Promise<void> {
    if (this.draining) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const serving = (generation: number): void => {
        this.log.logger.info({ event: 'reload', generation }, 'reload');
        resolve();
      };
      this.cluster.once('serving', serving);
      this.cluster.reload().then(
        () =>
          this.log.logger.debug({ event: 'reloaded', generation: this.cluster.generation }, 'old generation drained'),
        (err: unknown) => {
          this.cluster.off('serving', serving);
          const e = err as { code?: string; workerCode?: string; message?: string };
          // The worker's own code (ERR_REDIRECT_CONFIG_MODULE, ERR_REDIRECT_INVALID_OPTION…) says why.
          this.log.logger.error(
            { event: 'reload-failed', code: e.workerCode ?? e.code, err: e.message },
            'reload failed',
          );
          resolve();
        },
      );
    });
  }

  drain(): Promise<void> {
    if (this.draining) {
      // Before cluster.close() is called (a reload's new generation still starting), the flag
      // makes that close immediate; after, a second close() hastens every worker's deadline.
      this.hurried = true;
      if (this.closing) void this.cluster.close({ timeoutMs: 0 });
      return this.draining;
    }
    this.draining = (async () => {
      await this.reloading;
      this.closing = true;
      const unbound = new Promise<void>((resolve) => this.cluster.once('unbound', resolve));
      const closed = this.cluster.close(this.hurried ? { timeoutMs: 0 } : {});
      // Logged once every worker has closed its listener and the primary its sockets: from this
      // line on, new attempts are refused (a balancer moves them on).
      await Promise.race([unbound, closed.catch(() => {})]);
      this.log.logger.info({ event: 'drain' }, 'drain');
      await closed;
      await this.endpoint?.close();
      this.log.logger.info({ event: 'stopped' }, 'stopped');
      await this.log.flush();
    })();
    return this.draining;
  }
}
