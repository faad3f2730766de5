import { availableParallelism } from 'node:os';
import { RedirectError } from '../common/errors';
import type { Endpoint } from '../common/types';
import { optionalLinux } from '../platform/addon';
import { ClusterRun } from './cluster-run';
import { InProcessRun } from './in-process';
import { createRunnerLog, type RunnerLog } from './log';
import type { RunBackend, RunnerOptions } from './options';

/**
 * `rxredirect run`'s lifecycle (docs/runner.md): start, reload (SIGHUP), drain (SIGTERM/SIGINT).
 * With the worker host (Linux, the addon) every run is a cluster of worker processes, one
 * included: a crashed worker is restarted and the primary keeps the socket. Without it, one
 * worker runs in this process.
 */
export class Runner implements RunBackend {
  readonly log: RunnerLog;
  /** Worker processes, or 1 in this process. */
  readonly workers: number;
  private readonly backend: RunBackend;

  constructor(options: RunnerOptions) {
    const hosted = process.platform === 'linux' && optionalLinux() !== undefined;
    this.workers = options.workers ?? (hosted ? availableParallelism() : 1);
    if (!hosted && this.workers !== 1) {
      throw new RedirectError(
        'ERR_REDIRECT_INVALID_OPTION',
        `workers: ${this.workers} needs the worker host (Linux with the addon); here only 1 runs, in this process`,
      );
    }
    this.log = createRunnerLog(options.log);
    this.backend = hosted ? new ClusterRun(options, this.workers, this.log) : new InProcessRun(options, this.log);
  }

  get address(): Endpoint | undefined {
    return this.backend.address;
  }

  get metricsAddress(): { host: string; port: number } | undefined {
    return this.backend.metricsAddress;
  }

  start(): Promise<void> {
    return this.backend.start();
  }

  reload(): Promise<void> {
    return this.backend.reload();
  }

  drain(): Promise<void> {
    return this.backend.drain();
  }
}
