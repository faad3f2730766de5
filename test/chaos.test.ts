import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import test from 'ava';
import { concatMap } from 'rxjs';
import {
  type CloseSummary,
  configureZeroCopy,
  createRedirectServer,
  type Middleware,
  zeroCopyStats,
} from '../lib/index';
import { MODES, requireEngineUnderCi } from './helpers/modes';

/**
 * About 200 concurrent flows moving a megabyte each way, 20% of clients and
 * 10% of upstreams resetting mid-stream (test/peers/chaos.py, a peer that
 * tells FIN from RST). Every flow that was not reset arrives intact; every
 * reset arrives on the far side as a reset, never as a FIN; every connection
 * gets exactly one summary with the true reason; descriptors return to their
 * baseline and close() resolves.
 */

requireEngineUnderCi();

const PEER = join(__dirname, '..', '..', 'test', 'peers', 'chaos.py');
const FLOWS = 200;
// 1 MiB each way per flow: 400 MiB in all, so the kernel's TCP memory stays far from
// pressure (tcp_mem) while other test files run beside this one.
const BYTES = 1024 * 1024;

interface SideReport {
  end: string | null;
  bytes?: number;
  intact_prefix?: boolean;
  complete?: boolean;
}
interface FlowReport {
  id: number;
  reset: 'client' | 'upstream' | null;
  resetAfter: number;
  client: SideReport;
  upstream: SideReport | null;
}

/** An asynchronous middleware: every chunk waits for a turn of the event loop. */
const asyncHop: Middleware = () => ({
  upstream: concatMap((c: Buffer) => new Promise<Buffer>((resolve) => setImmediate(() => resolve(Buffer.from(c))))),
  downstream: concatMap(async (c: Buffer) => Buffer.from(c)),
});

const CASES = [
  ...MODES.map((mode) => ({ name: mode.name, options: mode.options, middleware: [] as Middleware[] })),
  { name: 'js, async middleware', options: { zeroCopy: 'off' as const }, middleware: [asyncHop] },
];

/**
 * This process's descriptors, the splice engine's pool of free pipes closed first: those belong
 * to the engine (kept up to 1 s for reuse), not to any flow.
 */
function openFds(): number {
  if (zeroCopyStats()) configureZeroCopy({});
  return readdirSync('/proc/self/fd').length;
}

/** One flow through the same configuration first: the splice engine keeps its threads' descriptors. */
async function warmUp(options: (typeof CASES)[number]['options']): Promise<void> {
  const closedSockets: Promise<unknown>[] = [];
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    closedSockets.push(once(s, 'close'));
    s.pipe(s);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const server = createRedirectServer({
    ...options,
    resolve: { host: '127.0.0.1', port: (echo.address() as AddressInfo).port },
  });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const closed = new Promise((resolve) => server.once('closed', resolve));
  client.on('end', () => client.end());
  client.end('warm');
  client.resume();
  await Promise.all([closed, once(client, 'close')]);
  await server.close();
  await new Promise((resolve) => echo.close(resolve));
  await Promise.all(closedSockets);
}

for (const c of CASES)
  test.serial(
    `chaos: ${FLOWS} flows, resets both ways mid-stream: intact, resets stay resets, one true summary each [${c.name}]`,
    async (t) => {
      await warmUp(c.options);
      const baseline = openFds();
      const peer = spawn('python3', [PEER, '--flows', String(FLOWS), '--bytes', String(BYTES), '--seed', '7'], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const lines = createInterface({ input: peer.stdout });
      const next = (): Promise<string> =>
        new Promise((resolve, reject) => {
          lines.once('line', resolve);
          peer.once('exit', (code) => reject(new Error(`chaos peer exited with ${code}`)));
        });
      t.teardown(() => {
        if (peer.exitCode === null) peer.kill();
      });
      const { upstream } = JSON.parse(await next()) as { upstream: number };

      const server = createRedirectServer({
        ...c.options,
        resolve: { host: '127.0.0.1', port: upstream },
        middleware: c.middleware,
        limits: { maxConnections: 1000 },
      });
      const summaries = new Map<number, CloseSummary[]>();
      server.on('closed', (s) => {
        const list = summaries.get(s.id) ?? [];
        list.push(s);
        summaries.set(s.id, list);
      });
      t.teardown(() => server.close({ timeoutMs: 0 }));
      const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
      peer.stdin.write(`${JSON.stringify({ proxy: port })}\n`);
      const { flows } = JSON.parse(await next()) as { flows: FlowReport[] };
      await server.close({ timeoutMs: 10_000 });

      // Exactly one summary per connection, every connection summarised.
      t.is(server.stats().live.connections, 0);
      for (const [id, list] of summaries) t.is(list.length, 1, `connection ${id} has ${list.length} summaries`);
      t.is(summaries.size, server.stats().total.connections);
      t.is(summaries.size, FLOWS);

      const reasons: Record<string, number> = {};
      for (const [, [s]] of summaries) if (s) reasons[s.reason] = (reasons[s.reason] ?? 0) + 1;
      const problems: string[] = [];
      let clientResets = 0;
      let upstreamResets = 0;
      for (const f of flows) {
        const where = `flow ${f.id} (reset: ${f.reset ?? 'none'})`;
        if (f.reset === null) {
          if (f.client.end !== 'fin' || !f.client.complete)
            problems.push(`${where}: client got ${JSON.stringify(f.client)}`);
          if (f.upstream?.end !== 'fin' || !f.upstream.complete)
            problems.push(`${where}: upstream got ${JSON.stringify(f.upstream)}`);
        } else if (f.reset === 'client') {
          clientResets++;
          // The upstream saw a prefix of the client's bytes, then an RST: never a FIN.
          if (f.upstream !== null && (f.upstream.end !== 'rst' || !f.upstream.intact_prefix))
            problems.push(`${where}: upstream got ${JSON.stringify(f.upstream)}`);
        } else {
          upstreamResets++;
          if (f.client.end !== 'rst' || !f.client.intact_prefix)
            problems.push(`${where}: client got ${JSON.stringify(f.client)}`);
        }
      }
      t.deepEqual(problems, []);
      // Every summary's reason matches what happened: one per planned reset, the rest graceful.
      t.is(reasons['client-reset'] ?? 0, clientResets, JSON.stringify(reasons));
      t.is(reasons['upstream-reset'] ?? 0, upstreamResets, JSON.stringify(reasons));
      t.is((reasons['client-end'] ?? 0) + (reasons['upstream-end'] ?? 0), FLOWS - clientResets - upstreamResets);
      t.true(clientResets > 0 && upstreamResets > 0);

      // 'close': the child's pipes are closed too, not only the process gone.
      await new Promise<void>((resolve) =>
        peer.exitCode !== null && peer.stdout.destroyed ? resolve() : peer.once('close', () => resolve()),
      );
      t.is(peer.exitCode, 0);
      // Descriptors: every socket (and every pipe the splice engine held) is closed again.
      t.is(openFds(), baseline);
    },
  );
