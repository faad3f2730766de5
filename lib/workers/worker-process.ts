import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'eventemitter3';
import { RedirectError } from '../common/errors';
import type { SpliceEngineStats } from '../platform/addon';
import type { ServerStats } from '../server/server-stats';
import type { Endpoint } from '../common/types';
import { type FromWorker, isProtocolMessage, type StartMessage, type ToWorker, type WorkerBudget } from './protocol';

/** What the primary knows of one worker process. */
export interface WorkerProcessInfo {
  readonly slot: number;
  readonly generation: number;
  readonly pid: number | undefined;
}

export interface WorkerStatsReply extends WorkerProcessInfo {
  readonly server: ServerStats;
  readonly zeroCopy: SpliceEngineStats | null;
}

interface WorkerProcessEvents {
  /** Exited; `expected` when it had been told to drain (or was stopped). */
  exit: [code: number | null, signal: NodeJS.Signals | null, expected: boolean];
  closed: [summary: Record<string, unknown>];
}

const WORKER_MAIN = require.resolve('./worker-main');

/** The primary's side of one worker: a forked process with an IPC channel and the requests it answers. */
export class WorkerProcess extends EventEmitter<WorkerProcessEvents> {
  /** Set when it is given a slot: a spare is forked before it has one (-1). */
  slot: number;
  generation: number;
  startedAt = performance.now();
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, (reply: FromWorker | undefined) => void>();
  private nextId = 1;
  private expected = false;
  private exited = false;
  private readonly exitPromise: Promise<void>;
  /** The worker's counters as last heard: a stats() answer, or its final ones when it drained. */
  lastStats: ServerStats | undefined;

  constructor(slot: number, generation: number, execArgv: readonly string[]) {
    super();
    this.slot = slot;
    this.generation = generation;
    this.child = fork(WORKER_MAIN, [], { execArgv: [...execArgv], stdio: 'inherit', serialization: 'json' });
    this.child.on('message', this.onMessage);
    // A failed send to a dying worker: its 'exit' tells the story.
    this.child.on('error', () => {});
    this.exitPromise = new Promise((resolve) => {
      // 'close', not 'exit': it comes after the channel's last message (a drained worker's final stats).
      this.child.once('close', (code, signal) => {
        this.exited = true;
        for (const settle of this.pending.values()) settle(undefined);
        this.pending.clear();
        this.emit('exit', code, signal, this.expected);
        resolve();
      });
    });
  }

  /** Gives a spare (forked ahead, library loaded, no server yet) its slot before start(). */
  assign(slot: number, generation: number): void {
    this.slot = slot;
    this.generation = generation;
    this.startedAt = performance.now();
  }

  get info(): WorkerProcessInfo {
    return { slot: this.slot, generation: this.generation, pid: this.child.pid };
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Sends the start message with the slot's listening handle; resolves once the worker accepts. */
  start(message: Omit<StartMessage, 'rxr' | 'type' | 'slot' | 'generation'>, handle: object): Promise<Endpoint> {
    return new Promise((resolve, reject) => {
      const failed = (why: string): RedirectError =>
        new RedirectError('ERR_REDIRECT_WORKER_FAILED', `worker ${this.slot} (generation ${this.generation}) ${why}`);
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        this.off('exit', onExit);
        reject(failed(`exited before it listened (${signal ?? `code ${code}`})`));
      };
      this.on('exit', onExit);
      this.pending.set(0, (reply) => {
        this.off('exit', onExit);
        if (reply?.type === 'listening') resolve(reply.address);
        else if (reply?.type === 'failed') {
          const err = failed(`could not start: ${reply.error.message}`);
          (err as { workerCode?: string }).workerCode = reply.error.code;
          reject(err);
        } else reject(failed('exited before it listened'));
      });
      const start: StartMessage = { rxr: 1, type: 'start', slot: this.slot, generation: this.generation, ...message };
      // keepOpen: the primary's copy of the socket stays open (it is what keeps the queue alive).
      this.child.send(start, handle as never, { keepOpen: true });
    });
  }

  stats(): Promise<WorkerStatsReply | undefined> {
    return this.request({ rxr: 1, type: 'stats', id: this.nextId++ }).then((reply) => {
      if (reply?.type !== 'stats' || reply.server === null) return undefined;
      this.lastStats = reply.server;
      return { ...this.info, server: reply.server, zeroCopy: reply.zeroCopy };
    });
  }

  /** Limits the worker's splice budget to what it uses now; resolves with that use. */
  freeze(): Promise<{ pipes: number; pipeBytes: number }> {
    return this.request({ rxr: 1, type: 'freeze', id: this.nextId++ }).then((reply) =>
      reply?.type === 'frozen' ? { pipes: reply.pipes, pipeBytes: reply.pipeBytes } : { pipes: 0, pipeBytes: 0 },
    );
  }

  /** The setup hook's onRequest(payload) in this worker; undefined when it exited first. */
  ask(
    payload: unknown,
  ): Promise<{ reply?: unknown; error?: { code: string | undefined; message: string } } | undefined> {
    return this.request({ rxr: 1, type: 'request', id: this.nextId++, payload }).then((r) =>
      r?.type === 'reply' ? { ...(r.error ? { error: r.error } : { reply: r.reply }) } : undefined,
    );
  }

  budget(share: WorkerBudget): void {
    this.post({ rxr: 1, type: 'budget', ...share });
  }

  /** Stops accepting now, drains for timeoutMs, exits; resolves at its exit. */
  drain(timeoutMs: number): Promise<void> {
    this.expected = true;
    this.post({ rxr: 1, type: 'drain', timeoutMs });
    return this.exitPromise;
  }

  /** Ends the process (a worker that failed to start, or one that did not drain in time). */
  kill(signal: NodeJS.Signals = 'SIGKILL', expected = true): Promise<void> {
    if (expected) this.expected = true;
    if (!this.exited) this.child.kill(signal);
    return this.exitPromise;
  }

  private request(message: ToWorker & { id: number }): Promise<FromWorker | undefined> {
    if (this.exited) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.pending.set(message.id, resolve);
      this.post(message);
    });
  }

  private post(message: ToWorker): void {
    if (this.exited || !this.child.connected) return;
    this.child.send(message);
  }

  private readonly onMessage = (message: unknown): void => {
    if (!isProtocolMessage<FromWorker>(message)) return;
    if (message.type === 'closed') {
      this.emit('closed', message.summary);
      return;
    }
    if (message.type === 'drained') {
      this.lastStats = message.server ?? this.lastStats;
      return;
    }
    const key = message.type === 'stats' || message.type === 'frozen' || message.type === 'reply' ? message.id : 0;
    const settle = this.pending.get(key);
    if (settle === undefined) return;
    this.pending.delete(key);
    settle(message);
  };
}
