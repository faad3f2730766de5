import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ExecutionContext } from 'ava';

/** How a read stream ended, as a peer that tells FIN from RST saw it. */
export interface PeerEnd {
  readonly how: 'fin' | 'rst' | 'closed';
  readonly bytes: number;
  readonly sha256: string;
}

export type PeerAction =
  | { op: 'send'; bytes: number; seed?: number }
  | { op: 'reset' }
  | { op: 'shutdown' }
  | { op: 'read' }
  | { op: 'touch'; path: string };

const SCRIPT = join(__dirname, '..', '..', '..', 'test', 'peers', 'tcp-peer.py');

/**
 * A python3 TCP peer (test/peers/tcp-peer.py) for tests that must tell a FIN
 * from an RST: a Node socket reports an RST behind unread data as 'end'.
 * Sockets start paused; `read(name)` starts reading and `ended(name)` says how
 * the stream ended. Killed at teardown.
 */
export class PyPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve(v: Record<string, unknown>): void; reject(e: Error): void }>();
  private readonly ends = new Map<string, PeerEnd>();
  private readonly endWaiters = new Map<string, { resolve(end: PeerEnd): void; reject(e: Error): void }>();
  private readonly acceptWaiters: Array<{ resolve(name: string): void; reject(e: Error): void }> = [];
  private readonly acceptedNames: string[] = [];
  /** Set once the peer process is gone: every later wait fails with it instead of hanging. */
  private exited: Error | undefined;

  private constructor(t: ExecutionContext) {
    this.child = spawn('python3', [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    this.child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    this.child.on('exit', (code) => {
      // stderr may still be arriving: 'close' comes after both the exit and the end of the pipes.
      this.child.once('close', () => {
        const err = new Error(`tcp-peer exited (${code}): ${stderr}`);
        this.exited = err;
        for (const w of this.waiting.values()) w.reject(err);
        this.waiting.clear();
        for (const w of this.acceptWaiters.splice(0)) w.reject(err);
        for (const w of this.endWaiters.values()) w.reject(err);
        this.endWaiters.clear();
      });
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => this.onLine(line));
    t.teardown(() => {
      if (this.child.exitCode === null) this.child.kill();
    });
  }

  static start(t: ExecutionContext): PyPeer {
    return new PyPeer(t);
  }

  private onLine(line: string): void {
    const msg = JSON.parse(line) as Record<string, unknown>;
    if (msg.event === 'ended') {
      const end = { how: msg.how, bytes: msg.bytes, sha256: msg.sha256 } as PeerEnd;
      const name = String(msg.name);
      this.ends.set(name, end);
      this.endWaiters.get(name)?.resolve(end);
    } else if (msg.event === 'accepted') {
      const name = String(msg.name);
      const waiter = this.acceptWaiters.shift();
      if (waiter) waiter.resolve(name);
      else this.acceptedNames.push(name);
    } else if (typeof msg.id === 'number') {
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      if (typeof msg.error === 'string') w?.reject(new Error(`tcp-peer: ${msg.error}`));
      else w?.resolve(msg);
    }
  }

  private command(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.reject(this.exited);
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  /** Listens on 127.0.0.1:0; every accepted socket runs `onAccept` by itself. */
  async listen(onAccept: PeerAction[] = []): Promise<number> {
    const reply = await this.command({ op: 'listen', on_accept: onAccept });
    return reply.port as number;
  }

  /** Stops the peer process (SIGSTOP): what arrives meanwhile waits in the kernel, as for a slow peer. */
  freeze(): void {
    this.child.kill('SIGSTOP');
  }

  thaw(): void {
    this.child.kill('SIGCONT');
  }

  /** Ends the peer process now; pending and later waits on it fail. */
  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** The name of the next accepted socket ('a1', 'a2', …). */
  accepted(): Promise<string> {
    const ready = this.acceptedNames.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => this.acceptWaiters.push({ resolve, reject }));
  }

  async connect(name: string, port: number): Promise<void> {
    await this.command({ op: 'connect', name, port });
  }

  async send(name: string, bytes: number, seed = 0): Promise<void> {
    await this.command({ op: 'send', name, bytes, seed });
  }

  async shutdown(name: string): Promise<void> {
    await this.command({ op: 'shutdown', name });
  }

  async reset(name: string): Promise<void> {
    await this.command({ op: 'reset', name });
  }

  async read(name: string): Promise<void> {
    await this.command({ op: 'read', name });
  }

  /** How `name`'s read stream ended (call read(name) first). */
  ended(name: string): Promise<PeerEnd> {
    const end = this.ends.get(name);
    if (end) return Promise.resolve(end);
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => this.endWaiters.set(name, { resolve, reject }));
  }
}
