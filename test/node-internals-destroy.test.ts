import { once } from 'node:events';
import type { Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { beforeFdClose } from '../lib/platform/node-internals';
import { dial, listenTcp } from './helpers/net';

// The guard the splice engine relies on (docs/zero-copy.md, "No dups"): hooks run inside
// destroy(), before Node closes the fd, and the socket is left as it was once they are removed.

type Handle = { fd: number; close(...args: unknown[]): unknown };

async function connected(t: ExecutionContext): Promise<Socket> {
  const up = await listenTcp(t, () => {});
  const s = await dial(up.port);
  t.teardown(() => s.destroy());
  return s;
}

/** Records, at the moment Node closes the handle, what `probe` returns. */
function atHandleClose<T>(s: Socket, probe: () => T): { value: T | undefined } {
  const seen: { value: T | undefined } = { value: undefined };
  const handle = (s as unknown as { _handle: Handle })._handle;
  const close = handle.close;
  handle.close = function (this: unknown, ...args: unknown[]) {
    seen.value = probe();
    return close.apply(this, args);
  };
  return seen;
}

test('hooks run inside destroy(), before the handle (and its fd) is closed, once each', async (t) => {
  const s = await connected(t);
  const ran: string[] = [];
  beforeFdClose(s, () => ran.push('a'));
  beforeFdClose(s, () => ran.push('b'));
  const seen = atHandleClose(s, () => [...ran]);
  s.destroy();
  t.deepEqual(seen.value, ['a', 'b']);
  t.deepEqual(ran, ['a', 'b']);
  await once(s, 'close');
  t.deepEqual(ran, ['a', 'b']);
  t.false(Object.hasOwn(s, '_destroy'), 'the guard removed itself');
});

test('removed hooks do not run, and the last removal restores the socket', async (t) => {
  const s = await connected(t);
  const ran: string[] = [];
  const offA = beforeFdClose(s, () => ran.push('a'));
  const offB = beforeFdClose(s, () => ran.push('b'));
  offA();
  t.true(Object.hasOwn(s, '_destroy'));
  offB();
  t.false(Object.hasOwn(s, '_destroy'));
  s.destroy();
  await once(s, 'close');
  t.deepEqual(ran, []);
});

test('resetAndDestroy() runs the hooks first too', async (t) => {
  const s = await connected(t);
  let ran = false;
  beforeFdClose(s, () => {
    ran = true;
  });
  const handle = (s as unknown as { _handle: { reset(...args: unknown[]): unknown } })._handle;
  const reset = handle.reset;
  let ranBeforeReset = false;
  handle.reset = function (this: unknown, ...args: unknown[]) {
    ranBeforeReset = ran;
    return reset.apply(this, args);
  };
  s.resetAndDestroy();
  await once(s, 'close');
  t.true(ranBeforeReset);
});

test('a hook that throws does not keep the socket from closing', async (t) => {
  const s = await connected(t);
  s.on('error', () => {});
  beforeFdClose(s, () => {
    throw new Error('hook failed');
  });
  s.destroy();
  await once(s, 'close');
  t.true(s.destroyed);
  t.is((s as unknown as { _handle: unknown })._handle, null);
});
