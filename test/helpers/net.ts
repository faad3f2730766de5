import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import type { ExecutionContext } from 'ava';
import { map } from 'rxjs';
import {
  type CloseSummary,
  type Connection,
  createRedirectServer,
  type Middleware,
  type RedirectServer,
  type RedirectServerOptions,
} from '../../lib/index';

/** Starts a TCP server on loopback port 0 and closes it at teardown. */
export async function listenTcp(
  t: ExecutionContext,
  onConnection: (socket: Socket) => void,
  options: { allowHalfOpen?: boolean; host?: string } = {},
): Promise<{ server: Server; port: number; host: string; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: options.allowHalfOpen ?? true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  const host = options.host ?? '127.0.0.1';
  server.listen(0, host);
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { server, port: (server.address() as AddressInfo).port, host, sockets };
}

/** An upstream that echoes every byte and ends when the client ends. */
export function echoUpstream(t: ExecutionContext) {
  return listenTcp(t, (s) => s.pipe(s));
}

/** Creates a redirect server on loopback and closes it at teardown. */
export async function startRedirect(
  t: ExecutionContext,
  options: RedirectServerOptions,
): Promise<{ server: RedirectServer; port: number }> {
  const server = createRedirectServer(options);
  const address = await server.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close({ timeoutMs: 0 }));
  return { server, port: address.port };
}

export async function dial(port: number, host = '127.0.0.1'): Promise<Socket> {
  const s = connect({ port, host, allowHalfOpen: true });
  await once(s, 'connect');
  s.on('error', () => {}); // callers read errors through drain()/collect()
  return s;
}

/** Connects without waiting: for servers that reset at once (the RST can beat 'connect'). */
export function dialRaw(port: number, host = '127.0.0.1'): Socket {
  const s = connect({ port, host, allowHalfOpen: true });
  s.on('error', () => {}); // callers read the error through drain()/collect()
  return s;
}

/** The next flow the server closes, whatever it was. */
export function nextClose(server: RedirectServer): Promise<CloseSummary> {
  return new Promise((resolve) => server.once('closed', resolve));
}

export function nextConnection(server: RedirectServer): Promise<Connection> {
  return new Promise((resolve) => server.once('connection', resolve));
}

/** Resolves once the server has summarised `n` flows in all (checked now and on each 'closed'). */
export function closedAtLeast(server: RedirectServer, n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (server.stats().total.closed < n) return;
      server.off('closed', check);
      resolve();
    };
    server.on('closed', check);
    check();
  });
}

/**
 * Runs `one` again and again until stopped, as clients do across a reload: a failure is
 * collected, not thrown, so the test can assert there were none.
 */
export function clientLoop(one: () => Promise<void>): {
  readonly count: number;
  /** Resolves once `n` more runs than now have succeeded. */
  more(n: number): Promise<void>;
  /** Stops after the run in progress; resolves with the failures seen. */
  stop(): Promise<string[]>;
} {
  let running = true;
  let count = 0;
  const failures: string[] = [];
  const done = (async () => {
    while (running) {
      try {
        await one();
        count++;
      } catch (err) {
        failures.push(String(err));
      }
    }
  })();
  return {
    get count() {
      return count;
    },
    more: (n) => {
      const target = count + n;
      return eachTurnUntil(() => count >= target);
    },
    stop: async () => {
      running = false;
      await done;
      return failures;
    },
  };
}

/**
 * For state that has no event of its own (the splice engine's counters, which
 * change on its threads or at a handoff deep in a pump): checks on every turn
 * of the event loop, with no fixed delay, until the condition holds.
 */
export function eachTurnUntil(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (condition()) resolve();
      else setImmediate(check);
    };
    check();
  });
}

/**
 * Resolves once `condition()` holds, checked every `everyMs` (for state that changes on a timer, such
 * as a pool's linger, where a check every turn would only spin); rejects naming `what` after
 * `timeoutMs`, a bound for a hang, not for speed.
 */
export function pollUntil(condition: () => boolean, what: string, everyMs = 50, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (condition()) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - started > timeoutMs) {
        clearInterval(poll);
        reject(new Error(`still waiting after ${timeoutMs} ms: ${what}`));
      }
    }, everyMs);
  });
}

/** Resolves once `bytes` more bytes have been read from the socket, or it closed first. */
export function readAtLeast(socket: Socket, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    let n = 0;
    const done = (): void => {
      socket.off('data', onData);
      socket.off('close', done);
      resolve();
    };
    const onData = (d: Buffer): void => {
      n += d.length;
      if (n >= bytes) done();
    };
    socket.on('data', onData);
    socket.once('close', done);
  });
}

/**
 * A middleware that reports each upstream chunk the proxy read, unchanged. A
 * test that must cut its bytes at a given place writes one piece, awaits
 * next(), then writes the next: each piece is then its own chunk in the chain.
 */
export function chunkProbe(): { middleware: Middleware; next(): Promise<Buffer> } {
  const seen: Buffer[] = [];
  const waiters: Array<(chunk: Buffer) => void> = [];
  const middleware: Middleware = () => ({
    upstream: map((chunk: Buffer) => {
      const waiter = waiters.shift();
      if (waiter) waiter(chunk);
      else seen.push(chunk);
      return chunk;
    }),
  });
  const next = (): Promise<Buffer> => {
    const chunk = seen.shift();
    return chunk ? Promise.resolve(chunk) : new Promise((resolve) => waiters.push(resolve));
  };
  return { middleware, next };
}

/** Reads a socket to its end (or error), hashing as it goes. */
export function drain(
  socket: Socket,
): Promise<{ bytes: number; sha256: string; error?: NodeJS.ErrnoException; data?: Buffer }> {
  return drainWith(socket, false);
}

export function collect(
  socket: Socket,
): Promise<{ bytes: number; sha256: string; error?: NodeJS.ErrnoException; data?: Buffer }> {
  return drainWith(socket, true);
}

function drainWith(socket: Socket, keep: boolean) {
  return new Promise<{ bytes: number; sha256: string; error?: NodeJS.ErrnoException; data?: Buffer }>((resolve) => {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let bytes = 0;
    socket.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
      if (keep) chunks.push(c);
    });
    let finished = false;
    const finish = (error?: NodeJS.ErrnoException) => {
      if (finished) return;
      finished = true;
      resolve({
        bytes,
        sha256: hash.digest('hex'),
        ...(error ? { error } : {}),
        ...(keep ? { data: Buffer.concat(chunks) } : {}),
      });
    };
    socket.once('end', () => finish());
    socket.once('error', (e) => finish(e));
    socket.once('close', () => finish());
  });
}

/** Writes `total` pseudo-random bytes in chunks honouring backpressure; returns their sha256. */
export async function sendRandom(socket: Socket, total: number, chunk = 64 * 1024, end = true): Promise<string> {
  const hash = createHash('sha256');
  const block = randomBytes(Math.min(chunk, total) || 1);
  let sent = 0;
  let i = 0;
  while (sent < total) {
    const n = Math.min(block.length, total - sent);
    // vary the content per chunk so reordering or duplication shows in the hash
    const piece = Buffer.from(block.subarray(0, n));
    if (n >= 4) piece.writeUInt32BE(i++ >>> 0, 0);
    hash.update(piece);
    sent += n;
    if (!socket.write(piece)) await once(socket, 'drain');
  }
  if (end) socket.end();
  return hash.digest('hex');
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}
