import test from 'ava';
import { bufferCount, concatMap, map, throwError, timer } from 'rxjs';
import { compose, downstream, type Middleware, RedirectError, splits, testMiddleware, upstream } from '../lib/index';

test('runs chains in the server order: upstream in array order, downstream reversed', async (t) => {
  const tag =
    (name: string): Middleware =>
    () => ({
      upstream: map((c: Buffer) => Buffer.concat([c, Buffer.from(name)])),
      downstream: map((c: Buffer) => Buffer.concat([c, Buffer.from(name)])),
    });
  const r = await testMiddleware([tag('1'), tag('2'), compose(tag('3'))], { upstream: ['u'], downstream: ['d'] });
  t.is(r.upstreamBytes.toString(), 'u123');
  t.is(r.downstreamBytes.toString(), 'd321');
  t.is(r.ended, 'complete');
  t.is(r.error, undefined);
  t.true(r.ctx.signal.aborted);
});

test('passes bytes through a direction without middleware and keeps chunks apart', async (t) => {
  const r = await testMiddleware(upstream(map((c: Buffer) => c)), { upstream: ['a', 'b'], downstream: ['x', 'y'] });
  t.deepEqual(
    r.upstream.map((b) => b.toString()),
    ['a', 'b'],
  );
  t.deepEqual(
    r.downstream.map((b) => b.toString()),
    ['x', 'y'],
  );
});

test('waits for asynchronous chains and flushes what they hold at the end', async (t) => {
  const r = await testMiddleware(
    [
      upstream(concatMap((c: Buffer) => timer(5).pipe(map(() => c)))),
      upstream((s) =>
        s.pipe(
          bufferCount(2),
          map((bs: Buffer[]) => Buffer.concat(bs)),
        ),
      ),
    ],
    { upstream: ['a', 'b', 'c'] },
  );
  t.deepEqual(
    r.upstream.map((b) => b.toString()),
    ['ab', 'c'],
  );
  t.is(r.ended, 'complete');
});

test('an error is coded the way the server reports it and stops the other direction', async (t) => {
  const r = await testMiddleware(
    [upstream(concatMap(() => throwError(() => new Error('boom')))), downstream(map((c: Buffer) => c))],
    { upstream: ['a'], downstream: ['x'] },
  );
  t.is(r.ended, 'error');
  t.true(r.error instanceof RedirectError);
  t.is(r.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
  t.regex(r.error?.message ?? '', /boom/);
  t.is(r.downstream.length, 0);
  const coded = await testMiddleware(
    upstream(concatMap(() => throwError(() => new RedirectError('ERR_REDIRECT_DENIED', 'no')))),
    { upstream: ['a'] },
  );
  t.is(coded.error?.code, 'ERR_REDIRECT_DENIED');
});

test('a non-Buffer output, a throwing middleware and a bad return value are errors', async (t) => {
  const r1 = await testMiddleware(upstream(map(() => 'text' as unknown as Buffer)), { upstream: ['a'] });
  t.is(r1.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
  const r2 = await testMiddleware(() => {
    throw new Error('at build');
  });
  t.is(r2.ended, 'error');
  t.regex(r2.error?.message ?? '', /at build/);
  const r3 = await testMiddleware((() => 42) as unknown as Middleware);
  t.is(r3.ended, 'error');
});

test('record, state and context reach the middleware; an open direction reports open', async (t) => {
  let seen: unknown;
  const m: Middleware = (ctx) => {
    seen = { dest: ctx.record.destination.port, id: ctx.id, proxy: ctx.proxyId, pre: ctx.state.get('pre') };
    ctx.state.set('post', 1);
  };
  const r = await testMiddleware(m, {
    record: { destination: { address: '10.0.0.1', port: 443 } },
    state: [['pre', 'x']],
    id: 7,
    proxyId: 'p',
    endUpstream: false,
    upstream: ['a'],
  });
  t.deepEqual(seen, { dest: 443, id: 7, proxy: 'p', pre: 'x' });
  t.is(r.state.get('post'), 1);
  t.is(r.ended, 'open');
  t.is(r.upstreamBytes.toString(), 'a');
});

test('the signal aborts at the end, so middleware timers are cleared', async (t) => {
  let aborted = false;
  const m: Middleware = (ctx) => {
    ctx.signal.addEventListener('abort', () => {
      aborted = true;
    });
    return { downstream: map((c: Buffer) => c) };
  };
  await testMiddleware(m);
  t.true(aborted);
});

test('splits() gives every cut', (t) => {
  t.deepEqual(
    splits('abc').map((p) => p.map((b) => b.toString())),
    [['abc'], ['a', 'bc'], ['ab', 'c']],
  );
  t.is(splits('abcd', 3).length, 1 + 3 + 3);
  t.notThrows(() => downstream(map((c: Buffer) => c)));
});
