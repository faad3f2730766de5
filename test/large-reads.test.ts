import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { bufferCount, concatMap, map } from 'rxjs';
import { both, createRedirectServer, RedirectError, type RedirectServerOptions } from '../lib/index';
import {
  dial,
  drain,
  eachTurnUntil,
  echoUpstream,
  listenTcp,
  nextClose,
  sendRandom,
  startRedirect,
} from './helpers/net';

const MiB = 1024 * 1024;
const NODE_READ = 64 * 1024;

// Large reads (docs/design.md, "Large reads"): a direction reads into our own
// buffers once it shows bulk. These tests count the
// reads a direction took (summary.reads) against the 64 KiB Node reads would need.

/**
 * `bytes` random bytes through a zeroCopy 'off' server to an echo upstream and
 * back: what was sent, what came back, and the flow's close summary.
 */
async function echoThrough(
  t: ExecutionContext,
  options: Omit<RedirectServerOptions, 'resolve'>,
  bytes: number,
  chunk: number,
) {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'off',
    ...options,
  });
  const client = await dial(port);
  const closed = nextClose(server);
  const back = drain(client);
  const sent = await sendRandom(client, bytes, chunk);
  const got = await back;
  return { sent, got, summary: await closed };
}

test('a direction switches to large reads under bulk: fewer, bigger reads, every byte intact both ways', async (t) => {
  const { sent, got, summary } = await echoThrough(t, {}, 64 * MiB, 256 * 1024);
  t.is(got.bytes, 64 * MiB);
  t.is(got.sha256, sent);
  t.is(summary.reason, 'client-end');
  for (const side of ['upstream', 'downstream'] as const) {
    const d = summary[side];
    t.is(d.bytesRead, 64 * MiB);
    t.is(d.bytesWritten, 64 * MiB);
    // With Node's reads at least 1024 would be needed; large reads take far fewer.
    t.true(
      d.reads < (64 * MiB) / NODE_READ / 2,
      `${side}: ${d.reads} reads, mean ${Math.round(d.bytesRead / d.reads)} B`,
    );
    t.log(`${side}: ${d.reads} reads, mean ${Math.round(d.bytesRead / d.reads / 1024)} KiB`);
  }
});

test('limits.maxReadBytes 65536 keeps Node reads: no read above 64 KiB', async (t) => {
  const { sent, got, summary } = await echoThrough(t, { limits: { maxReadBytes: NODE_READ } }, 16 * MiB, 256 * 1024);
  t.is(got.sha256, sent);
  t.true(summary.upstream.reads >= (16 * MiB) / NODE_READ);
  t.true(summary.downstream.reads >= (16 * MiB) / NODE_READ);
});

test('through a synchronous chain too: large reads, every byte intact and in order', async (t) => {
  const middleware = [both(map((c: Buffer) => c))];
  const { sent, got, summary } = await echoThrough(t, { middleware }, 32 * MiB, 32 * MiB);
  t.is(got.sha256, sent);
  for (const side of ['upstream', 'downstream'] as const) {
    const d = summary[side];
    t.is(d.bytesWritten, 32 * MiB);
    t.true(d.reads < ((32 * MiB) / NODE_READ) * 0.75, `${side}: ${d.reads} reads`);
    t.true(d.peakBuffered <= 512 * 1024 + NODE_READ, `${side}: peakBuffered ${d.peakBuffered}`);
  }
});

test('an asynchronous chain that holds chunks by design keeps Node-sized reads, so one read cannot fill the mark before it emits', async (t) => {
  // After an async step, bufferCount(3) holds two chunks until the third: with 64 KiB
  // reads that is far under the mark; one 512 KiB read would be at the mark alone.
  const middleware = [
    both((source) =>
      source.pipe(
        concatMap(async (c: Buffer) => {
          await new Promise((r) => setImmediate(r));
          return c;
        }),
        bufferCount(3),
        map((bufs: Buffer[]) => Buffer.concat(bufs)),
      ),
    ),
  ];
  const { sent, got, summary } = await echoThrough(t, { middleware }, 32 * MiB, 32 * MiB);
  t.is(got.sha256, sent);
  for (const side of ['upstream', 'downstream'] as const) {
    // Mostly Node-sized: a chain still silent at the mark is taken for synchronous
    // for a turn (the silent-chain probe), so a read or two may be larger.
    t.true(summary[side].reads >= ((32 * MiB) / NODE_READ) * 0.75, `${side}: ${summary[side].reads} reads`);
  }
});

// Reads smaller than the mark keep reading while earlier chunks still wait in the sink:
// a region handed out twice would overwrite them.
for (const { HWM, maxReadBytes } of [
  { HWM: 256 * 1024, maxReadBytes: MiB },
  { HWM: 4 * MiB, maxReadBytes: 128 * 1024 },
])
  test(`large reads against a slow reader (highWaterMark ${HWM / 1024} KiB, maxReadBytes ${maxReadBytes / 1024} KiB): held bytes stay within the mark + one Node read, and chunks queued in the sink are never overwritten`, async (t) => {
    // The upstream reads in bursts: 50 ms stopped, 50 ms draining what the kernel has.
    const hash = createHash('sha256');
    let received = 0;
    let upstreamSocket: Socket | undefined;
    let ended: () => void = () => {};
    const upstreamEnded = new Promise<void>((resolve) => {
      ended = resolve;
    });
    const up = await listenTcp(t, (s) => {
      upstreamSocket = s;
      s.on('data', (c: Buffer) => {
        hash.update(c);
        received += c.length;
      });
      s.on('end', () => {
        s.end();
        ended();
      });
    });
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      zeroCopy: 'off',
      limits: { highWaterMark: HWM, maxReadBytes },
    });
    const closed = nextClose(server);
    const client = await dial(port);
    const bursts = setInterval(() => {
      if (upstreamSocket?.isPaused()) upstreamSocket.resume();
      else upstreamSocket?.pause();
    }, 50);
    t.teardown(() => clearInterval(bursts));
    // One random block: no two stream positions alike, so an overwritten chunk cannot go unnoticed.
    const sent = await sendRandom(client, 48 * MiB, 48 * MiB);
    await upstreamEnded;
    t.is(received, 48 * MiB);
    t.is(hash.digest('hex'), sent);
    const d = (await closed).upstream;
    t.true(d.pauses > 0, 'the slow reader made the relay stop reading');
    // A raw direction reuses its slab as a ring: with more held than the slab (4 MiB mark, 256 KiB
    // slab) the ring is often full and reads fall back to 64 KiB, as they should when the sink
    // is what limits the flow; some reads are still large.
    const largeOften = HWM <= 2 * maxReadBytes ? 0.75 : 1;
    t.true(d.reads < ((48 * MiB) / NODE_READ) * largeOften, `${d.reads} reads: large reads were on`);
    t.true(d.peakBuffered <= HWM + NODE_READ, `peakBuffered ${d.peakBuffered} > ${HWM + NODE_READ}`);
    t.log(`pauses ${d.pauses}, reads ${d.reads}, peakBuffered ${Math.round(d.peakBuffered / 1024)} KiB`);
  });

test('limits.maxReadBytes is validated with a coded error', (t) => {
  for (const bad of [1000, 65535, 64 * MiB + 1, 1.5, -1, '1M']) {
    const err = t.throws(() =>
      createRedirectServer({ resolve: { host: '127.0.0.1', port: 1 }, limits: { maxReadBytes: bad as number } }),
    );
    t.true(err instanceof RedirectError);
    t.is((err as RedirectError).code, 'ERR_REDIRECT_INVALID_OPTION');
    t.regex(err?.message ?? '', /maxReadBytes/);
  }
  t.notThrows(() =>
    createRedirectServer({ resolve: { host: '127.0.0.1', port: 1 }, limits: { maxReadBytes: NODE_READ } }),
  );
});

test('after bulk, a quiet direction hands short reads on at their own size, not as views of a 64 KiB buffer', async (t) => {
  // Flow control counts bytes: a view would keep a whole read buffer alive for each few-byte
  // chunk a stalled sink holds. The chain sees each chunk and the buffer under it.
  const chunks: Array<{ length: number; buffer: number }> = [];
  let seen = 0;
  const up = await listenTcp(t, (s) => s.resume());
  const { port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'off',
    middleware: [
      both(
        map((c: Buffer) => {
          chunks.push({ length: c.length, buffer: c.buffer.byteLength });
          seen += c.length;
          return c;
        }),
      ),
    ],
  });
  const client = await dial(port);
  t.teardown(() => client.destroy());
  await sendRandom(client, 8 * MiB, 256 * 1024, false);
  await eachTurnUntil(() => seen === 8 * MiB);
  t.true(
    chunks.some((c) => c.length > NODE_READ),
    'the bulk went through large reads (a chunk above 64 KiB)',
  );
  const bulkChunks = chunks.length;
  for (let i = 0; i < 20; i++) {
    const before = seen;
    client.write(Buffer.alloc(100, i));
    await eachTurnUntil(() => seen === before + 100);
  }
  const quiet = chunks.slice(bulkChunks);
  t.is(quiet.length, 20);
  for (const c of quiet) {
    t.is(c.length, 100);
    t.true(c.buffer <= 16 * 1024, `a 100-byte chunk keeps a ${c.buffer}-byte buffer alive`);
  }
});
