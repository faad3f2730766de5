import { type ChildProcess, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import test from 'ava';
import type { CloseSummary, ServerStats } from '../lib/index';
import { dial, listenTcp, sendRandom } from './helpers/net';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB;
const HWM = 256 * 1024;

interface Report {
  rss: number;
  stats: ServerStats;
  summaries: CloseSummary[];
}

function ask(child: ChildProcess): Promise<Report> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if (m && typeof m === 'object' && 'rss' in m) {
        child.off('message', onMessage);
        resolve(m as Report);
      }
    };
    child.on('message', onMessage);
    child.send('stats');
  });
}

for (const chain of ['none', 'map', 'async'] as const) {
  test(`flow control (${chain} chain): a fast sender into a slow reader keeps the proxy's memory bounded`, async (t) => {
    t.timeout(120_000);
    // The upstream reads in bursts: 10 ms on, 15 ms off, so it drains far slower than loopback can send.
    let received = 0;
    const hash = createHash('sha256');
    let done!: () => void;
    const finished = new Promise<void>((r) => {
      done = r;
    });
    const up = await listenTcp(t, (s) => {
      s.on('data', (c: Buffer) => {
        received += c.length;
        hash.update(c);
      });
      // The subject: a reader slower than the sender (a loaded machine only makes it slower).
      const timer = setInterval(() => {
        s.pause();
        setTimeout(() => s.resume(), 15);
      }, 25);
      s.on('end', () => {
        clearInterval(timer);
        s.end();
        done();
      });
    });
    const child = fork(join(__dirname, 'fixtures', 'proxy-child.js'), [
      JSON.stringify({ upstreamPort: up.port, highWaterMark: HWM, chain }),
    ]);
    t.teardown(() => child.kill());
    const [hello] = (await once(child, 'message')) as [{ port: number }];
    const before = await ask(child);

    const client = await dial(hello.port);
    let peakRss = before.rss;
    const sampler = setInterval(async () => {
      const r = await ask(child);
      peakRss = Math.max(peakRss, r.rss);
    }, 100);
    const sent = await sendRandom(client, TOTAL, 256 * 1024);
    await finished;
    clearInterval(sampler);
    // The summary follows the upstream's end: ask again after each answer (no fixed delay).
    let after = await ask(child);
    while (after.summaries.length === 0) after = await ask(child);
    client.destroy();
    peakRss = Math.max(peakRss, after.rss);

    t.is(received, TOTAL);
    t.is(hash.digest('hex'), sent);
    const summary = after.summaries[0];
    const growth = peakRss - before.rss;
    t.log(
      `rss before ${(before.rss / MiB).toFixed(1)} MiB, peak ${(peakRss / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB; ` +
        `peakBuffered ${summary?.upstream.peakBuffered} B, pauses ${summary?.upstream.pauses}`,
    );
    // The reader is slower than the sender, so reading must have stopped many times.
    t.true((summary?.upstream.pauses ?? 0) > 10, `pauses: ${summary?.upstream.pauses}`);
    // What the pump held never passed the high-water mark by more than one read (64 KiB) and one write.
    t.true((summary?.upstream.peakBuffered ?? Number.POSITIVE_INFINITY) <= HWM + 2 * 64 * 1024);
    // 256 MiB went through; the process grew by a small, fixed amount (a naive relay grows by GiBs).
    t.true(growth < 48 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    child.send('exit');
  });
}
