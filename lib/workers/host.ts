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
  /** Per slot, the counters of its worker processes that are gone (as in `server`). */
  readonly retiredPerSlot: readonly { readonly slot: number; readonly server: ServerStats }[];
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
  /** close(): every worker has closed its listener and the primary its sockets: new attempts are refused. */
  unbound: [];
  /** A reload's new generation accepts, and its old one no more (it drains). */
  serving: [generation: number];
  /** A reload is done: its old generation has drained. */
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
  /**
   * What close() waits for: the start, or the last reload until its new generation serves (or
   * it failed). A reload's old generation still draining is drained by close() with the rest.
   */
  private settled: Promise<unknown> = Promise.resolve();

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
    this.settled = this.busy;
    return run;
  }

  /**
   * Starts a new generation on the same sockets (the config module imported anew), then drains
   * the old one. Rejects with ERR_REDIRECT_WORKER_FAILED, the old generation still serving, when
   * a new worker cannot start.
   */
  reload(): Promise<void> {
    let serving = (): void => {};
    const settled = new Promise<void>((resolve) => {
      serving = resolve;
    });
    const run = this.busy.then(async () => {
      if (this.state !== 'running' || this.starter === undefined) {
        throw new RedirectError('ERR_REDIRECT_SERVER_STATE', `reload() called on a cluster that is ${this.state}`);
      }
      await this.starter.reload(this.workers, () => {
        this.emit('serving', this.starter?.generation ?? 0);
        serving();
      });
      this.emit('reloaded', this.starter.generation);
    });
    run.then(serving, serving);
    this.busy = run.catch(() => {});
    this.settled = settled;
    return run;
  }

  /**
   * Every worker stops accepting and drains (timeoutMs, default closeTimeoutMs), a reload's
   * old generation included; the listening sockets close as the drain starts, so new attempts
   * are refused at once (a balancer in front moves them on) rather than queued for nobody.
   * Called again while closing with a timeoutMs: the deadline becomes that from now.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'closing' && options.timeoutMs !== undefined) this.starter?.hasten(options.timeoutMs);
    const run = this.settled.then(async () => {
      if (this.state === 'closed' || this.state === 'closing') return;
      this.state = 'closing';
      const workers = this.starter?.live() ?? [];
      // stopAll has told every worker to drain (they close their copies) before its first await.
      const stopped = this.starter?.stopAll(options.timeoutMs ?? this.options.closeTimeoutMs ?? 30_000);
      this.sockets?.close();
      await Promise.all(workers.map((w) => w.whenUnbound()));
      this.emit('unbound');
      await stopped;
      this.state = 'closed';
    });
    this.busy = run.catch(() => {});
    this.settled = this.busy;
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
      retiredPerSlot: [...(this.starter?.retiredBySlot ?? [])].map(([slot, server]) => ({ slot, server })),
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
