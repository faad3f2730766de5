import { availableParallelism } from 'node:os';
import { EventEmitter } from 'eventemitter3';
import { RedirectError } from '../common/errors';
import type { SpliceEngineStats } from '../platform/addon';
import type { ServerStats } from '../server/server-stats';
import type { Endpoint } from '../common/types';
import { DEFAULT_ZERO_COPY_BUDGET } from '../zero-copy/engine';
import { ListeningSockets } from './sockets';
import { sumStats } from './stats-sum';
import { type RedirectClusterOptions, validateClusterOptions } from './options';
import type { WorkerProcess, WorkerProcessInfo, WorkerStatsReply } from './worker-process';
import { WorkerStarter } from './worker-slots';

export interface ClusterStats {
  /** Workers that answered. */
  readonly workers: number;
  /**
   * The sum of their server.stats(), plus the counters of workers that are gone (a drained
   * worker's final ones, a crashed worker's last heard): totals do not drop at a reload.
   */
  readonly server: ServerStats | undefined;
  /** The sum of their splice engines' stats (pipeSize, maxPipeSize: per relay, not summed). */
  readonly zeroCopy: SpliceEngineStats | undefined;
  readonly perWorker: readonly WorkerStatsReply[];
}

/** One worker's answer to cluster.request(). */
export interface WorkerReply extends WorkerProcessInfo {
  readonly reply?: unknown;
  readonly error?: { readonly code: string | undefined; readonly message: string };
}

export interface RedirectClusterEvents {
  listening: [address: Endpoint];
  'worker-listening': [info: WorkerProcessInfo];
  'worker-exit': [info: WorkerProcessInfo & { expected: boolean }, code: number | null, signal: NodeJS.Signals | null];
  reloaded: [generation: number];
  closed: [summary: Record<string, unknown>, info: WorkerProcessInfo];
  error: [err: Error];
}

/**
 * N worker processes on one address (Linux, with the addon). The primary holds
 * the SO_REUSEPORT sockets, restarts crashed workers and reloads generations
 * without refusing a connection; lifecycle and protocol in docs/workers.md.
 */
export class RedirectCluster extends EventEmitter<RedirectClusterEvents> {
  readonly options: Readonly<RedirectClusterOptions>;
  private sockets: ListeningSockets | undefined;
  private starter: WorkerStarter | undefined;
  private state: 'idle' | 'starting' | 'running' | 'closing' | 'closed' = 'idle';
  /** The running reload or close: one at a time. */
  private busy: Promise<unknown> = Promise.resolve();

  constructor(options: RedirectClusterOptions) {
    super();
    this.options = validateClusterOptions(options);
  }

  get workers(): number {
    return this.options.workers ?? availableParallelism();
  }

  get address(): Endpoint | undefined {
    return this.sockets?.address;
  }

  get generation(): number {
    return this.starter?.generation ?? 0;
  }

  /** Makes the sockets, starts generation 1; resolves with the address once every worker accepts. */
  start(): Promise<Endpoint> {
    if (this.state !== 'idle') {
      return Promise.reject(
        new RedirectError('ERR_REDIRECT_SERVER_STATE', `start() called on a cluster that is ${this.state}`),
      );
    }
    this.state = 'starting';
    const run = (async () => {
      let sockets: ListeningSockets | undefined;
      try {
        sockets = new ListeningSockets(this.options.listen, this.workers);
        this.sockets = sockets;
        const starter = new WorkerStarter(this.options, sockets, this.budgetLimits(), this);
        this.starter = starter;
        await starter.startGeneration(this.workers);
      } catch (err) {
        // Nothing is left running: no worker (startGeneration stops them), no socket.
        this.state = 'closed';
        sockets?.close();
        throw err;
      }
      this.state = 'running';
      this.emit('listening', sockets.address);
      return sockets.address;
    })();
    // A reload() or close() called meanwhile waits for the start.
    this.busy = run.catch(() => {});
    return run;
  }

  /**
   * Starts a new generation on the same sockets (the config module imported anew), then drains
   * the old one. Rejects with ERR_REDIRECT_WORKER_FAILED, the old generation still serving, when
   * a new worker cannot start.
   */
  reload(): Promise<void> {
    const run = this.busy.then(async () => {
      if (this.state !== 'running' || this.starter === undefined) {
        throw new RedirectError('ERR_REDIRECT_SERVER_STATE', `reload() called on a cluster that is ${this.state}`);
      }
      await this.starter.reload(this.workers);
      this.emit('reloaded', this.starter.generation);
    });
    this.busy = run.catch(() => {});
    return run;
  }

  /** Every worker stops accepting and drains (timeoutMs, default closeTimeoutMs); then the sockets close. */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    const run = this.busy.then(async () => {
      if (this.state === 'closed' || this.state === 'closing') return;
      this.state = 'closing';
      await this.starter?.stopAll(options.timeoutMs ?? this.options.closeTimeoutMs ?? 30_000);
      this.sockets?.close();
      this.state = 'closed';
    });
    this.busy = run.catch(() => {});
    return run;
  }

  /** Asks every live worker for its stats and sums them. */
  async stats(): Promise<ClusterStats> {
    const replies = (await Promise.all((this.starter?.live() ?? []).map((w) => w.stats()))).filter(
      (r): r is WorkerStatsReply => r !== undefined,
    );
    const engines = replies.map((r) => r.zeroCopy).filter((z): z is SpliceEngineStats => z !== null);
    const zeroCopy = sumStats(engines);
    const first = engines[0];
    return {
      workers: replies.length,
      server: sumStats([...replies.map((r) => r.server), ...(this.starter?.retired ? [this.starter.retired] : [])]),
      zeroCopy:
        zeroCopy && first ? { ...zeroCopy, pipeSize: first.pipeSize, maxPipeSize: first.maxPipeSize } : undefined,
      perWorker: replies,
    };
  }

  /**
   * Calls the `setup` hook's `onRequest(payload)` in every live worker (the hook returns
   * `{ onRequest }`; payload and answer cross the IPC channel as JSON) and resolves with each
   * worker's answer, or its error as `{ code, message }`. A worker that exits meanwhile is
   * left out. E.g. per-worker metrics: the hook returns `{ onRequest: () => registry.getMetricsAsJSON() }`.
   */
  async request(payload: unknown): Promise<WorkerReply[]> {
    const live = this.starter?.live() ?? [];
    const answers = await Promise.all(live.map(async (w) => ({ info: w.info, answer: await w.ask(payload) })));
    return answers.flatMap(({ info, answer }) => (answer === undefined ? [] : [{ ...info, ...answer }]));
  }

  /** The live worker processes (pid, slot, generation), e.g. for a metrics label or a test. */
  list(): WorkerProcessInfo[] {
    return (this.starter?.live() ?? []).map((w: WorkerProcess) => w.info);
  }

  private budgetLimits(): { maxPipes: number; maxPipeBytes: number; perWorker: Record<string, number> } {
    const b = this.options.zeroCopyBudget ?? {};
    const perWorker: Record<string, number> = { threads: b.threads ?? 1 };
    if (b.pipeSize !== undefined) perWorker.pipeSize = b.pipeSize;
    if (b.maxPipeSize !== undefined) perWorker.maxPipeSize = b.maxPipeSize;
    return {
      maxPipes: b.maxPipes ?? DEFAULT_ZERO_COPY_BUDGET.maxPipes,
      maxPipeBytes: b.maxPipeBytes ?? DEFAULT_ZERO_COPY_BUDGET.maxPipeBytes,
      perWorker,
    };
  }
}

export function createRedirectCluster(options: RedirectClusterOptions): RedirectCluster {
  return new RedirectCluster(options);
}
