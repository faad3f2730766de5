import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';

/** The haproxy binary, or undefined when it is not installed. */
export function findHaproxy(): string | undefined {
  for (const bin of ['haproxy', '/usr/sbin/haproxy', '/usr/local/sbin/haproxy']) {
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    if (r.status === 0 && /HAProxy version/.test(r.stdout)) return bin;
  }
  return undefined;
}

/** A loopback port that was free a moment ago (haproxy needs the number up front). */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Runs `haproxy -f <cfg> -db` in the foreground with `config` written to a temp dir,
 * waits until every port in `ports` accepts, and kills it (and removes the dir) at teardown.
 */
export async function startHaproxy(
  t: ExecutionContext,
  bin: string,
  config: string,
  ports: readonly number[],
): Promise<ChildProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'rxredirect-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, config);
  const child = spawn(bin, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
  });
  t.teardown(async () => {
    if (exited === undefined) {
      child.kill('SIGTERM');
      await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 2000))]);
      if (exited === undefined) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 10_000;
  for (const port of ports) {
    while (!(await reachable(port))) {
      if (exited !== undefined) throw new Error(`haproxy exited (${exited}) before listening:\n${output}`);
      if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${port} within 10 s:\n${output}`);
      // haproxy is another process with no readiness signal we can wait on: try again shortly.
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  t.log(`haproxy pid ${child.pid} on ${ports.join(', ')}`);
  return child;
}

/** A tcp-mode config skeleton with short timeouts. */
export function haproxyConfig(body: string): string {
  return `global
  maxconn 256

defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s

${body}
`;
}
