import test from 'ava';
import { type CloseSummary, splits, testMiddleware } from '../lib/index';
import { type TapChunk, type TapEnd, tap, timeouts } from '../middleware/index';
import { collect, dial, echoUpstream, startRedirect } from './helpers/net';
import { throwsCode } from './helpers/expect';

test('tap sees sizes, offsets and ends without changing bytes', async (t) => {
  for (const pieces of splits('hello world', 2)) {
    const chunks: TapChunk[] = [];
    const ends: TapEnd[] = [];
    const r = await testMiddleware(tap({ onChunk: (c) => chunks.push(c), onEnd: (e) => ends.push(e) }), {
      upstream: pieces,
      downstream: ['ok'],
    });
    t.is(r.upstreamBytes.toString(), 'hello world');
    t.deepEqual(
      chunks.filter((c) => c.direction === 'upstream').map((c) => [c.offset, c.size]),
      pieces.reduce<number[][]>((acc, p) => {
        const last = acc.at(-1);
        acc.push([last ? last[0]! + last[1]! : 0, p.length]);
        return acc;
      }, []),
    );
    const up = ends.find((e) => e.direction === 'upstream');
    t.is(up?.how, 'complete');
    t.is(up?.bytes, 11);
    t.is(up?.chunks, pieces.length);
    t.is(ends.find((e) => e.direction === 'downstream')?.bytes, 2);
  }
});

test('tap reports "stopped" when the connection ends first, and a throwing callback is an error', async (t) => {
  const ends: TapEnd[] = [];
  await testMiddleware(tap({ onEnd: (e) => ends.push(e), direction: 'upstream' }), {
    upstream: ['a'],
    endUpstream: false,
  });
  t.deepEqual(
    ends.map((e) => e.how),
    ['stopped'],
  );
  const r = await testMiddleware(
    tap({
      onChunk: () => {
        throw new Error('bad tap');
      },
    }),
    { upstream: ['a'] },
  );
  t.is(r.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
  throwsCode(t, () => tap({ onChunk: 5 as never }), 'ERR_REDIRECT_INVALID_OPTION');
});

test('timeouts: idle ends the connection with a coded error; activity keeps it alive', async (t) => {
  const idle = await testMiddleware(timeouts({ idleMs: 30 }), { upstream: ['a'], endUpstream: false, timeoutMs: 2000 });
  t.is(idle.ended, 'error');
  t.is(idle.error?.code, 'ERR_REDIRECT_IDLE_TIMEOUT');
  const busy = await testMiddleware(timeouts({ idleMs: 250 }), {
    upstream: ['a', 'b', 'c', 'd', 'e'],
    gapMs: 20,
  });
  t.is(busy.ended, 'complete');
  t.is(busy.upstreamBytes.toString(), 'abcde');
});

test('timeouts: maxDurationMs ends even a busy connection', async (t) => {
  const r = await testMiddleware(timeouts({ maxDurationMs: 50 }), {
    upstream: ['a', 'b', 'c', 'd', 'e', 'f'],
    gapMs: 20,
  });
  t.is(r.ended, 'error');
  t.is(r.error?.code, 'ERR_REDIRECT_MAX_DURATION');
  t.true(r.upstreamBytes.length < 6);
  throwsCode(t, () => timeouts({}), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => timeouts({ idleMs: -1 }), 'ERR_REDIRECT_INVALID_OPTION');
});

test('real sockets: tap counts the bytes and timeouts resets an idle connection', async (t) => {
  const up = await echoUpstream(t);
  const ends: TapEnd[] = [];
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [tap({ onEnd: (e) => ends.push(e) }), timeouts({ idleMs: 80 })],
  });
  const closed = new Promise<CloseSummary>((r) => server.once('closed', r));
  const client = await dial(port);
  const got = collect(client);
  client.write('ping');
  const result = await got;
  const summary = await closed;
  t.is(result.data?.toString(), 'ping');
  t.is(summary.reason, 'middleware-error');
  t.is(summary.error?.code, 'ERR_REDIRECT_IDLE_TIMEOUT');
  t.is(ends.find((e) => e.direction === 'upstream')?.bytes, 4);
});
