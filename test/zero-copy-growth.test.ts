import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { findTool } from '../lib/tools/doctor';
import {
  type CloseSummary,
  configureZeroCopy,
  DEFAULT_ZERO_COPY_BUDGET,
  type RedirectServer,
  type SpliceEngineStats,
  zeroCopyStats,
} from '../lib/index';
import { gatedTest } from './helpers/gate';
import { engineUnavailable, zeroCopyTest } from './helpers/modes';
import { closedAtLeast, dial, drain, echoUpstream, listenTcp, nextClose, sha256, startRedirect } from './helpers/net';

// Adaptive pipe growth in the splice engine. Own worker: the budget and the
// engine's counters are process-wide, so every test here is serial.
const MiB = 1024 * 1024;
const KiB = 1024;
const available = zeroCopyStats() !== undefined;
const zcTest = zeroCopyTest;

test.after.always(() => {
  if (available) configureZeroCopy(DEFAULT_ZERO_COPY_BUDGET);
});

/** Highest engine counters seen by every sample() call. */
class Peaks {
  pipeBytes = 0;
  grownBytes = 0;
  sample = (): void => {
    const s = zeroCopyStats();
    if (s === undefined) return;
    this.pipeBytes = Math.max(this.pipeBytes, s.pipeBytes);
    this.grownBytes = Math.max(this.grownBytes, s.grownBytes);
  };
}

/**
 * The engine has no relay left: the engine forgets a relay before it reports
 * its end, so once every flow of the test has its summary none may remain.
 */
async function engineIdle(...servers: RedirectServer[]): Promise<boolean> {
  for (const server of servers) await closedAtLeast(server, server.stats().total.accepted);
  return zeroCopyStats()?.relays === 0;
}

/** The engine's counters once the pool's free pipes are closed (configureZeroCopy does that). */
function afterPoolClosed(): SpliceEngineStats {
  configureZeroCopy({});
  return zeroCopyStats()!;
}

/**
 * Writes `size` random bytes honouring backpressure, each chunk numbered so
 * reordering or duplication shows in the hash; the last chunk waits for `gate`
 * (until then the source cannot reach EOF, so its relay stays alive). Ends the
 * socket and returns the sha256.
 */
async function sendGated(socket: Socket, size: number, gate: Promise<void>, chunk: number): Promise<string> {
  const hash = createHash('sha256');
  const block = randomBytes(chunk);
  let sent = 0;
  for (let i = 0; sent < size; i++) {
    const n = Math.min(block.length, size - sent);
    if (sent + n === size) await gate;
    const piece = Buffer.from(block.subarray(0, n));
    piece.writeUInt32BE(i, 0);
    hash.update(piece);
    sent += n;
    if (!socket.write(piece)) await once(socket, 'drain');
  }
  socket.end();
  return hash.digest('hex');
}

interface Download {
  server: RedirectServer;
  client: Socket;
  /** sha256 of what the upstream sent. */
  sent: Promise<string>;
  got: Promise<{ bytes: number; sha256: string }>;
}

/**
 * A download through a zeroCopy 'auto' proxy: the upstream sends `size`
 * random bytes in `chunk`-sized writes (the last one after `gate`) and ends. The client is returned
 * paused; every chunk it reads samples the engine's counters.
 */
async function download(
  t: ExecutionContext,
  size: number,
  peaks: Peaks,
  gate = Promise.resolve(),
  chunk = 256 * KiB,
): Promise<Download> {
  let resolveSent: (hash: Promise<string>) => void = () => {};
  const sent = new Promise<string>((resolve) => {
    resolveSent = resolve;
  });
  const up = await listenTcp(t, (s) => resolveSent(sendGated(s, size, gate, chunk)));
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  const client = await dial(port);
  client.pause();
  client.on('data', peaks.sample); // added while paused: does not start the flow
  const got = drain(client);
  return { server, client, sent, got };
}

/** Resolves once `bytes` have come back on the socket (or it closed). */
function echoed(socket: Socket, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    let n = 0;
    const onData = (d: Buffer): void => {
      n += d.length;
      if (n >= bytes) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve());
  });
}

/**
 * Paused for a while, then reads one chunk at a time with pauses (slow), then
 * flows (fast). The pauses are the subject, not synchronisation: a slow reader
 * is what makes bytes back up into the pipe so that it grows. A loaded machine
 * only makes them longer, which backs up more.
 */
async function slowThenFast(client: Socket, peaks: Peaks): Promise<void> {
  await sleep(100);
  peaks.sample();
  for (let i = 0; i < 20 && !client.readableEnded; i++) {
    await new Promise<void>((resolve) => {
      const step = (): void => {
        client.off('data', step);
        client.off('end', step);
        client.pause();
        resolve();
      };
      client.on('data', step);
      client.on('end', step);
      client.resume();
    });
    await sleep(5);
  }
  client.resume();
}

zcTest('a bulk transfer grows the spliced pipe up to maxPipeSize, within budget, bytes intact', async (t) => {
  t.timeout(60_000);
  configureZeroCopy(DEFAULT_ZERO_COPY_BUDGET);
  const before = zeroCopyStats()!;
  const peaks = new Peaks();
  const size = 64 * MiB;
  const { server, client, sent, got } = await download(t, size, peaks);
  const closed = nextClose(server);
  await slowThenFast(client, peaks);
  const r = await got;
  client.end();
  t.is(r.bytes, size);
  t.is(r.sha256, await sent);
  const s = await closed;
  t.is(s.downstream.path, 'zero-copy');
  t.is(s.downstream.zeroCopyBytes, size);
  t.true(await engineIdle(server));
  const after = zeroCopyStats()!;
  t.log(
    `peaks: pipeBytes ${peaks.pipeBytes}, grownBytes ${peaks.grownBytes}; growths ${after.growths - before.growths}`,
  );
  // growth was seen while bytes moved, and doubled the pipe at least once
  t.true(peaks.grownBytes > 0, `peak grown bytes ${peaks.grownBytes}`);
  t.true(after.growths > before.growths);
  t.true(peaks.pipeBytes > 2 * before.pipeSize, `peak pipe bytes ${peaks.pipeBytes}`);
  // only the busy direction grew, and never past maxPipeSize
  t.true(peaks.grownBytes <= before.maxPipeSize - before.pipeSize, `peak grown bytes ${peaks.grownBytes}`);
  t.true(peaks.pipeBytes <= before.maxPipeSize + before.pipeSize, `peak pipe bytes ${peaks.pipeBytes}`);
  // every pipe went back to the pool, and closing the pool gave back exactly what was
  // accounted, growth included
  t.is(after.pipesInUse, 0);
  const drained = afterPoolClosed();
  t.is(drained.pipes, 0);
  t.is(drained.pipeBytes, 0);
  t.is(drained.grownBytes, 0);
});

for (const maxPipeSize of [64 * KiB, 256 * KiB])
  zcTest(`growth stops at maxPipeSize (${maxPipeSize / KiB} KiB; pipeSize 64 KiB)`, async (t) => {
    t.timeout(60_000);
    configureZeroCopy({ pipeSize: 64 * KiB, maxPipeSize });
    const before = zeroCopyStats()!;
    const peaks = new Peaks();
    const size = 32 * MiB;
    const { server, client, sent, got } = await download(t, size, peaks);
    await slowThenFast(client, peaks);
    const r = await got;
    client.end();
    t.is(r.sha256, await sent);
    t.true(await engineIdle(server));
    t.log(`peak grownBytes ${peaks.grownBytes}`);
    if (maxPipeSize === before.pipeSize) {
      t.is(peaks.grownBytes, 0, 'maxPipeSize = pipeSize turns growth off');
      t.is(zeroCopyStats()?.growths, before.growths);
    } else {
      t.true(peaks.grownBytes > 0);
      t.true(peaks.grownBytes <= maxPipeSize - before.pipeSize, `peak grown bytes ${peaks.grownBytes}`);
    }
    configureZeroCopy(DEFAULT_ZERO_COPY_BUDGET);
  });

/** fs.pipe-max-size: the cap on F_SETPIPE_SZ for a process without CAP_SYS_RESOURCE. */
function readPipeMax(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** Whether this process holds CAP_SYS_RESOURCE (root does), which lifts the cap. */
function hasSysResource(): boolean {
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  const CAP_SYS_RESOURCE = 24n;
  return ((BigInt(`0x${capEff}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
}

const run = promisify(execFile);
/** setpriv arguments that leave CAP_SYS_RESOURCE out of the child's reach entirely. */
const SETPRIV_DROP = ['--inh-caps=-sys_resource', '--bounding-set=-sys_resource'];
const pipeMax = process.platform === 'linux' ? readPipeMax() : undefined;
/** The download runs in a child without CAP_SYS_RESOURCE: setpriv drops it where this process has it. */
const childPrefix = process.platform === 'linux' && hasSysResource() ? ['setpriv', ...SETPRIV_DROP] : [];
const pipeMaxUnavailable =
  engineUnavailable() ??
  (pipeMax === undefined || pipeMax < 128 * KiB || pipeMax >= 1 << 30
    ? `fs.pipe-max-size (${pipeMax}) is not readable or not within 128 KiB–1 GiB`
    : childPrefix.length > 0 && !findTool('setpriv')
      ? 'setpriv (util-linux) is needed to drop CAP_SYS_RESOURCE'
      : undefined);

gatedTest(test.serial, pipeMaxUnavailable)(
  'maxPipeSize above fs.pipe-max-size: growth stops at the kernel limit; a refusal is asked once and not accounted',
  async (t) => {
    t.timeout(60_000);
    const max = pipeMax ?? 0;
    // a client reading from the start and big writes: the pipe reaches the kernel's limit and
    // then usually (not always) asks once more, which is refused
    const argv = [
      ...childPrefix,
      process.execPath,
      join(__dirname, 'fixtures', 'pipe-max-child.js'),
      JSON.stringify({ maxPipeSize: Math.min(4 * max, 1 << 30), size: 64 * MiB }),
    ];
    const { stdout } = await run(argv[0] ?? '', argv.slice(1), { timeout: 50_000 });
    const r = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      bytes: number;
      got: string;
      sent: string;
      peakGrownBytes: number;
      before: SpliceEngineStats;
      after: SpliceEngineStats;
    };
    t.is(r.bytes, 64 * MiB);
    t.is(r.got, r.sent);
    t.is(r.after.relays, 0);
    const refused = r.after.growthFailures - r.before.growthFailures;
    t.log(`peak grownBytes ${r.peakGrownBytes}, refusals ${refused}, fs.pipe-max-size ${max}`);
    t.true(r.peakGrownBytes > 0);
    // the pipe stopped at the kernel's limit; only real growth was accounted
    t.true(r.peakGrownBytes <= max - r.before.pipeSize, `peak grown bytes ${r.peakGrownBytes}`);
    // only one relay moved bytes: after one refusal it stops asking
    t.true(refused <= 1, `refusals ${refused}`);
    t.is(r.after.pipeBytes, 0);
    t.is(r.after.grownBytes, 0);
  },
);

zcTest(
  'with a small maxPipeBytes, growth stays within its half of the budget and new connections still get base pipes',
  async (t) => {
    t.timeout(60_000);
    const maxPipeBytes = MiB;
    configureZeroCopy({ ...DEFAULT_ZERO_COPY_BUDGET, maxPipeBytes });
    const budget = zeroCopyStats()!;
    t.is(budget.maxPipeBytes, maxPipeBytes);
    const peaks = new Peaks();
    const watcher = setInterval(peaks.sample, 1);
    t.teardown(() => clearInterval(watcher));
    // Two downloads whose pipes both want to grow to 1 MiB: unchecked, they
    // could take 640 KiB of growth together; growth may take 512 KiB. Their
    // last chunk waits, so both relays stay alive with whatever they grew.
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const size = 48 * MiB;
    const a = await download(t, size, peaks, gate);
    const b = await download(t, size, peaks, gate);
    const readAtLeast = async (d: Download, bytes: number): Promise<void> => {
      let n = 0;
      await new Promise<void>((resolve) => {
        const onData = (c: Buffer): void => {
          n += c.length;
          if (n >= bytes) {
            d.client.off('data', onData);
            resolve();
          }
        };
        d.client.on('data', onData);
      });
    };
    await sleep(100); // the subject: a paused reader lets bytes pile up on the way (longer only piles up more)
    const moved = Promise.all([readAtLeast(a, 16 * MiB), readAtLeast(b, 16 * MiB)]);
    a.client.resume();
    b.client.resume();
    await moved;
    peaks.sample();
    const mid = zeroCopyStats()!;
    t.log(`mid-transfer: pipeBytes ${mid.pipeBytes}, grownBytes ${mid.grownBytes}`);
    t.is(mid.relays, 4, 'both downloads are still spliced');
    t.true(mid.grownBytes > 0, `grown bytes mid-transfer ${mid.grownBytes}`);

    // New connections while the grown pipes are held: half the budget (8 base
    // pipes) is never spent on growth; the two downloads hold 4 base pipes.
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      zeroCopy: 'always',
    });
    const summaries: CloseSummary[] = [];
    server.on('closed', (summary) => summaries.push(summary));
    const newcomers = [0, 1].map(async (i) => {
      const c = await dial(port);
      const got = drain(c);
      const data = randomBytes(256 * KiB + i * 4099);
      const head = 16 * KiB;
      c.write(data.subarray(0, head));
      await echoed(c, head);
      return { c, got, data };
    });
    // both are set up (and hold their pipes) before either ends
    const open = await Promise.all(newcomers);
    for (const { c, data } of open) c.end(data.subarray(16 * KiB));
    for (const { got, data } of open) t.is((await got).sha256, sha256(data));
    await closedAtLeast(server, 2);
    t.is(summaries.length, 2);
    for (const summary of summaries) {
      t.is(summary.upstream.path, 'zero-copy');
      t.is(summary.downstream.path, 'zero-copy');
    }

    release();
    const [ra, rb] = await Promise.all([a.got, b.got]);
    a.client.end();
    b.client.end();
    t.is(ra.sha256, await a.sent);
    t.is(rb.sha256, await b.sent);
    t.true(await engineIdle(a.server, b.server, server));
    clearInterval(watcher);
    peaks.sample();
    t.true(peaks.pipeBytes <= maxPipeBytes, `peak pipe bytes ${peaks.pipeBytes}`);
    t.true(peaks.grownBytes <= maxPipeBytes / 2, `peak grown bytes ${peaks.grownBytes}`);
    t.is(zeroCopyStats()?.pipesInUse, 0);
    t.is(afterPoolClosed().pipeBytes, 0);
    t.is(zeroCopyStats()?.grownBytes, 0);
    configureZeroCopy(DEFAULT_ZERO_COPY_BUDGET);
  },
);
