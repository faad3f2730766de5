import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import test from 'ava';
import type { ServerStats } from '../lib/index';
import { optionalLinux } from '../lib/platform/addon';
import { collect, dial, drain, echoUpstream, nextClose, startRedirect } from './helpers/net';
import { messagesOf, spawnWithNofile } from './helpers/limited-child';
import { gatedTest } from './helpers/netns';

/**
 * Failures at accept(2). Out of descriptors, Node's own accept loop (libuv)
 * takes the pending connections and closes them silently; with the addon the
 * server accepts itself and reports each one. And a flow that fails before it
 * has a record still names its client.
 */

const linuxAddon = gatedTest(
  test,
  process.platform !== 'linux'
    ? 'Linux only'
    : optionalLinux() === undefined
      ? 'needs the native addon (npm run build:native)'
      : undefined,
);

/** Descriptors the child may have: a Node process needs about 25 of its own. */
const LIMIT = 64;

interface ChildMessage {
  type: string;
  port?: number;
  address?: string;
  code?: string;
  syscallCode?: string;
  message?: string;
  reason?: string;
  peer?: { address: string; port: number };
  stats?: ServerStats;
}

linuxAddon(
  'out of descriptors: each failed accept is counted, reported and reset; the server serves again once they are freed',
  async (t) => {
    const echo = await echoUpstream(t);
    const child = spawnWithNofile(t, LIMIT, 'accept-child.js', [String(echo.port)]);
    const messages = messagesOf<ChildMessage>(child);
    const port = (await messages.next((m) => m.type === 'listening')).port ?? 0;
    const stats = async (): Promise<ServerStats> => (await messages.ask('stats', 'stats')).stats as ServerStats;

    // One client at a time, each held by the server, until one is turned away. Each comes from
    // its own loopback address, which names it even if it is reset before its 'connect'.
    const sockets: Socket[] = [];
    t.teardown(() => {
      for (const s of sockets) s.destroy();
    });
    const held: string[] = [];
    let dropped: { message: ChildMessage; address: string; outcome: ReturnType<typeof drain> } | undefined;
    while (dropped === undefined) {
      t.true(held.length < LIMIT, 'the server kept accepting past its descriptor limit');
      const address = `127.0.0.${held.length + 2}`;
      const socket = connect({ port, host: '127.0.0.1', localAddress: address, allowHalfOpen: true });
      sockets.push(socket);
      const outcome = drain(socket);
      const about = (x: ChildMessage): boolean =>
        (x.type === 'held' && x.address === address) || (x.type === 'closed' && x.peer?.address === address);
      let m = await Promise.race([messages.next(about), outcome.then(() => undefined)]);
      if (m === undefined) {
        // The client was turned away first. The child sent any report of it before it answers
        // this (IPC keeps order); none means the connection was dropped silently.
        await stats();
        m = messages.seen.find(about);
        if (m === undefined) return t.fail(`the connection from ${address} was closed with no report at all`);
      }
      if (m.type === 'held') held.push(address);
      else dropped = { message: m, address, outcome };
    }
    t.true(held.length > 10, `${held.length} flows were held before the limit`);

    // The flow's summary: reason, code, errno and the client it came from.
    t.like(dropped.message, {
      reason: 'accept-failed',
      code: 'ERR_REDIRECT_ACCEPT_FAILED',
      syscallCode: 'EMFILE',
      peer: { address: dropped.address },
    });
    t.true((dropped.message.peer?.port ?? 0) > 0);
    // The listener's 'error' event, with what to do about it.
    const error = await messages.next((m) => m.type === 'error');
    t.is(error.code, 'ERR_REDIRECT_ACCEPT_FAILED');
    t.is(error.syscallCode, 'EMFILE');
    t.regex(
      error.message ?? '',
      new RegExp(`the connection from ${dropped.address.replaceAll('.', '\\.')}:\\d+ was reset`),
    );
    t.regex(error.message ?? '', /ulimit -n/);
    // The client learns at once: a reset, not a queue that never moves.
    t.is((await dropped.outcome).error?.code, 'ECONNRESET');
    const full = await stats();
    t.true((full.acceptErrors.EMFILE ?? 0) >= 1, JSON.stringify(full.acceptErrors));
    t.is(full.reasons['accept-failed'], 1);
    t.is(full.errors['accept-failed'], 1);
    t.is(full.total.accepted, held.length, 'a dropped connection was never accepted');
    t.is(full.live.connections, held.length);

    // Free the descriptors: the held flows end, and a new client is served end to end.
    child.send('release');
    for (const address of held) {
      await messages.next((m) => m.type === 'closed' && m.peer?.address === address && m.reason === 'resolve-failed');
    }
    t.is((await stats()).live.connections, 0);
    const socket = await dial(port);
    sockets.push(socket);
    const got = collect(socket);
    socket.end('served again');
    t.is((await got).data?.toString(), 'served again');
  },
);

linuxAddon('a client that resets before its accept is handled keeps its address in record and summary', async (t) => {
  const echo = await echoUpstream(t);
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: echo.port } });
  const closed = nextClose(server);
  // python3 connects and resets while this process is blocked in execFileSync, so the
  // RST is in before the accept: the socket's peer name is gone (getpeername: ENOTCONN).
  const clientPort = execFileSync('python3', [
    '-c',
    `import socket, struct
s = socket.create_connection(("127.0.0.1", ${port}))
print(s.getsockname()[1], flush=True)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()`,
  ])
    .toString()
    .trim();
  const summary = await closed;
  t.deepEqual(summary.peer, { address: '127.0.0.1', port: Number(clientPort), family: 'IPv4' });
  t.deepEqual(summary.record?.source, summary.peer, 'not 0.0.0.0:0');
});

test('a flow whose resolver fails has no record, and its summary still names the client', async (t) => {
  const { server, port } = await startRedirect(t, {
    resolve: () => {
      throw new Error('no record for you');
    },
  });
  const closed = nextClose(server);
  // python3: the reset can come before a Node client's 'connect', and then its port is unknown.
  const client = spawn('python3', [
    '-c',
    `import socket
s = socket.create_connection(("127.0.0.1", ${port}))
print(s.getsockname()[1], flush=True)
try:
    s.recv(1)
except OSError:
    pass`,
  ]);
  t.teardown(() => client.kill());
  const [line] = (await once(client.stdout, 'data')) as [Buffer];
  const summary = await closed;
  t.is(summary.reason, 'resolve-failed');
  t.is(summary.record, undefined);
  t.deepEqual(summary.peer, { address: '127.0.0.1', port: Number(line.toString().trim()), family: 'IPv4' });
});
