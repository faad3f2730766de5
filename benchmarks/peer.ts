// Load generator and upstream peers, in their own process so the relay under
// test never shares an event loop with them. Spoken to through Worker (proc.ts).
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { serve } from './proc';

const CHUNK = Buffer.alloc(1024 * 1024, 0x61);
const servers: Server[] = [];
const held: Socket[] = [];
let received = 0;
let accepted = 0;

type Mode = 'sink' | 'source' | 'echo' | 'hold' | 'slow';

function listen(mode: Mode, rate: number): Promise<{ port: number }> {
  const server = createServer({ allowHalfOpen: false, noDelay: true }, (s) => {
    accepted++;
    s.on('error', () => {});
    if (mode === 'sink') s.on('data', (c: Buffer) => (received += c.length));
    else if (mode === 'echo') s.pipe(s);
    else if (mode === 'hold') held.push(s);
    else if (mode === 'source') {
      s.resume();
      const pump = (): void => {
        while (!s.destroyed && s.write(CHUNK));
      };
      s.on('drain', pump);
      pump();
    } else slowReader(s, rate);
  });
  server.maxConnections = 1_000_000;
  servers.push(server);
  return new Promise((resolve) =>
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () =>
      resolve({ port: (server.address() as AddressInfo).port }),
    ),
  );
}

/** Reads at most `rate` bytes per second: a token bucket refilled every 10 ms. */
function slowReader(s: Socket, rate: number): void {
  held.push(s);
  let allowance = rate / 100;
  const timer = setInterval(() => {
    allowance = Math.min(allowance + rate / 100, rate / 10);
    if (allowance > 0 && s.isPaused()) s.resume();
  }, 10);
  s.on('data', (c: Buffer) => {
    received += c.length;
    allowance -= c.length;
    if (allowance <= 0) s.pause();
  });
  s.on('close', () => clearInterval(timer));
}

/** Bulk transfer on `streams` connections for `seconds`; returns bytes this side received (down) or sent (up). */
async function throughput(port: number, direction: 'up' | 'down', streams: number, seconds: number) {
  let bytes = 0;
  const sockets: Socket[] = [];
  const opened = Array.from({ length: streams }, () => {
    return new Promise<void>((resolve, reject) => {
      const s =
        direction === 'down'
          ? connect({
              port,
              host: '127.0.0.1',
              // Reads into one 1 MiB buffer: the generator must not be the bottleneck.
              onread: {
                buffer: Buffer.allocUnsafe(1024 * 1024),
                callback: (n) => {
                  bytes += n;
                  return true;
                },
              },
            })
          : connect({ port, host: '127.0.0.1' });
      s.setNoDelay(true);
      s.once('connect', () => resolve());
      s.once('error', reject);
      sockets.push(s);
    });
  });
  await Promise.all(opened);
  const start = process.hrtime.bigint();
  if (direction === 'up') {
    for (const s of sockets) {
      const pump = (): void => {
        while (!s.destroyed && s.write(CHUNK));
      };
      s.on('drain', pump);
      pump();
    }
  }
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const measured = bytes;
  for (const s of sockets) s.destroy();
  return { bytes: measured, seconds: elapsed };
}

/** Short request/response connections at a fixed concurrency. */
async function connrate(port: number, concurrency: number, seconds: number, size: number) {
  const request = Buffer.alloc(size, 0x62);
  const latencies: number[] = [];
  let errors = 0;
  const deadline = Date.now() + seconds * 1000;
  const start = process.hrtime.bigint();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      const s = connect({ port, host: '127.0.0.1', noDelay: true });
      let got = 0;
      let done = false;
      s.on('connect', () => s.write(request));
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= size && !done) {
          done = true;
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          s.end();
        }
      });
      s.on('error', () => {
        if (!done) errors++;
        done = true;
      });
      s.on('close', () => resolve());
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  latencies.sort((a, b) => a - b);
  const q = (p: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
  return { completed: latencies.length, errors, seconds: elapsed, p50: q(0.5), p99: q(0.99) };
}

/** Opens `count` idle connections, 200 at a time. */
async function hold(port: number, count: number) {
  let errors = 0;
  for (let i = 0; i < count; i += 200) {
    const batch = Array.from(
      { length: Math.min(200, count - i) },
      () =>
        new Promise<void>((resolve) => {
          const s = connect({ port, host: '127.0.0.1' });
          s.once('connect', () => resolve());
          s.once('error', () => {
            errors++;
            resolve();
          });
          held.push(s);
        }),
    );
    await Promise.all(batch);
  }
  return { opened: count - errors, errors };
}

/** One connection written to as fast as the path accepts, for `seconds`. */
async function flood(port: number, seconds: number) {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  let written = 0;
  const pump = (): void => {
    while (!s.destroyed && s.write(CHUNK)) written += CHUNK.length;
  };
  s.on('drain', pump);
  pump();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  s.destroy();
  return { written };
}

serve({
  listen: (m) => listen(m.mode as Mode, Number(m.rate ?? 0)),
  count: () => ({ received, accepted }),
  reset: () => {
    received = 0;
    accepted = 0;
    return {};
  },
  release: () => {
    for (const s of held.splice(0)) s.destroy();
    return {};
  },
  throughput: (m) => throughput(Number(m.port), m.direction as 'up' | 'down', Number(m.streams), Number(m.seconds)),
  connrate: (m) => connrate(Number(m.port), Number(m.concurrency), Number(m.seconds), Number(m.size)),
  hold: (m) => hold(Number(m.port), Number(m.count)),
  flood: (m) => flood(Number(m.port), Number(m.seconds)),
});
