import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { findHaproxy } from './helpers/haproxy';
import { collect } from './helpers/net';
import { gatedTest, Netns, netnsUnavailable } from './helpers/netns';
import { type RunnerProcess, startRunner } from './helpers/runner-process';

/**
 * docs/deploy.md: an L4 balancer in front of several rxredirect hosts, PROXY v2 carrying the
 * client. Here HAProxy (its own namespace) balances across two `rxredirect run` hosts (one
 * namespace each), with `send-proxy-v2` and `check-send-proxy` health checks (LOCAL headers);
 * the client has a namespace of its own:
 *
 *   cli 192.0.2.1 ── 192.0.2.2 lb (haproxy :80) 192.0.2.5 ── 192.0.2.6 h1 (rxredirect :15001)
 *                                              192.0.2.9 ── 192.0.2.10 h2 (rxredirect :15001)
 */

const HAPROXY = findHaproxy();
const deploy = gatedTest(
  test.serial,
  netnsUnavailable() ?? (HAPROXY ? undefined : '`haproxy` is not installed (apt-get install haproxy)'),
);

const CONFIG = join(__dirname, 'fixtures', 'deploy.config.js');
const FRONT = '192.0.2.2';
const HOSTS = [
  { id: 'h1', lb: '192.0.2.5', host: '192.0.2.6' },
  { id: 'h2', lb: '192.0.2.9', host: '192.0.2.10' },
] as const;

async function link(a: Netns, aName: string, aAddr: string, b: Netns, bName: string, bAddr: string): Promise<void> {
  await a.ip('link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
  await a.ip('addr', 'add', `${aAddr}/30`, 'dev', aName);
  await b.ip('addr', 'add', `${bAddr}/30`, 'dev', bName);
  await a.ip('link', 'set', aName, 'up');
  await b.ip('link', 'set', bName, 'up');
}

/** `show stat` rows of haproxy's stats socket for backend `be`, server → row. */
async function serverStats(socketPath: string): Promise<Record<string, Record<string, string>>> {
  const s = connect({ path: socketPath });
  s.on('error', () => {});
  s.end('show stat\n');
  const out = (await collect(s)).data?.toString() ?? '';
  const [head, ...rows] = out.trim().split('\n');
  const columns = (head ?? '').replace(/^# /, '').split(',');
  const result: Record<string, Record<string, string>> = {};
  for (const row of rows) {
    const cells = row.split(',');
    if (cells[0] === 'be' && cells[1] !== 'BACKEND') {
      result[cells[1] ?? ''] = Object.fromEntries(columns.map((c, i) => [c, cells[i] ?? '']));
    }
  }
  return result;
}

/**
 * Waits until haproxy's stats satisfy `ok`. They are read again each time haproxy logs something
 * (a health check's result, a server's state change, a connection): listening first, so a line
 * written while the stats are read is not missed.
 */
async function statsUntil(
  haproxy: Haproxy,
  ok: (rows: Record<string, Record<string, string>>) => boolean,
): Promise<Record<string, Record<string, string>>> {
  for (;;) {
    const logged = once(haproxy.child.stderr as NodeJS.ReadableStream, 'data');
    const rows = await serverStats(haproxy.socket).catch(() => ({}));
    if (ok(rows)) return rows;
    await logged;
  }
}

interface Haproxy {
  readonly socket: string;
  readonly child: ChildProcess;
}

async function startHaproxyIn(t: ExecutionContext, ns: Netns, dir: string): Promise<Haproxy> {
  const socket = join(dir, 'stats.sock');
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global
  maxconn 256
  stats socket ${socket} level admin
  log stderr format raw local0

defaults
  mode tcp
  log global
  option tcplog
  timeout connect 2s
  timeout client 20s
  timeout server 20s
  timeout check 2s
  # A connection sent to a host that went away is retried on another.
  retries 2
  option redispatch 1

frontend fe
  bind ${FRONT}:80
  default_backend be

backend be
  balance roundrobin
  # The check goes through rxredirect (a LOCAL header) to the host's service, which greets.
  option tcp-check
  # Every change of a check's result is logged: the test waits on these lines.
  option log-health-checks
  tcp-check expect rstring ^h[12]
${HOSTS.map((h) => `  server ${h.id} ${h.host}:15001 send-proxy-v2 check check-send-proxy inter 200 fall 2 rise 1`).join('\n')}
`,
  );
  const child = spawn('ip', ['netns', 'exec', ns.name, HAPROXY ?? 'haproxy', '-f', cfg, '-db'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  child.once('exit', (code) => {
    if (code !== null && code !== 0) t.log(`haproxy exited ${code}: ${output}`);
  });
  t.teardown(() => {
    if (process.env.DEPLOY_DEBUG) console.log(output);
  });
  return { socket, child };
}

deploy(
  'HAProxy balancing two rxredirect hosts with PROXY v2: real clients, health checks, a host drained',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rxredirect-deploy-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const cli = await Netns.create(t, 'dcli');
    const lb = await Netns.create(t, 'dlb');
    const hosts = await Promise.all(HOSTS.map((h) => Netns.create(t, `d${h.id}`)));
    await link(cli, 'c0', '192.0.2.1', lb, 'l0', FRONT);
    for (const [i, h] of HOSTS.entries()) await link(lb, `l${i + 1}`, h.lb, hosts[i] as Netns, 'h0', h.host);

    const runners: RunnerProcess[] = [];
    for (const [i, h] of HOSTS.entries()) {
      const r = startRunner(t, [CONFIG, '--listen', `${h.host}:15001`, '--close-timeout', '30000'], {
        prefix: ['ip', 'netns', 'exec', (hosts[i] as Netns).name],
        env: { HOST_ID: h.id, ECHO_PORT: '7000', TRUST: `${h.lb}/32` },
      });
      runners.push(r);
      t.teardown(() => {
        if (process.env.DEPLOY_DEBUG) console.log(h.id, JSON.stringify(r.lines), r.stderr());
      });
      await r.line((l) => l.event === 'listening');
    }
    const [h1, h2] = runners as [RunnerProcess, RunnerProcess];
    const haproxy = await startHaproxyIn(t, lb, dir);

    // Health checks (LOCAL headers through rxredirect to each host's service) pass.
    const up = await statsUntil(haproxy, (rows) => rows.h1?.status === 'UP' && rows.h2?.status === 'UP');
    for (const h of HOSTS) t.regex(up[h.id]?.check_status ?? '', /L7OK/, up[h.id]?.check_desc);

    const client = await cli.agent(t);
    const call = (send: string) => client.call({ cmd: 'client', host: FRONT, port: 80, send, timeoutMs: 15_000 });

    // Connections spread across both hosts; each host's record names the real client.
    const first = await Promise.all([call('a'), call('b'), call('c'), call('d')]);
    const served = new Set<string>();
    for (const r of first) {
      t.is(r.error, undefined);
      const host = r.data.split('\n')[0] ?? '';
      served.add(host);
      const runner = host === 'h1' ? h1 : h2;
      const line = await runner.line((l) => l.source === `192.0.2.1:${r.local?.port}`);
      t.is(line.reason, 'client-end');
      t.is(
        line.peer,
        `${HOSTS[host === 'h1' ? 0 : 1].lb}:${String(line.peer).split(':')[1]}`,
        'the socket peer is haproxy',
      );
    }
    t.deepEqual([...served].sort(), ['h1', 'h2']);

    // Connections held open on each host (the service holds a connection that sent 'hold').
    const heldCount = (r: RunnerProcess): number => r.stderr().split('held').length - 1;
    const stderrMoved = (): Promise<unknown> =>
      Promise.race([h1, h2].map((r) => once(r.child.stderr as NodeJS.ReadableStream, 'data')));
    const holds: Promise<void>[] = [];
    const released: string[] = [];
    while (heldCount(h1) === 0 || heldCount(h2) === 0) {
      const before = heldCount(h1) + heldCount(h2);
      holds.push(
        call('hold').then((r) => {
          t.is(r.error, undefined);
          released.push(r.data);
        }),
      );
      while (heldCount(h1) + heldCount(h2) === before) await stderrMoved();
    }

    // Drain h1: its listener closes at once, haproxy's checks fail, new connections go to h2.
    h1.child.kill('SIGTERM');
    await h1.line((l) => l.event === 'drain');
    const after: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await call(`n${i}`);
      t.is(r.error, undefined, `connection ${i} after the drain`);
      after.push(r.data);
    }
    t.true(
      after.every((d) => d.startsWith('h2\n')),
      after.join(' | '),
    );
    await statsUntil(haproxy, (rows) => rows.h1?.status === 'DOWN');

    // The connections h1 held finish intact during its drain (h2's are still held); then h1 exits cleanly.
    t.is((await h1.exited)[0], 0, h1.stderr());
    t.deepEqual(released, Array(heldCount(h1)).fill('h1\nholdreleased'));
    t.true(h1.closes().some((l) => l.reason === 'client-end' && String(l.source).startsWith('192.0.2.1:')));

    h2.child.kill('SIGTERM');
    await Promise.all(holds);
    t.deepEqual(released.slice(heldCount(h1)), Array(heldCount(h2)).fill('h2\nholdreleased'));
    t.is((await h2.exited)[0], 0, h2.stderr());
  },
);
