import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { map, tap } from 'rxjs';
import { findTool } from '../../lib/tools/doctor';
import { markEgress } from '../../lib/egress/mark';
import { optionalLinux } from '../../lib/platform/addon';
import { autoResolver } from '../../lib/capture/auto';
import { netfilterResolver } from '../../lib/capture/netfilter';
import { tproxyResolver } from '../../lib/capture/tproxy';
import type { Command } from '../../lib/tools/rules';
import { createRedirectServer } from '../../lib/server/server';
import type { Middleware, RedirectRecord } from '../../lib/common/types';

/**
 * Network namespaces for the Linux end-to-end tests. Each test creates its own
 * namespaces (unique names) and deletes them in t.teardown, so rules and
 * TEST-NET addresses never touch the host. Code that must run inside a
 * namespace runs in an agent: this same file started with
 * `ip netns exec <ns> node netns.js`, driven over the IPC channel.
 */

const run = promisify(execFile);

export { gatedTest } from './gate';

let probed: string | null | undefined;

/** Why namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (probed !== undefined) return probed ?? undefined;
  probed = probe() ?? null;
  return probed ?? undefined;
}

function probe(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root for ip netns and iptables';
  for (const [tool, args] of [
    ['ip', ['-V']],
    ['iptables', ['-V']],
    ['ip6tables', ['-V']],
  ] as const) {
    try {
      execFileSync(tool, args, { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (apt-get install iproute2 iptables)`;
    }
  }
  removeStaleNamespaces();
  const name = `rxr-probe-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
  } catch (err) {
    return `ip netns does not work here: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
  return undefined;
}

/**
 * Namespaces left by a test process that died before its teardown (a crash,
 * a killed worker): ours by name, their creator's pid no longer running.
 */
function removeStaleNamespaces(): void {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const match = /^(rxr-[a-z]+-(\d+)-\d+)\b/.exec(line);
    if (!match?.[1] || isRunning(Number(match[2]))) continue;
    execFileSync('ip', ['netns', 'del', match[1]], { stdio: 'ignore' });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let counter = 0;

/** A network namespace that lives until the test's teardown. */
export class Netns {
  private constructor(readonly name: string) {}

  static async create(t: ExecutionContext, label: string): Promise<Netns> {
    const name = `rxr-${label}-${process.pid}-${++counter}`;
    await run('ip', ['netns', 'add', name]);
    // Registered before anything that runs inside, so it runs last (teardowns are LIFO).
    t.teardown(async () => {
      await run('ip', ['netns', 'del', name]).catch(() => {});
    });
    const ns = new Netns(name);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /**
   * Runs argv inside the namespace; rejects with the command and its stderr.
   * The tool is looked up outside node_modules/.bin (npm puts an unrelated `nft` there).
   */
  async exec(...argv: string[]): Promise<string> {
    const [tool = '', ...args] = argv;
    const file = tool.startsWith('/') ? tool : (findTool(tool) ?? tool);
    try {
      const { stdout } = await run('ip', ['netns', 'exec', this.name, file, ...args]);
      return stdout;
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
      throw new Error(`in ${this.name}: ${argv.join(' ')}: ${stderr || String(err)}`);
    }
  }

  ip(...args: string[]): Promise<string> {
    return this.exec('ip', ...args);
  }

  /** Applies generated rule commands in order. */
  async apply(commands: readonly Command[]): Promise<void> {
    for (const command of commands) await this.exec(...command);
  }

  sysctl(key: string, value: string | number): Promise<string> {
    return this.exec('sysctl', '-q', '-w', `${key}=${value}`);
  }

  /**
   * Starts an agent process inside the namespace; killed at teardown. With `uid`
   * it runs as that user (and group), with no capabilities at all.
   */
  async agent(t: ExecutionContext, options: { uid?: number } = {}): Promise<Agent> {
    const user =
      options.uid === undefined
        ? []
        : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups', '--inh-caps=-all'];
    const child = spawn('ip', ['netns', 'exec', this.name, ...user, process.execPath, __filename], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, RXREDIRECT_AGENT: '1' },
    });
    const agent = new Agent(child);
    t.teardown(() => agent.stop());
    await agent.call({ cmd: 'ping' });
    return agent;
  }
}

/**
 * Two namespaces joined by a veth pair, the client routing TEST-NET-3 and
 * 2001:db8:2::/64 through the proxy namespace, where those addresses are local:
 *
 *   client  vc 192.0.2.1, 2001:db8:1::1  <-->  vp 192.0.2.2, 2001:db8:1::2  proxy
 *                                               lo 203.0.113.10, 2001:db8:2::10
 */
export async function routedPair(t: ExecutionContext): Promise<{ client: Netns; proxy: Netns }> {
  const client = await Netns.create(t, 'cli');
  const proxy = await Netns.create(t, 'prx');
  await client.ip('link', 'add', 'vc', 'type', 'veth', 'peer', 'name', 'vp', 'netns', proxy.name);
  await client.ip('addr', 'add', '192.0.2.1/24', 'dev', 'vc');
  await client.ip('addr', 'add', '2001:db8:1::1/64', 'dev', 'vc', 'nodad');
  await client.ip('link', 'set', 'vc', 'up');
  await proxy.ip('addr', 'add', '192.0.2.2/24', 'dev', 'vp');
  await proxy.ip('addr', 'add', '2001:db8:1::2/64', 'dev', 'vp', 'nodad');
  await proxy.ip('link', 'set', 'vp', 'up');
  await client.ip('route', 'add', '203.0.113.0/24', 'via', '192.0.2.2');
  await client.ip('-6', 'route', 'add', '2001:db8:2::/64', 'via', '2001:db8:1::2');
  await proxy.ip('addr', 'add', '203.0.113.10/32', 'dev', 'lo');
  await proxy.ip('addr', 'add', '2001:db8:2::10/128', 'dev', 'lo');
  return { client, proxy };
}

export interface ProxySpec {
  name: string;
  host: string;
  port?: number;
  id?: string;
  resolve: { kind: 'netfilter' | 'tproxy' | 'auto'; options?: Record<string, unknown> };
  egress?: { mark: number; cooperating?: Record<string, number> };
  /**
   * Builds the server from the top-level options instead of resolver and plugin
   * objects: `resolve: kind`, `cooperating`, `egress: { mark }`.
   */
  topLevel?: { cooperating?: Record<string, number>; mark?: number };
  /** 'upper' upper-cases client → server bytes; 'tap' records them. */
  middleware?: Array<'upper' | 'tap'>;
}

export interface ProxyReport {
  records: RedirectRecord[];
  rejected: Array<{ reason: string; code?: string; message?: string }>;
  closed: string[];
  seen: string[];
  accepted: number;
}

export interface ServerReport {
  connections: Array<{ peer: string; local: string; mark: number | undefined }>;
}

export interface ClientResult {
  data: string;
  error?: string;
  local?: { address: string; port: number };
}

export type AgentRequest =
  | { cmd: 'ping' }
  | { cmd: 'server'; host: string; port: number }
  | { cmd: 'proxy'; spec: ProxySpec }
  | { cmd: 'client'; host: string; port: number; send: string; timeoutMs?: number }
  | { cmd: 'report'; name: string }
  | { cmd: 'server-report' }
  | { cmd: 'identity' };

const CALL_TIMEOUT_MS = 20_000;

/** Test-side handle on an agent process. */
export class Agent {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exited = false;

  constructor(private readonly child: ChildProcess) {
    child.on('message', (message: { id: number; ok: boolean; value?: unknown; error?: string }) => {
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.ok) waiter?.resolve(message.value);
      else waiter?.reject(new Error(`agent: ${message.error}`));
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const waiter of this.pending.values()) waiter.reject(new Error(`agent exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  call(request: { cmd: 'proxy'; spec: ProxySpec }): Promise<{ port: number }>;
  call(request: { cmd: 'server'; host: string; port: number }): Promise<{ port: number }>;
  call(request: { cmd: 'client'; host: string; port: number; send: string; timeoutMs?: number }): Promise<ClientResult>;
  call(request: { cmd: 'report'; name: string }): Promise<ProxyReport>;
  call(request: { cmd: 'server-report' }): Promise<ServerReport>;
  call(request: { cmd: 'ping' }): Promise<void>;
  call(request: { cmd: 'identity' }): Promise<{ uid: number; capEff: string }>;
  call(request: AgentRequest): Promise<unknown> {
    if (this.exited) return Promise.reject(new Error('agent is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // A stuck agent fails the call with its name rather than hanging until the test times out.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent: no answer to ${request.cmd} within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      const settle =
        <T>(fn: (v: T) => void) =>
        (v: T): void => {
          clearTimeout(timer);
          fn(v);
        };
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      this.child.send({ id, request });
    });
  }

  stop(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGKILL');
    });
  }
}

// ---------------------------------------------------------------------------
// The agent: runs inside a namespace, serves requests from the test process.

if (require.main === module && process.env.RXREDIRECT_AGENT === '1') runAgent();

function runAgent(): void {
  const handler = createAgentHandler();
  process.on('message', async (message: { id: number; request: AgentRequest }) => {
    try {
      const value = await (await handler)(message.request);
      process.send?.({ id: message.id, ok: true, value });
    } catch (err) {
      process.send?.({ id: message.id, ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

interface ProxyState {
  records: RedirectRecord[];
  rejected: ProxyReport['rejected'];
  closed: string[];
  seen: Map<number, string>;
  server: { stats(): { total: { accepted: number } } };
}

async function createAgentHandler(): Promise<(request: AgentRequest) => Promise<unknown>> {
  const proxies = new Map<string, ProxyState>();
  const serverConnections: ServerReport['connections'] = [];
  const key = (address?: string, port?: number): string =>
    address?.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;

  /** The real server: collects what the client sent, answers once the client has finished. */
  const startServer = async (host: string, port: number): Promise<{ port: number }> => {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      const mark = fd === undefined ? undefined : optionalLinux()?.getMark(fd);
      const local = key(socket.localAddress, socket.localPort);
      serverConnections.push({ peer: key(socket.remoteAddress, socket.remotePort), local, mark });
      let data = '';
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        data += chunk.toString('latin1');
      });
      socket.on('end', () => socket.end(`server ${local} got ${data}`));
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
    return { port: (server.address() as net.AddressInfo).port };
  };

  const startProxy = async (spec: ProxySpec): Promise<{ port: number }> => {
    const state: ProxyState = { records: [], rejected: [], closed: [], seen: new Map(), server: undefined as never };
    const { kind, options } = spec.resolve;
    const resolve =
      kind === 'netfilter'
        ? netfilterResolver(options)
        : kind === 'tproxy'
          ? tproxyResolver(options)
          : autoResolver(options);
    const middleware: Middleware[] = (spec.middleware ?? []).map((name) =>
      name === 'upper'
        ? () => ({ upstream: map((b: Buffer) => Buffer.from(b.toString('latin1').toUpperCase(), 'latin1')) })
        : (ctx) => ({
            upstream: tap((b: Buffer) => state.seen.set(ctx.id, (state.seen.get(ctx.id) ?? '') + b.toString('latin1'))),
          }),
    );
    const top = spec.topLevel;
    const server = createRedirectServer({
      resolve: top ? kind : resolve,
      middleware,
      ...(spec.id ? { id: spec.id } : {}),
      ...(spec.egress ? { egress: { plugins: [markEgress(spec.egress)] } } : {}),
      ...(top?.mark !== undefined ? { egress: { mark: top.mark } } : {}),
      ...(top?.cooperating ? { cooperating: top.cooperating } : {}),
      limits: { connectTimeoutMs: 3000, resolveTimeoutMs: 3000 },
    });
    state.server = server;
    server.on('connection', (conn) => state.records.push(conn.record));
    server.on('rejected', (summary) =>
      state.rejected.push({ reason: summary.reason, code: summary.error?.code, message: summary.error?.message }),
    );
    server.on('closed', (summary) => state.closed.push(summary.reason));
    proxies.set(spec.name, state);
    const address = await server.listen({ host: spec.host, port: spec.port ?? 0 });
    return { port: address.port };
  };

  const client = (host: string, port: number, send: string, timeoutMs = 5000): Promise<ClientResult> =>
    new Promise((resolve) => {
      const socket = net.connect({ host, port, allowHalfOpen: true });
      let data = '';
      let local: ClientResult['local'];
      const timer = setTimeout(() => socket.destroy(new Error('timeout')), timeoutMs);
      socket.on('connect', () => {
        local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
        socket.end(send);
      });
      socket.on('data', (chunk: Buffer) => {
        data += chunk.toString('latin1');
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve({ data, error: err.code ?? err.message, ...(local ? { local } : {}) });
      });
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ data, ...(local ? { local } : {}) });
      });
    });

  return async (request) => {
    switch (request.cmd) {
      case 'ping':
        return undefined;
      case 'server':
        return startServer(request.host, request.port);
      case 'proxy':
        return startProxy(request.spec);
      case 'client':
        return client(request.host, request.port, request.send, request.timeoutMs);
      case 'server-report':
        return { connections: serverConnections };
      case 'identity': {
        const status = readFileSync('/proc/self/status', 'utf8');
        return { uid: process.getuid?.() ?? -1, capEff: /^CapEff:\s*(\S+)/m.exec(status)?.[1] ?? '' };
      }
      case 'report': {
        const state = proxies.get(request.name);
        if (!state) throw new Error(`no proxy "${request.name}"`);
        return {
          records: state.records,
          rejected: state.rejected,
          closed: state.closed,
          seen: [...state.seen.values()],
          accepted: state.server.stats().total.accepted,
        } satisfies ProxyReport;
      }
    }
  };
}
