import { type ChildProcess, fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { release } from 'node:os';

/** Clock ticks per second for /proc/<pid>/stat times; 100 on every Linux we run on. */
const CLK_TCK = 100;

/** CPU seconds (user + system, plus reaped children for forking servers like socat) of a process. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
    return ticks / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** The process and its live descendants (socat forks one child per connection). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const task of readdirSync(`/proc/${out[i]}/task`)) {
        const text = readFileSync(`/proc/${out[i]}/task/${task}/children`, 'utf8').trim();
        if (text) out.push(...text.split(' ').map(Number));
      }
    } catch {}
  }
  return out;
}

/** CPU seconds of a process tree: its own, its reaped children's, and its live descendants'. */
export function treeCpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + (cpuSeconds(p) || 0), 0);
}

/**
 * VmRSS of a process plus the proportional set size (Pss) of its live descendants:
 * forked children share most pages with the parent, and VmRSS would count them once per child.
 */
export function treeRssBytes(pid: number): number {
  const own = rssBytes(pid);
  return processTree(pid)
    .slice(1)
    .reduce((sum, p) => sum + (pssBytes(p) || 0), own);
}

function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size in bytes (VmRSS), NaN when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  node: string;
  loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  let load: number[] = [];
  try {
    load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {}
  return {
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    loadAverage: load,
  };
}

/** A forked Node helper spoken to by request/response messages ({ id, ... } → { id, ... }). */
export class Worker {
  readonly child: ChildProcess;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exited = false;

  constructor(file: string, args: string[] = [], execArgv: string[] = []) {
    this.child = fork(file, args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv });
    this.child.on('message', (msg: { id?: number; error?: string }) => {
      const w = msg.id === undefined ? undefined : this.waiting.get(msg.id);
      if (!w || msg.id === undefined) return;
      this.waiting.delete(msg.id);
      if (msg.error) w.reject(new Error(msg.error));
      else w.resolve(msg);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`${file} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  request<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error('worker has exited'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${cmd}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, cmd, ...args });
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(timer);
  }
}

/** Answers a Worker's requests in the child: handlers by command name. */
export function serve(handlers: Record<string, (msg: Record<string, unknown>) => unknown>): void {
  process.on('message', (msg: { id: number; cmd: string } & Record<string, unknown>) => {
    const handler = handlers[msg.cmd];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${msg.cmd}`);
        return handler(msg);
      })
      .then(
        (result) => process.send?.({ ...(result as object), id: msg.id }),
        (err: unknown) => process.send?.({ id: msg.id, error: err instanceof Error ? err.message : String(err) }),
      );
  });
  // Ended by the default SIGTERM action, not process.exit(): exit runs the addon's static
  // destructors, and a splice engine thread still running there aborts the process.
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
