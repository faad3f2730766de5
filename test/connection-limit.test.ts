import { connect, type Socket } from 'node:net';
import test from 'ava';
import { DEFAULT_LIMITS, type ServerStats } from '../lib/index';
import { optionalLinux } from '../lib/platform/addon';
import { deriveMaxConnections } from '../lib/server/connection-budget';
import { echoUpstream, startRedirect } from './helpers/net';
import { messagesOf, spawnWithNofile } from './helpers/limited-child';
import { gatedTest } from './helpers/netns';

/**
 * Safe defaults (docs/api.md, limits): an idle timeout of one hour, and a connection limit
 * derived from the open-file limit so that a flood is refused at accept, counted, before the
 * process runs out of descriptors.
 */

const linux = gatedTest(test, process.platform !== 'linux' ? 'Linux only (prlimit, /proc/self/limits)' : undefined);

test('defaults: idle timeout one hour, connection limit derived', (t) => {
  t.is(DEFAULT_LIMITS.idleTimeoutMs, 3_600_000);
  t.is(DEFAULT_LIMITS.maxConnections, 'auto');
});

test('the derived limit counts two descriptors per connection and two per pooled pipe', (t) => {
  // 1024 free after 30 in use and 64 of headroom: 930; pipes get at most half (232 × 2), sockets the rest.
  t.deepEqual(deriveMaxConnections({ nofile: 1024, inUse: 30, zeroCopyPipes: 1024 }), {
    maxConnections: 233,
    zeroCopyPipes: 232,
  });
  // A large limit leaves the engine its whole budget.
  t.deepEqual(deriveMaxConnections({ nofile: 1_048_576, inUse: 30, zeroCopyPipes: 1024 }), {
    maxConnections: (1_048_576 - 30 - 64 - 2048) / 2,
    zeroCopyPipes: 1024,
  });
  t.is(deriveMaxConnections({ nofile: 1024, inUse: 30, zeroCopyPipes: 0 }).maxConnections, 465);
  t.is(deriveMaxConnections({ nofile: undefined, inUse: 30, zeroCopyPipes: 0 }).maxConnections, Infinity);
  t.is(deriveMaxConnections({ nofile: 50, inUse: 30, zeroCopyPipes: 8 }).maxConnections, 1);
});

linux('stats() shows the limit in force: derived, or the option', async (t) => {
  const upstream = await echoUpstream(t);
  const auto = await startRedirect(t, { resolve: { host: '127.0.0.1', port: upstream.port } });
  const derived = auto.server.stats().maxConnections;
  t.true(Number.isInteger(derived) && derived > 0, String(derived));
  const fixed = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: upstream.port },
    limits: { maxConnections: 7 },
  });
  t.is(fixed.server.stats().maxConnections, 7);
});

interface FloodMessage {
  type: string;
  port?: number;
  code?: string;
  message?: string;
  stats?: ServerStats;
  canOpen?: boolean;
}

/** Descriptors of the child: a Node process needs about 25 of its own. */
const NOFILE = 256;
const EXTRA = 40;

linux('a flood under a low RLIMIT_NOFILE is refused at accept with max-connections, never EMFILE', async (t) => {
  const echo = await echoUpstream(t);
  const child = spawnWithNofile(t, NOFILE, 'flood-child.js', [String(echo.port)]);
  const messages = messagesOf<FloodMessage>(child);
  const stats = (): Promise<FloodMessage> => messages.ask('stats', 'stats');
  const port = (await messages.next((m) => m.type === 'listening')).port ?? 0;
  const limit = (await stats()).stats?.maxConnections ?? 0;
  t.true(limit > 10 && limit < NOFILE / 2, `derived limit ${limit} under nofile ${NOFILE}`);

  // The flood: limit + EXTRA clients at once, each sends a byte and waits for its echo.
  const sockets: Socket[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
  });
  const outcomes = await Promise.all(
    Array.from({ length: limit + EXTRA }, () => {
      const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      sockets.push(s);
      s.write('x');
      return new Promise<'echoed' | 'refused'>((resolve) => {
        s.once('data', () => resolve('echoed'));
        s.once('error', () => resolve('refused'));
        s.once('close', () => resolve('refused'));
      });
    }),
  );
  const echoed = outcomes.filter((o) => o === 'echoed').length;
  t.is(echoed, limit, 'exactly the limit is served');
  t.is(outcomes.length - echoed, EXTRA);
  const during = await stats();
  t.is(during.stats?.live.connections, limit);
  t.is(during.stats?.reasons['max-connections'], EXTRA, 'each refusal is counted with its reason');
  t.deepEqual(during.stats?.acceptErrors, {}, 'accept(2) never ran out of descriptors');
  t.true(during.canOpen, 'the process still has descriptors for the rest of its work');
  const zeroCopy = (during as { zeroCopy?: { pipes: number; maxPipes: number } }).zeroCopy;
  if (optionalLinux() !== undefined && zeroCopy) {
    // The splice engine stays within its share: its pipe budget was lowered to fit the descriptors.
    t.true(zeroCopy.pipes <= zeroCopy.maxPipes, JSON.stringify(zeroCopy));
    t.true(zeroCopy.maxPipes < 1024, `maxPipes lowered to ${zeroCopy.maxPipes}`);
  }
  t.false(
    messages.seen.some((m) => m.type === 'error'),
    JSON.stringify(messages.seen.filter((m) => m.type === 'error')),
  );

  // The clients leave; the server serves again.
  for (const s of sockets) s.end();
  for (;;) {
    const s = await stats();
    if (s.stats?.live.connections === 0) break;
  }
  const again = connect({ port, host: '127.0.0.1' });
  sockets.push(again);
  again.write('y');
  const [reply] = (await new Promise((resolve) => again.once('data', (d) => resolve([d])))) as [Buffer];
  t.is(reply.toString(), 'y');
});
