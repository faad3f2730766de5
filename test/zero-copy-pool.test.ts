import { closeSync, fstatSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { configureZeroCopy, DEFAULT_ZERO_COPY_BUDGET, type RedirectServer, zeroCopyStats } from '../lib/index';
import { zeroCopyTest } from './helpers/modes';
import {
  closedAtLeast,
  dial,
  drain,
  eachTurnUntil,
  echoUpstream,
  listenTcp,
  nextConnection,
  pollUntil,
  readAtLeast,
  sendRandom,
  startRedirect,
} from './helpers/net';

// The splice engine's pipe pool and descriptors (docs/zero-copy.md, "Descriptors
// and the pipe pool"). Own worker, serial: the pool and budget are process-wide,
// and two tests count this process's descriptors.
// zeroCopy 'always' (handoff before the first byte) where a test is about the engine itself; the
// 200 flows run the default 'auto', which hands a direction over once it shows bulk.
const KiB = 1024;
const MiB = 1024 * KiB;
const zcTest = zeroCopyTest;
const available = zeroCopyStats() !== undefined;

test.after.always(() => {
  if (available) configureZeroCopy(DEFAULT_ZERO_COPY_BUDGET);
});

/** This process's socket descriptors (from /proc/self/fd: a dup would count too). */
function socketFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed meanwhile (the directory's own descriptor)
    }
  }
  return n;
}

const stats = () => zeroCopyStats()!;

/** Samples the engine's counters on every turn; `over` lists any sample past the budget. */
function budgetWatch(): { peakPipes: number; peakBytes: number; over: string[]; stop(): void } {
  const w = { peakPipes: 0, peakBytes: 0, over: [] as string[], stop: () => clearInterval(timer) };
  const timer = setInterval(() => {
    const s = stats();
    w.peakPipes = Math.max(w.peakPipes, s.pipes);
    w.peakBytes = Math.max(w.peakBytes, s.pipeBytes);
    if (s.pipes > s.maxPipes || s.pipeBytes > s.maxPipeBytes) w.over.push(`${s.pipes} pipes, ${s.pipeBytes} bytes`);
  }, 1);
  return w;
}

/**
 * A 64 MiB download from a fresh source through a zeroCopy 'always' proxy: the source's socket
 * once it is accepted, the hash of what it sends, the proxy and the client.
 */
async function splicedDownload(t: ExecutionContext) {
  const source: { socket?: Socket; sent: Promise<string> } = { sent: Promise.resolve('') };
  const listener = await listenTcp(t, (s) => {
    source.socket = s;
    source.sent = sendRandom(s, 64 * MiB, 256 * KiB);
  });
  const proxy = await startRedirect(t, { resolve: { host: '127.0.0.1', port: listener.port }, zeroCopy: 'always' });
  return { source, proxy, client: await dial(proxy.port) };
}

/** Directions the engine took over (all of them 'zero-copy', or 'mixed' after a head in JS). */
function handedOff(server: RedirectServer, direction: 'upstream' | 'downstream'): number {
  const paths = server.stats().dataPaths[direction];
  return (paths['zero-copy'] ?? 0) + (paths.mixed ?? 0);
}

zcTest(
  'pipes go back to the pool: none held after a transfer, and ten in a row never open more than two',
  async (t) => {
    configureZeroCopy({}); // starts with an empty pool
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      zeroCopy: 'always',
    });
    const watch = budgetWatch();
    for (let i = 0; i < 10; i++) {
      const c = await dial(port);
      const got = drain(c);
      const sent = await sendRandom(c, 2 * MiB);
      t.is((await got).sha256, sent);
      await closedAtLeast(server, i + 1);
      t.is(stats().relays, 0);
      t.is(stats().pipesInUse, 0, 'every pipe went back');
    }
    watch.stop();
    t.is(handedOff(server, 'upstream'), 10);
    // one connection at a time holds at most two pipes; every later one reused the pool's
    t.true(watch.peakPipes >= 1 && watch.peakPipes <= 2, `peak pipes ${watch.peakPipes}`);
    // The pool keeps the free pipes for the next relay, then closes the ones left unused (the
    // engine's trim, after about a second): wait for it, no bound asserted.
    t.true(stats().pooledPipes >= 1, 'the last relay gave its pipes back to the pool');
    await pollUntil(() => stats().pipes === 0, "the engine's trim to close the free pipes");
    t.is(stats().pipeBytes, 0);
  },
);

zcTest(
  'idle spliced connections hold no pipe and two descriptors each; a stalled one holds a pipe per direction',
  async (t) => {
    t.timeout(60_000);
    configureZeroCopy({});
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      zeroCopy: 'always',
    });
    const sockets0 = socketFds();
    const n = 50;
    const clients: Socket[] = [];
    for (let i = 0; i < n; i++) {
      const c = await dial(port);
      t.teardown(() => c.destroy());
      const echoed = readAtLeast(c, 256 * KiB);
      await sendRandom(c, 256 * KiB, 64 * KiB, false); // bulk, then nothing: idle, not ended
      await echoed;
      clients.push(c);
    }
    await eachTurnUntil(() => stats().relays >= 2 * n && stats().pipesInUse === 0);
    await eachTurnUntil(() => up.sockets.size === n);
    const idle = stats();
    // Socket descriptors per connection: the test's client and the upstream's, and the proxy's
    // two (a dup would add more). Pipes: only the ones relays hold, and idle relays hold none
    // (the pool's free pipes, closed after 1 s, belong to no connection).
    const proxySockets = (socketFds() - sockets0) / n - 2;
    const proxyPerConnection = proxySockets + 2 * idle.pipesInUse;
    t.log(`${proxySockets} proxy sockets per connection; ${idle.pipes} pipes (${idle.pooledPipes} pooled)`);
    t.is(idle.pipesInUse, 0);
    t.is(proxySockets, 2);
    t.is(idle.descriptorsPerConnection.idle, proxyPerConnection);
    t.is(idle.descriptors, 2 * idle.pipes + 2 * idle.threads);

    // One client stops reading and keeps writing: both of its directions back up into their pipes.
    const stalled = clients[0] as Socket;
    stalled.pause();
    const chunk = Buffer.alloc(MiB, 7);
    let writing = true;
    const fill = (): void => {
      while (writing && stalled.write(chunk)) {}
      if (writing) stalled.once('drain', fill);
    };
    fill();
    // The snapshot is the one that saw both pipes: until every buffer on the way is full, the
    // client's queued writes still move, and a pipe that empties for a moment goes back to the pool.
    let busy = stats();
    await eachTurnUntil(() => {
      busy = stats();
      return busy.pipesInUse === 2;
    });
    writing = false;
    // the stalled connection holds a pipe per direction, and still only its two sockets
    t.is(socketFds() - sockets0, 4 * n);
    t.is(busy.descriptorsPerConnection.busy, proxySockets + 2 * busy.pipesInUse);
    t.is(stats().relays, 2 * n);
    for (const c of clients) c.destroy();
    await closedAtLeast(server, n);
  },
);

zcTest('200 concurrent bulk flows are all spliced under the default budget, sha256 intact both ways', async (t) => {
  t.timeout(120_000);
  configureZeroCopy(DEFAULT_ZERO_COPY_BUDGET);
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port } });
  const copied0 = stats().copiedBytes;
  const watch = budgetWatch();
  const flows = 200;
  const head = 256 * KiB;
  const size = 2 * MiB;
  let ready = 0;
  let allReady: () => void = () => {};
  const barrier = new Promise<void>((resolve) => {
    allReady = resolve;
  });
  // Every flow has moved its head both ways before any sends the rest: 200 at once.
  const results = await Promise.all(
    Array.from({ length: flows }, async () => {
      const c = await dial(port);
      const got = drain(c);
      const echoed = readAtLeast(c, head);
      const headHash = sendRandom(c, head, 64 * KiB, false);
      await echoed;
      if (++ready === flows) allReady();
      await barrier;
      await headHash;
      const restHash = await sendRandom(c, size - head);
      const r = await got;
      return { r, headHash: await headHash, restHash };
    }),
  );
  watch.stop();
  const intact = results.filter(({ r }) => r.bytes === size).length;
  t.is(intact, flows);
  await closedAtLeast(server, flows);
  const copied = stats().copiedBytes - copied0;
  t.log(`peak pipes ${watch.peakPipes}, peak pipe bytes ${watch.peakBytes}, copied ${copied}`);
  t.deepEqual(watch.over, []);
  t.is(handedOff(server, 'upstream'), flows);
  t.is(handedOff(server, 'downstream'), flows);
  t.is(server.stats().reasons['client-end'], flows);
  t.is(copied, 0, 'every byte the engine moved went through a pipe');
  t.is(stats().pipesInUse, 0);
});

zcTest('with the only pipe held by a stalled reader, another connection copies and delivers every byte', async (t) => {
  t.timeout(60_000);
  configureZeroCopy({ maxPipes: 1 });
  const watch = budgetWatch();
  // A: a 64 MiB download whose client does not read: its relay keeps the one pipe full.
  const { source: sourceA, client: a } = await splicedDownload(t);
  a.pause();
  const gotA = drain(a);
  await eachTurnUntil(() => (sourceA.socket?.writableLength ?? 0) > 0 && stats().pipesInUse === 1);
  // B: an echo through another proxy; no pipe is to be had, so its relays copy
  const copied0 = stats().copiedBytes;
  const up = await echoUpstream(t);
  const proxyB = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port }, zeroCopy: 'always' });
  const b = await dial(proxyB.port);
  const gotB = drain(b);
  const sentB = await sendRandom(b, 4 * MiB);
  const rb = await gotB;
  t.is(rb.sha256, sentB);
  await closedAtLeast(proxyB.server, 1);
  t.is(handedOff(proxyB.server, 'upstream'), 1);
  t.is(handedOff(proxyB.server, 'downstream'), 1);
  t.is(stats().copiedBytes - copied0, 2 * 4 * MiB, 'both of B’s directions copied all their bytes');
  // A resumes and gets every byte, in order
  a.resume();
  const ra = await gotA;
  t.is(ra.sha256, await sourceA.sent);
  watch.stop();
  t.deepEqual(watch.over, []);
  t.is(watch.peakPipes, 1);
});

zcTest(
  'a socket destroyed under a live relay from outside the core: the engine lets go before Node closes the fd',
  async (t) => {
    t.timeout(60_000);
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      zeroCopy: 'always',
    });
    const dir = mkdtempSync(join(tmpdir(), 'rxr-fd-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const files: number[] = [];
    let reused = 0;
    const rounds = 10;
    for (let i = 0; i < rounds; i++) {
      const opened = nextConnection(server);
      const c = await dial(port);
      const conn = await opened;
      const echoing = readAtLeast(c, 64 * KiB);
      void sendRandom(c, 64 * MiB, 64 * KiB, false).catch(() => {}); // keeps both relays busy
      await echoing;
      await eachTurnUntil(() => stats().relays >= 2);
      // the proxy's client socket, reached past the core, as user code holding it could
      const socket = (conn as unknown as { client: { socket: Socket } }).client.socket;
      const handle = (socket as unknown as { _handle: { fd: number; close(...a: unknown[]): unknown } })._handle;
      const fd = handle.fd;
      let relaysWhenClosed = -1;
      const close = handle.close;
      handle.close = function (this: unknown, ...args: unknown[]) {
        relaysWhenClosed = stats().relays;
        return close.apply(this, args);
      };
      socket.destroy();
      // the number is free now: a file takes the lowest free one
      const file = openSync(join(dir, `f${i}`), 'w+');
      files.push(file);
      if (file === fd) reused++;
      t.is(relaysWhenClosed, 0, 'both relays were stopped before the fd was closed');
      c.on('close', () => {});
      c.destroy();
      await closedAtLeast(server, i + 1);
    }
    // more traffic after all that: none of it may land in a file that took a socket's number
    const c = await dial(port);
    const got = drain(c);
    const sent = await sendRandom(c, 8 * MiB);
    t.is((await got).sha256, sent);
    for (const file of files) {
      t.is(fstatSync(file).size, 0);
      closeSync(file);
    }
    t.log(`${reused} of ${rounds} files took the destroyed socket's number`);
    t.true(reused > 0);
  },
);

zcTest(
  'a budget lowered while a pipe is held applies when it is given back: a grown pipe is closed, not pooled',
  async (t) => {
    t.timeout(60_000);
    configureZeroCopy({});
    const { source, proxy, client } = await splicedDownload(t);
    let got = 0;
    client.on('data', (d: Buffer) => {
      got += d.length;
    });
    const all = drain(client);
    // A bulk download grows its pipe; then the client stops reading and the relay holds it full.
    await eachTurnUntil(() => stats().grownBytes > 0 && got >= 8 * MiB);
    client.pause();
    await eachTurnUntil(() => (source.socket?.writableLength ?? 0) > 0 && stats().pipesInUse >= 1);
    configureZeroCopy({ pipeSize: 64 * KiB, maxPipeSize: 64 * KiB });
    client.resume();
    const result = await all;
    t.is(result.sha256, await source.sent);
    client.end();
    await closedAtLeast(proxy.server, 1);
    await eachTurnUntil(() => stats().pipesInUse === 0);
    const after = stats();
    t.is(after.grownBytes, 0, 'the grown pipe was closed when its relay gave it back');
    t.true(after.pipeBytes <= after.pipes * 64 * KiB, JSON.stringify(after));
  },
);
