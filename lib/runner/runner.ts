import { RedirectError } from '../common/errors';
import { createMetrics, type RedirectMetrics } from '../metrics/metrics';
import { type MetricsEndpoint, serveMetrics } from '../metrics/http';
import { createRedirectServer, type RedirectServer } from '../server/server';
import type { Endpoint } from '../common/types';
import { loadServerOptions } from './config';
import { openListener, type RunnerListener } from './listener';
import { createRunnerLog, type LogOptions, type RunnerLog } from './log';

/** The lifecycle is in docs/runner.md: start, reload (SIGHUP), drain (SIGTERM/SIGINT). */

export interface RunnerOptions {
  /** The config module: exports the server options (CommonJS or ESM, export or default export). */
  config: string;
  listen: { host: string; port: number };
  /**
   * Workers. The seam for lib/workers/: until the worker host is in the build, only 1, which
   * runs in this process (the one-worker case of the host's generations). With the host, N > 1
   * maps one to one: createRedirectCluster({ module: config, listen, workers, closeTimeoutMs,
   * summaries: true }); start() → cluster.start(), reload() → cluster.reload() (a rejected reload
   * leaves the old generation, as here), drain() → cluster.close(); the log takes the cluster's
   * 'closed' events (summaries as plain objects) and the metrics createClusterMetrics(cluster).
   */
  workers?: number;
  metrics?: { host: string; port: number };
  log?: LogOptions;
  /** A drain's deadline; default the options' limits.closeTimeoutMs. */
  closeTimeoutMs?: number;
}

interface Generation {
  readonly number: number;
  readonly server: RedirectServer;
  readonly retire: () => void;
}

export class Runner {
  private listener: RunnerListener | undefined;
  private current: Generation | undefined;
  private metrics: RedirectMetrics | undefined;
  private endpoint: MetricsEndpoint | undefined;
  private generations = 0;
  /** Config loads, failed ones included: each gets its own ESM URL (a failed import stays cached under its URL). */
  private loads = 0;
  private reloading: Promise<void> = Promise.resolve();
  private draining: Promise<void> | undefined;
  /** Old generations still draining after a reload (a reload does not wait for them). */
  private readonly retiring = new Map<RedirectServer, Promise<void>>();
  readonly log: RunnerLog;
  /** Where the proxy listens, once started. */
  address: Endpoint | undefined;
  /** Where /metrics is served, once started with `metrics`. */
  metricsAddress: { host: string; port: number } | undefined;

  constructor(private readonly options: RunnerOptions) {
    if (options.workers !== undefined && options.workers !== 1) {
      throw new RedirectError(
        'ERR_REDIRECT_INVALID_OPTION',
        `workers: ${options.workers} needs the worker host (lib/workers/), which this build does not have; use 1`,
      );
    }
    this.log = createRunnerLog(options.log);
  }

  async start(): Promise<void> {
    if (this.options.metrics) {
      this.metrics = createMetrics({ worker: '0' });
      this.endpoint = await serveMetrics(this.metrics, this.options.metrics);
      this.metricsAddress = this.endpoint.address;
    }
    try {
      const { host, port } = this.options.listen;
      this.listener = await openListener(host, port);
      this.current = await this.startGeneration();
    } catch (err) {
      await this.endpoint?.close();
      this.listener?.close();
      throw err;
    }
    this.log.logger.info(
      { event: 'listening', address: this.address, metrics: this.metricsAddress, generation: this.current.number },
      'listening',
    );
  }

  /**
   * Loads the config again and swaps generations; a bad config leaves the running one. Serialised;
   * resolves once the new generation serves (the old one drains on, up to its deadline).
   */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.swap());
    return this.reloading;
  }

  private async swap(): Promise<void> {
    if (this.draining || this.current === undefined) return;
    const old = this.current;
    let retired: Promise<void> | undefined;
    let next: Generation;
    try {
      const server = await this.prepareGeneration();
      // Without a shared socket (no addon), the old listener lets go of the address first
      // (close() unbinds at once; its connections drain on in the background).
      if (!this.listener?.shared) retired = this.retire(old);
      next = await this.listenGeneration(server);
    } catch (err) {
      this.log.logger.error(
        { event: 'reload-failed', code: (err as RedirectError).code, err: (err as Error).message },
        'reload failed',
      );
      if (retired) this.track(old, retired);
      return;
    }
    this.current = next;
    this.log.logger.info({ event: 'reload', generation: next.number }, 'reload');
    this.track(old, retired ?? this.retire(old));
  }

  private track(old: Generation, retired: Promise<void>): void {
    this.retiring.set(
      old.server,
      retired.finally(() => this.retiring.delete(old.server)),
    );
  }

  /** Stops accepting, lets connections finish, then stops. Called again: the deadline is now. */
  drain(): Promise<void> {
    if (this.draining) {
      for (const server of [this.current?.server, ...this.retiring.keys()]) void server?.close({ timeoutMs: 0 });
      return this.draining;
    }
    this.draining = (async () => {
      await this.reloading;
      // retire() stops the generation accepting before its first await; then the runner's own
      // descriptor goes, the socket's last: the port is unbound and new attempts are refused at
      // once (a balancer moves them elsewhere) instead of waiting in a queue nobody reads.
      const retired = this.current ? this.retire(this.current) : Promise.resolve();
      this.listener?.close();
      // Logged once the port is unbound: from this line on, new attempts are refused.
      this.log.logger.info({ event: 'drain' }, 'drain');
      await Promise.all([retired, ...this.retiring.values()]);
      await this.endpoint?.close();
      this.log.logger.info({ event: 'stopped' }, 'stopped');
      await this.log.flush();
    })();
    return this.draining;
  }

  private async startGeneration(): Promise<Generation> {
    return this.listenGeneration(await this.prepareGeneration());
  }

  /** Loads the config and makes the server (a bad config throws here, before anything changes). */
  private async prepareGeneration(): Promise<RedirectServer> {
    return createRedirectServer(await loadServerOptions(this.options.config, ++this.loads, this.generations + 1));
  }

  private async listenGeneration(server: RedirectServer): Promise<Generation> {
    const number = ++this.generations;
    const fields = { worker: 0, generation: number };
    server.on('closed', (summary) => this.log.closed(summary, fields));
    server.on('error', (err) =>
      this.log.logger.error(
        { ...fields, event: 'error', code: (err as RedirectError).code, err: err.message },
        'error',
      ),
    );
    const retire = this.metrics?.track(server) ?? (() => {});
    try {
      this.address = await server.listen(this.listener?.next() ?? this.options.listen);
    } catch (err) {
      retire();
      throw err;
    }
    return { number, server, retire };
  }

  private async retire(generation: Generation): Promise<void> {
    await generation.server.close({ timeoutMs: this.closeTimeout(generation.server) });
    generation.retire();
  }

  private closeTimeout(server: RedirectServer): number {
    return this.options.closeTimeoutMs ?? server.config.limits.closeTimeoutMs;
  }
}
