import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * The process's open-file limit (the soft RLIMIT_NOFILE) and how many descriptors it holds now.
 * Node raises the soft limit to the hard one at start, so the figure read after start is the
 * one in force. Linux reads /proc/self (no child process); other POSIX systems ask a shell's
 * `ulimit -n`, which inherits the limit. undefined where there is no such limit (Windows) or
 * it cannot be read.
 */
export function openFileLimit(): number | undefined {
  if (process.platform === 'win32') return undefined;
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft !== undefined) return soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
  } catch {
    // not Linux: ask the shell
  }
  try {
    const text = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 5_000 }).trim();
    return text === 'unlimited' ? Number.POSITIVE_INFINITY : Number(text) || undefined;
  } catch {
    return undefined;
  }
}

/** Descriptors this process holds now (Linux); undefined elsewhere. */
export function openFileCount(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}
