import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';

/**
 * Runs test/fixtures/`fixture` in a Node child under `prlimit --nofile=N:N`, with an IPC
 * channel, killed at teardown: the tests of what a server does when it runs out of descriptors.
 */
export function spawnWithNofile(t: ExecutionContext, nofile: number, fixture: string, args: string[]): ChildProcess {
  const child = spawn(
    'prlimit',
    [`--nofile=${nofile}:${nofile}`, process.execPath, join(__dirname, '..', 'fixtures', fixture), ...args],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  return child;
}

/** A child's IPC messages, as a queue the test waits on. */
export function messagesOf<M extends { type: string }>(child: ChildProcess) {
  const seen: M[] = [];
  const waiters: Array<{ match(m: M): boolean; resolve(m: M): void }> = [];
  child.on('message', (m: M) => {
    seen.push(m);
    for (const w of waiters.splice(0)) {
      if (w.match(m)) w.resolve(m);
      else waiters.push(w);
    }
  });
  return {
    seen,
    /** The first message (already seen or still to come) that matches. */
    next(match: (m: M) => boolean): Promise<M> {
      const found = seen.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    /** Sends `request` and waits for the first message of type `type` that comes after it. */
    ask(request: string, type: string): Promise<M> {
      const before = seen.length;
      child.send(request);
      return this.next((m) => m.type === type && seen.indexOf(m) >= before);
    },
  };
}
