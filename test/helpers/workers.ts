import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { ExecutionContext } from 'ava';
import { createRedirectCluster, type RedirectCluster, type RedirectClusterOptions } from '../../lib/workers/index';

/** The config module the workers tests host (test/fixtures/workers-config.ts). */
const CONFIG_MODULE = require.resolve('../fixtures/workers-config');

/** A cluster on loopback port 0, closed at teardown. */
export async function startCluster(
  t: ExecutionContext,
  options: Partial<RedirectClusterOptions> = {},
): Promise<{ cluster: RedirectCluster; port: number }> {
  const cluster = createRedirectCluster({ module: CONFIG_MODULE, listen: { port: 0 }, ...options });
  t.teardown(() => cluster.close({ timeoutMs: 0 }));
  const address = await cluster.start();
  return { cluster, port: address.port };
}

/**
 * A client that echoes through the proxy in rounds: writes a chunk, waits for it to come
 * back, again, until stop(); then ends and reports whether every byte came back in order.
 */
export class EchoRounds {
  readonly socket: Socket;
  localPort = 0;
  rounds = 0;
  private readonly sent = createHash('sha256');
  private readonly received = createHash('sha256');
  private sentBytes = 0;
  private receivedBytes = 0;
  private stopped = false;
  private readonly firstRound: Promise<void>;
  readonly result: Promise<{ intact: boolean; error: string | undefined; bytes: number }>;

  constructor(port: number, chunk = 32 * 1024) {
    this.socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const s = this.socket;
    let error: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    let roundDone: () => void = () => {};
    this.firstRound = new Promise((r) => {
      roundDone = r;
    });
    let owed = 0;
    const next = (): void => {
      if (this.stopped) {
        s.end();
        return;
      }
      const piece = randomBytes(chunk);
      this.sent.update(piece);
      this.sentBytes += piece.length;
      owed = piece.length;
      s.write(piece);
    };
    // The proxy's side ended (its worker died): end ours too, or the socket stays half-open.
    s.on('end', () => s.end());
    s.on('connect', () => {
      this.localPort = s.localPort ?? 0;
      next();
    });
    s.on('data', (d: Buffer) => {
      this.received.update(d);
      this.receivedBytes += d.length;
      owed -= d.length;
      if (owed === 0) {
        this.rounds++;
        roundDone();
        next();
      }
    });
    this.result = new Promise((resolve) => s.once('close', resolve)).then(() => ({
      intact:
        error === undefined &&
        this.sentBytes === this.receivedBytes &&
        this.sent.digest('hex') === this.received.digest('hex'),
      error,
      bytes: this.receivedBytes,
    }));
  }

  /** Resolves after the first full round, or when the connection closed before one. */
  started(): Promise<void> {
    return Promise.race([this.firstRound, this.result.then(() => undefined)]);
  }

  stop(): void {
    this.stopped = true;
  }
}

/** One short connection: connect, send `size` bytes, end, read the echo. Resolves with its outcome. */
export function oneShot(
  port: number,
  size = 4096,
  host = '127.0.0.1',
): Promise<{ ok: boolean; error: string | undefined }> {
  return new Promise((resolve) => {
    const s = connect({ port, host, allowHalfOpen: true });
    const piece = randomBytes(size);
    const chunks: Buffer[] = [];
    let error: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('connect', () => s.end(piece));
    s.on('close', () => resolve({ ok: error === undefined && Buffer.concat(chunks).equals(piece), error }));
  });
}

/** The next time `emitter` emits `event` (for the cluster's eventemitter3 events). */
export function nextEvent(emitter: { once(event: string, fn: () => void): unknown }, event: string): Promise<void> {
  return new Promise((resolve) => emitter.once(event, () => resolve()));
}
