import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';

/** `rxredirect run` as a child process, its JSON line log parsed (docs/runner.md, "The log"). */

const BIN = join(__dirname, '..', '..', '..', 'bin', 'rxredirect.js');

export interface LogLine {
  event?: string;
  [key: string]: unknown;
}

export interface RunnerProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  readonly exited: Promise<[number | null, string | null]>;
  stderr(): string;
  /** The first line (seen or to come) that matches. */
  line(match: (l: LogLine) => boolean): Promise<LogLine>;
  /** The close lines so far. */
  closes(): LogLine[];
}

/** Starts `rxredirect run ARGS`; `prefix` runs it under another command (e.g. ip netns exec NS). */
export function startRunner(
  t: ExecutionContext,
  args: readonly string[],
  options: { prefix?: readonly string[]; env?: NodeJS.ProcessEnv } = {},
): RunnerProcess {
  const argv = [...(options.prefix ?? []), process.execPath, BIN, 'run', ...args];
  const child = spawn(argv[0] ?? '', argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  const lines: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let stderr = '';
  let rest = '';
  const check = (): void => {
    for (const w of [...waiters]) {
      const found = lines.find(w.match);
      if (found) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(found);
      }
    }
  };
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  child.stdout?.on('data', (c: Buffer) => {
    rest += c.toString();
    const parts = rest.split('\n');
    rest = parts.pop() ?? '';
    for (const text of parts) lines.push(JSON.parse(text) as LogLine);
    check();
  });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    lines,
    exited,
    stderr: () => stderr,
    line(match) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    closes: () => lines.filter((l) => l.event === 'close'),
  };
}
