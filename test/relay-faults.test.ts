import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { tap } from 'rxjs';
import { type CloseSummary, upstream } from '../lib/index';
import { MODES, requireEngineUnderCi } from './helpers/modes';
import { nextClose, nextConnection, startRedirect } from './helpers/net';
import { PyPeer } from './helpers/py-peer';

/**
 * Faults where a proxy is tempted to lie: each peer here is test/peers/tcp-peer.py,
 * which tells a FIN from an RST (a Node socket reports an RST behind unread data
 * as a clean 'end').
 */

requireEngineUnderCi();

for (const mode of MODES)
  test(`a client's RST behind unread bytes reaches the upstream as an RST, not a FIN [${mode.name}]`, async (t) => {
    const peer = PyPeer.start(t);
    const upPort = await peer.listen([{ op: 'read' }]);
    // The record waits until the client has sent and reset: its bytes and its RST
    // sit unread in the proxy's socket, the case where libuv reports EOF.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let accepted!: () => void;
    const acceptedFlow = new Promise<void>((resolve) => {
      accepted = resolve;
    });
    const { server, port } = await startRedirect(t, {
      ...mode.options,
      resolve: () => {
        accepted();
        return gate.then(() => ({ destination: { address: '127.0.0.1', port: upPort } }));
      },
    });
    const closed = nextClose(server);
    await peer.connect('c', port);
    // Less than one of Node's 64 KiB reads: the read that takes it is partial, then the hang-up.
    await peer.send('c', 50_000, 1);
    // The proxy has accepted the flow (a client that resets before its accept is never dialled on).
    await acceptedFlow;
    await peer.reset('c');
    release();
    const seen = await peer.ended(await peer.accepted());
    t.is(seen.how, 'rst', `the upstream saw ${seen.how} after ${seen.bytes} bytes`);
    const summary = await closed;
    t.is(summary.reason, 'client-reset');
    t.is(summary.error?.code, 'ERR_REDIRECT_CLIENT_RESET');
  });

test('a reset right after a FIN was queued ends the flow with one summary and RSTs both ways', async (t) => {
  const peer = PyPeer.start(t);
  const upPort = await peer.listen([{ op: 'read' }]);
  let destroyNow!: () => void;
  const { server, port } = await startRedirect(t, {
    zeroCopy: 'off',
    resolve: { host: '127.0.0.1', port: upPort },
    // The chain's completion is the client's FIN; the pump calls end() on the upstream
    // right after it, in the same tick. A microtask runs after that end(), before
    // libuv has performed the shutdown it queued: the window where libuv's own
    // reset fails with EINVAL.
    middleware: [upstream(tap({ complete: () => queueMicrotask(() => destroyNow()) }))],
  });
  const opened = nextConnection(server);
  await peer.connect('c', port);
  const conn = await opened;
  const closed = new Promise<CloseSummary>((resolve) => conn.once('close', resolve));
  destroyNow = () => conn.destroy();
  await peer.read('c');
  await peer.send('c', 10_000, 2);
  await peer.shutdown('c');
  const summary = await closed;
  t.is(summary.reason, 'destroyed');
  t.is(server.stats().live.connections, 0);
  t.is((await peer.ended('c')).how, 'rst');
  t.is((await peer.ended(await peer.accepted())).how, 'rst');
  await server.close();
});

test('an upstream that accepts, sends and resets before our loop sees the connect is an upstream-reset', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rxr-reset-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const marker = join(dir, 'reset-sent');
  const peer = PyPeer.start(t);
  const upPort = await peer.listen([{ op: 'send', bytes: 65536 }, { op: 'reset' }, { op: 'touch', path: marker }]);
  const { server, port } = await startRedirect(t, { zeroCopy: 'off', resolve: { host: '127.0.0.1', port: upPort } });
  // Keep our event loop busy from just after connect(2) until the upstream has reset:
  // libuv then finishes the connect by reading SO_ERROR, which holds the reset.
  server.once('connection', () =>
    setImmediate(() => {
      const until = Date.now() + 30_000;
      while (!existsSync(marker) && Date.now() < until) {
        // busy on purpose
      }
    }),
  );
  const closed = nextClose(server);
  await peer.connect('c', port);
  await peer.read('c');
  const summary = await closed;
  t.true(existsSync(marker));
  t.is(summary.reason, 'upstream-reset', summary.error?.message);
  t.is(summary.error?.code, 'ERR_REDIRECT_UPSTREAM_RESET');
  t.is((await peer.ended('c')).how, 'rst');
});
