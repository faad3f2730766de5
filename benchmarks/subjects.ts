import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { RelayConfig } from './relay-child';
import { sleep, Worker } from './proc';

/** What sits between the load generator and the peer. */
export interface SubjectSpec {
  readonly name: string;
  readonly label: string;
  readonly kind: 'direct' | 'plain' | 'rx' | 'haproxy' | 'socat';
  readonly middleware?: string;
  readonly zeroCopy?: boolean;
  readonly splice?: boolean;
  /** rxredirect subjects: another build's dist/lib (`bench --baseline`). */
  readonly lib?: string;
}

export interface RunningSubject {
  readonly spec: SubjectSpec;
  readonly port: number;
  /** The relay's process (undefined for direct). */
  readonly pid: number | undefined;
  /** In-process counters of rxredirect subjects. */
  stats(): Promise<Record<string, unknown>>;
  /** Node relays: a full garbage collection now (the others have no collector). */
  collectGarbage?(): Promise<void>;
  stop(): Promise<void>;
}

export const ALL_SUBJECTS: readonly SubjectSpec[] = [
  { name: 'direct', label: 'direct (no relay)', kind: 'direct' },
  { name: 'plain', label: 'Node pipe() relay', kind: 'plain' },
  { name: 'rx', label: 'rxredirect JS, no middleware', kind: 'rx', middleware: 'none' },
  { name: 'rx-map3', label: 'rxredirect JS, 3× map(x => x)', kind: 'rx', middleware: 'map3' },
  { name: 'rx-zc', label: "rxredirect zeroCopy 'auto'", kind: 'rx', middleware: 'none', zeroCopy: true },
  { name: 'haproxy-splice', label: 'HAProxy, splice on', kind: 'haproxy', splice: true },
  { name: 'haproxy', label: 'HAProxy, splice off', kind: 'haproxy', splice: false },
  { name: 'socat', label: 'socat (fork per connection)', kind: 'socat' },
];

/**
 * Subjects for `rxredirect bench --middleware`: the user's chain against the references,
 * labelled with a short name (`--name`, else the file's name) that fits a chart's label.
 */
export function userSubjects(modulePath: string, name = basename(modulePath)): SubjectSpec[] {
  return [
    { name: 'direct', label: 'direct (no relay)', kind: 'direct' },
    { name: 'plain', label: 'Node pipe() relay', kind: 'plain' },
    { name: 'rx', label: 'rxredirect JS, no middleware', kind: 'rx', middleware: 'none' },
    { name: 'user', label: name, kind: 'rx', middleware: modulePath },
  ];
}

export function which(tool: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function toolVersion(tool: string): string | undefined {
  const args: Record<string, string[]> = { haproxy: ['-v'], socat: ['-V'], iperf3: ['--version'] };
  try {
    const out = execFileSync(tool, args[tool] ?? ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return /\d+\.\d+(\.\d+)?/.exec(out)?.[0];
  } catch {
    return undefined;
  }
}

/** Why a subject cannot run on this machine, or undefined. */
export function missingTool(spec: SubjectSpec): string | undefined {
  if (spec.kind === 'haproxy' && !which('haproxy')) return 'haproxy not installed';
  if (spec.kind === 'socat' && !which('socat')) return 'socat not installed';
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function waitListening(port: number, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} did not listen on ${port}`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** HAProxy with one thread, like the single-threaded Node relays it is compared with. */
export function haproxyConfig(port: number, target: number, splice: boolean): string {
  return [
    'global',
    '  maxconn 7000',
    '  nbthread 1',
    ...(splice ? [] : ['  nosplice']),
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 120s',
    '  timeout server 120s',
    ...(splice ? ['  option splice-request', '  option splice-response'] : []),
    'listen bench',
    `  bind 127.0.0.1:${port}`,
    `  server upstream 127.0.0.1:${target}`,
    '',
  ].join('\n');
}

const noStats = async (): Promise<Record<string, unknown>> => ({});

/** Starts a subject relaying to 127.0.0.1:target; { unavailable } when this build or machine cannot run it. */
export async function startSubject(
  spec: SubjectSpec,
  target: number,
  options: { highWaterMark?: number } = {},
): Promise<RunningSubject | { unavailable: string }> {
  const missing = missingTool(spec);
  if (missing) return { unavailable: missing };
  if (spec.kind === 'direct') {
    return { spec, port: target, pid: undefined, stats: noStats, stop: async () => {} };
  }
  if (spec.kind === 'plain' || spec.kind === 'rx') {
    const config: RelayConfig = {
      kind: spec.kind,
      target: { host: '127.0.0.1', port: target },
      ...(spec.middleware ? { middleware: spec.middleware } : {}),
      ...(spec.zeroCopy ? { zeroCopy: true } : {}),
      ...(spec.lib ? { lib: spec.lib } : {}),
      ...(options.highWaterMark ? { highWaterMark: options.highWaterMark } : {}),
    };
    const worker = new Worker(join(__dirname, 'relay-child.js'), [JSON.stringify(config)], ['--expose-gc']);
    try {
      const started = await worker.request<{ port?: number; unavailable?: string }>('start', {}, 20_000);
      if (started.unavailable || started.port === undefined) {
        await worker.stop();
        return { unavailable: started.unavailable ?? 'did not start' };
      }
      return {
        spec,
        port: started.port,
        pid: worker.pid,
        stats: () => worker.request('stats'),
        collectGarbage: async () => {
          await worker.request('gc');
        },
        stop: () => worker.stop(),
      };
    } catch (err) {
      await worker.stop();
      throw err;
    }
  }
  const port = await freePort();
  let child: ChildProcess;
  let dir: string | undefined;
  if (spec.kind === 'haproxy') {
    dir = mkdtempSync(join(tmpdir(), 'rxredirect-bench-'));
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, haproxyConfig(port, target, spec.splice ?? false));
    child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  } else {
    child = spawn(
      'socat',
      [`TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr,backlog=4096`, `TCP:127.0.0.1:${target}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  }
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-2000);
  });
  const cleanup = async (): Promise<void> => {
    await stopChild(child);
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitListening(port, child, spec.name);
  } catch (err) {
    await cleanup();
    const alert = /\[ALERT\][^\n]*/.exec(stderr)?.[0] ?? stderr.trim().split('\n').pop() ?? '';
    return { unavailable: `${(err as Error).message}${alert ? `: ${alert}` : ''}` };
  }
  return { spec, port, pid: child.pid, stats: noStats, stop: cleanup };
}

/** `bench --baseline DIR`: each rxredirect subject once more, run from another build's dist/lib. */
export function withBaseline(specs: readonly SubjectSpec[], lib: string): SubjectSpec[] {
  const out: SubjectSpec[] = [];
  for (const s of specs) {
    out.push(s);
    if (s.kind === 'rx') out.push({ ...s, name: `${s.name}-base`, label: `${s.label} (baseline)`, lib });
  }
  return out;
}
