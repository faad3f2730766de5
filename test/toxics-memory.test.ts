import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { toxics } from '../middleware/index';
import { dial, drain, listenTcp, nextClose, sendRandom, startRedirect } from './helpers/net';

// A latency (or timeout) toxic holds only what flow control lets in: a fast upstream behind it,
// with a client that does not read, is stopped instead of buffered.

const HWM = 256 * 1024;
const TOTAL = 48 * 1024 * 1024;

for (const kind of ['latency', 'timeout'] as const)
  test(`a slow reader behind a ${kind} toxic keeps the proxy's memory bounded`, async (t) => {
    let written = 0;
    let sent: Promise<string> | undefined;
    const up = await listenTcp(t, (s) => {
      const origWrite = s.write.bind(s);
      s.write = ((chunk: Buffer, ...rest: never[]) => {
        written += chunk.length;
        return origWrite(chunk, ...rest);
      }) as typeof s.write;
      sent = sendRandom(s, TOTAL);
    });
    const set = new toxics.ToxicSet({ seed: 1 });
    const toxic = set.add(
      kind === 'latency'
        ? { type: 'latency', attributes: { latency: 300 } }
        : { type: 'timeout', attributes: { timeout: 0 } },
    );
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      middleware: [set.middleware],
      limits: { highWaterMark: HWM },
    });
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const closed = nextClose(server);
    const client = await dial(port);
    client.pause(); // reads nothing for now
    // Until the upstream's writes stop moving (flow control reached it) or everything was written.
    let last = -1;
    let still = 0;
    while (written < TOTAL && still < 5) {
      await sleep(100);
      still = written === last ? still + 1 : 0;
      last = written;
    }
    const writtenWhileStalled = written;
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    // Loopback socket buffers hold a few MiB each way; the proxy adds at most its mark.
    t.true(writtenWhileStalled < 24 * 1024 * 1024, `the upstream wrote ${writtenWhileStalled} bytes`);
    t.true(rssGrowth < 48 * 1024 * 1024, `RSS grew ${rssGrowth} bytes`);
    // What the timeout held goes on once it is removed; the latency drops to 0 so the rest runs at speed
    // (300 ms over a 256 KiB window would take minutes).
    if (kind === 'timeout') set.remove(toxic.name);
    else set.update(toxic.name, { attributes: { latency: 0 } });
    const got = drain(client);
    client.resume();
    const result = await got;
    t.is(result.bytes, TOTAL);
    t.is(result.sha256, await (sent as Promise<string>));
    client.end();
    const s = await closed;
    t.true(s.downstream.peakBuffered <= HWM + 128 * 1024, `peak ${s.downstream.peakBuffered}`);
    t.true(s.downstream.pauses >= 1);
  });
