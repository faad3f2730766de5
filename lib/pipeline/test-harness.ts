import { MemoryFlow } from './memory-flow';
import { invalidOption, type RedirectError } from '../common/errors';
import { createRecord, PROXY_ID_PATTERN } from '../common/record';
import { MAX_TIMER_MS } from '../common/deadlines';
import type { MemoryTransport, ReadPace } from '../net/memory-transport';
import type {
  CloseSummary,
  ConnectionContext,
  Middleware,
  RedirectRecord,
  RedirectRecordInit,
  TargetAddress,
} from '../common/types';

export interface TestMiddlewareOptions {
  /** The flow's record. Default: 127.0.0.1:40000 → 127.0.0.1:80, mechanism 'static'. */
  record?: RedirectRecordInit | RedirectRecord;
  /** Chunks the client sends (through the upstream chain), in order; strings are UTF-8. */
  upstream?: readonly (Buffer | string)[];
  /** Chunks the destination sends (through the downstream chain), in order. */
  downstream?: readonly (Buffer | string)[];
  /** The client sends FIN after its chunks. Default true. */
  endUpstream?: boolean;
  /** The destination sends FIN after its chunks. Default true. */
  endDownstream?: boolean;
  /** Wait this long between sent chunks (to drive timers). Default 0: all chunks in one tick. */
  gapMs?: number;
  /**
   * How long to wait for the flow to close once everything was sent. When a direction is not
   * ended the harness waits this long and then reports `ended: 'open'`. Default 2 000 ms when both
   * directions are ended, else 0. Either way it then lets the in-memory connections go quiet
   * (reads and closes already due happen; at most 1 000 turns of the event loop).
   */
  timeoutMs?: number;
  /** Entries put into `ctx.state` before the middleware is called. */
  state?: Iterable<readonly [string | symbol, unknown]>;
  /** `ctx.id`. Default 1. */
  id?: number;
  /** `ctx.proxyId`. Default 'rxredirect'. */
  proxyId?: string;
  /**
   * As the server's `limits.highWaterMark`: bytes held per direction before the pump stops
   * reading. At least 1024; default 512 KiB.
   */
  highWaterMark?: number;
  /**
   * A slow reader: `upstream` paces the destination (what the upstream chain emits), `downstream`
   * the client; each reads at most `bytes` per read, one read every `everyMs` (default 0: one a
   * turn of the event loop). Default: each reads everything as soon as it arrives.
   */
  readPace?: { upstream?: ReadPace; downstream?: ReadPace };
  /**
   * As the server's `limits.connectTimeoutMs` while `ctx.deferConnect()` holds the connect.
   * Default 0: no deadline.
   */
  connectTimeoutMs?: number;
}

export interface TestMiddlewareResult {
  /** What the destination received (the upstream chain's output), chunk by chunk. */
  readonly upstream: Buffer[];
  /** What the client received (the downstream chain's output). */
  readonly downstream: Buffer[];
  readonly upstreamBytes: Buffer;
  readonly downstreamBytes: Buffer;
  /**
   * 'complete': the flow closed gracefully (both FINs passed); 'error': it ended with an error
   * (`error`, and `summary.reason` as the server reports it, e.g. 'middleware-error');
   * 'open': still open when the harness stopped (the harness then destroys it: reason 'destroyed').
   */
  readonly ended: 'complete' | 'error' | 'open';
  /** The error, coded as the server would report it. */
  readonly error?: RedirectError;
  /** The flow's close summary, as a server's 'close' event gives it (byte counts, pauses, reason). */
  readonly summary: CloseSummary;
  /** `ctx.state` after the run. */
  readonly state: Map<string | symbol, unknown>;
  /** The context the middleware was called with; its signal has aborted. */
  readonly ctx: ConnectionContext;
  /**
   * The upstream connect, as `ctx.deferConnect()` left it: 'at-accept' (never deferred),
   * 'released' (every deferral released) or 'pending' (the server would end it with connect-timeout).
   */
  readonly connect: 'at-accept' | 'released' | 'pending';
  /** The target a deferral was released with, if any. */
  readonly target?: TargetAddress;
}

const DEFAULT_RECORD: RedirectRecordInit = {
  mechanism: 'static',
  source: { address: '127.0.0.1', port: 40000 },
  destination: { address: '127.0.0.1', port: 80 },
};

/** The server's default `limits.highWaterMark` (lib/config/options.ts). */
const DEFAULT_HIGH_WATER_MARK = 512 * 1024;

/** Turns of the event loop the harness waits at most for the in-memory connections to go quiet. */
const QUIET_TURNS = 1000;

/**
 * Runs a middleware chain through the server's own pipeline over in-memory connections, like
 * Netty's EmbeddedChannel: the same context, `buildChain`, deferrals and Pumps as a server's
 * connection (lib/pipeline/memory-flow.ts), so flow control, `ctx.bypass()`, `ctx.deferConnect()`
 * (with its target check) and the close summary behave as on sockets. The test plays the client
 * and the destination (docs/middleware.md, "Testing a chain without sockets").
 *
 * @example
 * ```ts
 * const r = await testMiddleware(replace({ search: 'cat', replacement: 'dog' }), { upstream: ['a c', 'at'] });
 * r.upstreamBytes.toString(); // 'a dog'
 * ```
 */
export async function testMiddleware(
  middleware: Middleware | readonly Middleware[],
  options: TestMiddlewareOptions = {},
): Promise<TestMiddlewareResult> {
  const list = typeof middleware === 'function' ? [middleware] : [...middleware];
  // Every option is checked before anything runs: a bad one is a coded error, not a hang.
  const proxyId = options.proxyId ?? 'rxredirect';
  if (typeof proxyId !== 'string' || !PROXY_ID_PATTERN.test(proxyId)) {
    throw harnessError(`proxyId must be 1–64 characters of A–Z a–z 0–9 . _ : -, got ${String(proxyId)}`);
  }
  const upChunks = chunks('upstream', options.upstream);
  const downChunks = chunks('downstream', options.downstream);
  const endUp = flag('endUpstream', options.endUpstream);
  const endDown = flag('endDownstream', options.endDownstream);
  const gap = count('gapMs', options.gapMs, 0, 0, MAX_TIMER_MS);
  const wait = count('timeoutMs', options.timeoutMs, endUp && endDown ? 2000 : 0, 0, MAX_TIMER_MS);
  const state = stateEntries(options.state);
  const upPace = checkPace('readPace.upstream', options.readPace?.upstream);
  const downPace = checkPace('readPace.downstream', options.readPace?.downstream);
  const settings = {
    id: count('id', options.id, 1, 0, Number.MAX_SAFE_INTEGER),
    record: createRecord(options.record ?? DEFAULT_RECORD),
    proxyId,
    highWaterMark: count('highWaterMark', options.highWaterMark, DEFAULT_HIGH_WATER_MARK, 1024),
    connectTimeoutMs: count('connectTimeoutMs', options.connectTimeoutMs, 0, 0, MAX_TIMER_MS),
  };
  const flow = new MemoryFlow(settings);
  const upOut: Buffer[] = [];
  const downOut: Buffer[] = [];
  play(flow.destination, upOut, upPace);
  play(flow.client, downOut, downPace);
  for (const [key, value] of state) flow.ctx.state.set(key, value);
  flow.run(list);

  const send = async (end: MemoryTransport, chunks: readonly (Buffer | string)[], fin: boolean) => {
    for (const chunk of chunks) {
      if (gap > 0) await new Promise((r) => setTimeout(r, gap));
      if (end.destroyed) return;
      end.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, ignore);
    }
    if (fin) end.end();
  };
  await send(flow.client, upChunks, endUp);
  await send(flow.destination, downChunks, endDown);

  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    flow.closed,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, wait);
    }),
  ]);
  clearTimeout(timer);
  // Bytes already on their way still arrive, as they would before the server gave up.
  await quiet(flow);
  const open = flow.summary === undefined;
  if (open) flow.destroy();
  const summary = await flow.closed;
  await quiet(flow);
  flow.client.destroy();
  flow.destination.destroy();
  return {
    upstream: upOut,
    downstream: downOut,
    upstreamBytes: Buffer.concat(upOut),
    downstreamBytes: Buffer.concat(downOut),
    ended: open ? 'open' : summary.error !== undefined ? 'error' : 'complete',
    ...(summary.error !== undefined ? { error: summary.error } : {}),
    summary,
    state: flow.ctx.state,
    ctx: flow.ctx,
    connect: flow.connect,
    ...(flow.target !== undefined ? { target: flow.target } : {}),
  };
}

/** The test's end reads (at its pace) and keeps what it received. */
function play(end: MemoryTransport, out: Buffer[], pace: ReadPace | undefined): void {
  end.attach({ data: (chunk) => out.push(chunk), end: ignore, error: ignore, close: ignore });
  end.setReadPace(pace);
  end.startReading();
}

/** Waits until no in-memory end has a read or a close due (at most QUIET_TURNS turns of the loop). */
async function quiet(flow: MemoryFlow): Promise<void> {
  const ends = [flow.client, flow.client.peer, flow.destination, flow.destination.peer];
  for (let turn = 0; turn < QUIET_TURNS && ends.some((end) => end.busy); turn++) {
    await new Promise((r) => setImmediate(r));
  }
}

function ignore(): void {}

function harnessError(message: string): RedirectError {
  return invalidOption('', `testMiddleware(): ${message}`);
}

function count(name: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw harnessError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function flag(name: string, value: unknown): boolean {
  if (value === undefined) return true;
  if (typeof value !== 'boolean') throw harnessError(`${name} must be true or false, got ${String(value)}`);
  return value;
}

function chunks(name: string, value: unknown): readonly (Buffer | string)[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((c) => typeof c === 'string' || Buffer.isBuffer(c))) {
    throw harnessError(`${name} must be an array of Buffers and strings`);
  }
  return value;
}

function stateEntries(value: unknown): (readonly [string | symbol, unknown])[] {
  if (value === undefined) return [];
  const iterable = value as Partial<Iterable<unknown>> | null;
  if (typeof iterable?.[Symbol.iterator] !== 'function' || typeof value === 'string') {
    throw harnessError('state must be an iterable of [key, value] pairs (a Map, or an array of pairs)');
  }
  const out: (readonly [string | symbol, unknown])[] = [];
  for (const entry of iterable as Iterable<unknown>) {
    const key = Array.isArray(entry) && entry.length === 2 ? (entry[0] as unknown) : undefined;
    if (typeof key !== 'string' && typeof key !== 'symbol') {
      throw harnessError(`state entries must be [key, value] pairs with a string or symbol key, got ${String(entry)}`);
    }
    out.push([key, (entry as unknown[])[1]]);
  }
  return out;
}

function checkPace(name: string, pace: ReadPace | undefined): ReadPace | undefined {
  if (pace === undefined) return undefined;
  if (pace === null || typeof pace !== 'object') {
    throw invalidOption('', `testMiddleware(): ${name} must be { bytes, everyMs? }`);
  }
  const bytes = pace.bytes === undefined ? 'missing' : pace.bytes;
  return { bytes: count(`${name}.bytes`, bytes, 0, 1), everyMs: count(`${name}.everyMs`, pace.everyMs, 0, 0) };
}

/**
 * Every way to cut `data` into two or three pieces (and the whole), for tests that must hold
 * whatever the chunk boundaries: `splits(Buffer.from('abc'))` → [['abc'], ['a','bc'], ['ab','c'], ['a','b','c']].
 */
export function splits(data: Buffer | string, pieces: 2 | 3 = 2): Buffer[][] {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const out: Buffer[][] = [[buf]];
  for (let i = 1; i < buf.length; i++) {
    out.push([buf.subarray(0, i), buf.subarray(i)]);
    if (pieces === 3) {
      for (let j = i + 1; j < buf.length; j++) out.push([buf.subarray(0, i), buf.subarray(i, j), buf.subarray(j)]);
    }
  }
  return out;
}
