import type { ServerStats } from '../server/server-stats';
import type { WorkerBudget } from './protocol';
import type { ListeningSockets } from './sockets';
import { sumStats } from './stats-sum';
import { WorkerProcess, type WorkerProcessInfo } from './worker-process';

/** What the generations need from the cluster's options. */
interface StarterOptions {
  readonly module: string;
  readonly setup?: string | undefined;
  readonly summaries?: boolean | undefined;
  readonly execArgv?: readonly string[] | undefined;
  readonly listen: { readonly backlog?: number | undefined };
  readonly closeTimeoutMs?: number | undefined;
  readonly spare?: boolean | undefined;
}

interface Budget {
  readonly maxPipes: number;
  readonly maxPipeBytes: number;
  /** Fields every worker gets as they are (threads, pipeSize, maxPipeSize). */
  readonly perWorker: Readonly<Record<string, number>>;
}

/** How the starter reports to the cluster (its events). */
interface StarterEvents {
  emit(event: 'worker-listening', info: WorkerProcessInfo): boolean;
  emit(
    event: 'worker-exit',
    info: WorkerProcessInfo & { expected: boolean },
    code: number | null,
    signal: NodeJS.Signals | null,
  ): boolean;
  emit(event: 'closed', summary: Record<string, unknown>, info: WorkerProcessInfo): boolean;
  emit(event: 'error', err: Error): boolean;
}

/** A worker that crashes again within this long of its start is restarted after a growing delay. */
const STABLE_MS = 10_000;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;
/** After a drain's timeout the worker has this long to reset its rest and exit before it is killed. */
const EXIT_GRACE_MS = 5_000;

/**
 * The generations of workers: which process serves which slot, restarts after
 * a crash, the reload hand-over and the split of the splice budget
 * (docs/workers.md, "Lifecycle" and "Zero-copy budget").
 */
export class WorkerStarter {
  generation = 0;
  private readonly options: StarterOptions;
  private readonly sockets: ListeningSockets;
  private readonly budget: Budget;
  private readonly events: StarterEvents;
  /** The serving generation, by slot. */
  private current = new Map<number, WorkerProcess>();
  private readonly draining = new Set<WorkerProcess>();
  /** The last restart delay of each slot (absent: no early failure since the last stable run). */
  private readonly backoff = new Map<number, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** The budget share each serving worker has now. */
  private share: WorkerBudget;
  private stopping = false;
  /**
   * A process forked ahead with the library loaded and no slot: a crashed worker's slot gets it,
   * so its queue waits for a config import and a listen, not for a Node start.
   */
  private spare: WorkerProcess | undefined;
  /**
   * The counters of workers that are gone (final for a drained one, last heard for a crashed
   * one), live figures zeroed: added to the live workers' so totals do not drop at a reload.
   */
  retired: ServerStats | undefined;
  /** The same, per slot (for per-worker series that never go back, e.g. the metrics). */
  readonly retiredBySlot = new Map<number, ServerStats>();

  constructor(options: StarterOptions, sockets: ListeningSockets, budget: Budget, events: StarterEvents) {
    this.options = options;
    this.sockets = sockets;
    this.budget = budget;
    this.events = events;
    this.share = { maxPipes: budget.maxPipes, maxPipeBytes: budget.maxPipeBytes };
  }

  /** Every process still running: the serving generation and those draining. */
  live(): WorkerProcess[] {
    return [...this.current.values(), ...this.draining].filter((w) => w.alive);
  }

  /**
   * Generation 1 (or, from reload(), the next): resolves once all n listen, with the workers it
   * took over from (read at that moment, so a worker restarted meanwhile is among them); on a
   * failure all n are stopped.
   */
  async startGeneration(n: number, share: WorkerBudget = this.divide(this.budget, n)): Promise<WorkerProcess[]> {
    while (this.sockets.count < n) this.sockets.grow();
    const generation = this.generation + 1;
    const started = Array.from({ length: n }, (_, slot) => new WorkerProcess(slot, generation, this.execArgv()));
    const results = await Promise.allSettled(started.map((w) => this.launch(w, share)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((w) => w.kill()));
      throw failed.reason;
    }
    const previous = [...this.current.values()];
    this.generation = generation;
    this.current = new Map(started.map((w) => [w.slot, w]));
    this.share = share;
    for (const w of started) this.watch(w);
    // A new generation may be new library code too (an upgrade): the spare is forked anew.
    this.dropSpare();
    this.makeSpare();
    return previous;
  }

  /**
   * New generation in, then the old one drains (`serving()` once the old workers accept no
   * more); the budget stays within the global one throughout.
   */
  async reload(n: number, serving: () => void = () => {}): Promise<void> {
    const old = [...this.current.values()];
    const inUse = await Promise.all(old.map((w) => w.freeze()));
    const used = inUse.reduce((a, u) => ({ pipes: a.pipes + u.pipes, pipeBytes: a.pipeBytes + u.pipeBytes }), {
      pipes: 0,
      pipeBytes: 0,
    });
    const rest = {
      maxPipes: Math.max(0, this.budget.maxPipes - used.pipes),
      maxPipeBytes: Math.max(0, this.budget.maxPipeBytes - used.pipeBytes),
    };
    let previous: WorkerProcess[];
    try {
      previous = await this.startGeneration(n, this.divide(rest, n));
    } catch (err) {
      // The old generation keeps serving, with its share back.
      for (const w of this.current.values()) w.budget(this.share);
      throw err;
    }
    const drained = this.drainAll(previous, this.options.closeTimeoutMs ?? 30_000);
    // Only the new generation accepts once every old worker has closed its listener.
    await Promise.all(previous.map((w) => w.whenUnbound()));
    serving();
    await drained;
    this.share = this.divide(this.budget, n);
    for (const w of this.current.values()) w.budget(this.share);
  }

  /** close(): no more restarts; every worker drains. */
  async stopAll(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.dropSpare();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const all = [...this.current.values()];
    this.current.clear();
    await this.drainAll([...all, ...this.draining], timeoutMs);
  }

  /** A second close(): every live worker's drain deadline becomes timeoutMs from now. */
  hasten(timeoutMs: number): void {
    for (const w of this.live()) void w.drain(timeoutMs);
  }

  private async drainAll(workers: WorkerProcess[], timeoutMs: number): Promise<void> {
    await Promise.all(
      workers.map(async (w) => {
        this.draining.add(w);
        const killer = setTimeout(() => void w.kill(), timeoutMs + EXIT_GRACE_MS);
        await w.drain(timeoutMs);
        clearTimeout(killer);
        this.draining.delete(w);
      }),
    );
  }

  private launch(w: WorkerProcess, share: WorkerBudget): Promise<void> {
    w.on('closed', (summary) => this.events.emit('closed', summary, w.info));
    w.once('exit', () => {
      if (w.lastStats === undefined) return;
      const gone = countersOf(w.lastStats);
      this.retired = sumStats(this.retired ? [this.retired, gone] : [gone]);
      const slot = this.retiredBySlot.get(w.slot);
      this.retiredBySlot.set(w.slot, sumStats(slot ? [slot, gone] : [gone]) ?? gone);
    });
    return w
      .start(
        {
          module: this.options.module,
          setup: this.options.setup,
          summaries: this.options.summaries === true,
          backlog: this.options.listen.backlog,
          budget: { ...this.budget.perWorker, ...share },
        },
        this.sockets.handle(w.slot),
      )
      .then(() => {
        this.events.emit('worker-listening', w.info);
      });
  }

  /** A serving worker's exit: reported; unasked, its slot gets a new worker. */
  private watch(w: WorkerProcess): void {
    w.once('exit', (code, signal, expected) => {
      this.events.emit('worker-exit', { ...w.info, expected }, code, signal);
      if (expected || this.stopping || this.current.get(w.slot) !== w) return;
      // A worker that ran a while is replaced at once; one that keeps failing soon after its
      // start (a broken config, a crash at startup) is retried with a growing delay.
      // Delays of consecutive early failures: 0, 100 ms, 200 ms, … 5 s.
      const stable = performance.now() - w.startedAt >= STABLE_MS;
      const previous = stable ? undefined : this.backoff.get(w.slot);
      const delay =
        previous === undefined ? 0 : previous === 0 ? FIRST_BACKOFF_MS : Math.min(MAX_BACKOFF_MS, previous * 2);
      this.backoff.set(w.slot, delay);
      this.restart(w.slot, w.generation, delay);
    });
  }

  private restart(slot: number, generation: number, delayMs: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      // A reload or close since then owns the slot.
      if (this.stopping || generation !== this.generation) return;
      const next = this.spare ?? new WorkerProcess(slot, generation, this.execArgv());
      this.spare = undefined;
      next.assign(slot, generation);
      this.current.set(slot, next);
      this.watch(next);
      this.launch(next, this.share)
        .then(() => this.makeSpare())
        .catch((err: Error) => {
          this.events.emit('error', err);
          // Its exit (watch) schedules the next attempt: killed as a failure, not as asked.
          void next.kill('SIGKILL', false);
        });
    }, delayMs);
    this.timers.add(timer);
  }

  private makeSpare(): void {
    if (this.options.spare === false || this.stopping || this.spare !== undefined) return;
    const spare = new WorkerProcess(-1, 0, this.execArgv());
    this.spare = spare;
    // One that dies idle is not replaced until the next restart has used the slot it left.
    spare.once('exit', () => {
      if (this.spare === spare) this.spare = undefined;
    });
  }

  private dropSpare(): void {
    const spare = this.spare;
    this.spare = undefined;
    void spare?.kill();
  }

  private divide(budget: { maxPipes: number; maxPipeBytes: number }, n: number): WorkerBudget {
    return { maxPipes: Math.floor(budget.maxPipes / n), maxPipeBytes: Math.floor(budget.maxPipeBytes / n) };
  }

  private execArgv(): readonly string[] {
    return this.options.execArgv ?? [];
  }
}

/**
 * What a worker that is gone leaves in the totals: its counters. Its gauges (live flows, its
 * connection limit, its slab pool's state) went with it, or the cluster's would grow each reload.
 */
function countersOf(stats: ServerStats): ServerStats {
  const { largeReads } = stats;
  return {
    ...stats,
    live: { connections: 0, bytesUpstream: 0, bytesDownstream: 0 },
    maxConnections: 0,
    largeReads: { ...largeReads, maxBytes: 0, leasedBytes: 0, slabs: 0, pooledBytes: 0 },
  };
}
