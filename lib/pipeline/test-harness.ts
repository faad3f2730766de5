import { Observable, type Subscriber, type Subscription } from 'rxjs';
import { applyChain, buildChain } from './compose';
import { checkReleaseTarget } from './context';
import { RedirectError } from '../common/errors';
import { createRecord } from '../common/record';
import type {
  ByteOperator,
  ConnectionContext,
  Middleware,
  RedirectRecord,
  RedirectRecordInit,
  TargetAddress,
} from '../common/types';

export interface TestMiddlewareOptions {
  /** The flow's record. Default: 127.0.0.1:40000 → 127.0.0.1:80, mechanism 'static'. */
  record?: RedirectRecordInit | RedirectRecord;
  /** Chunks fed to the upstream (client → destination) chain, in order; strings are UTF-8. */
  upstream?: readonly (Buffer | string)[];
  /** Chunks fed to the downstream (destination → client) chain, in order. */
  downstream?: readonly (Buffer | string)[];
  /** Complete the upstream input after its chunks (a client FIN). Default true. */
  endUpstream?: boolean;
  /** Complete the downstream input after its chunks (an upstream FIN). Default true. */
  endDownstream?: boolean;
  /** Wait this long between fed chunks (to drive timers). Default 0: all chunks in one tick. */
  gapMs?: number;
  /**
   * How long to wait for the chains to finish once everything was fed. When a direction is not
   * ended the harness waits this long and then reports `ended: 'open'`. Default 2 000 ms when both
   * directions are ended, else 0 (one macrotask).
   */
  timeoutMs?: number;
  /** Entries put into `ctx.state` before the middleware is called. */
  state?: Iterable<readonly [string | symbol, unknown]>;
  /** `ctx.id`. Default 1. */
  id?: number;
  /** `ctx.proxyId`. Default 'rxredirect'. */
  proxyId?: string;
}

export interface TestMiddlewareResult {
  /** What the upstream chain emitted (what the destination would receive), chunk by chunk. */
  readonly upstream: Buffer[];
  /** What the downstream chain emitted (what the client would receive). */
  readonly downstream: Buffer[];
  readonly upstreamBytes: Buffer;
  readonly downstreamBytes: Buffer;
  /**
   * 'complete': both chains completed; 'error': a chain failed (the server would reset both
   * sockets with reason 'middleware-error'); 'open': still running when the harness stopped.
   */
  readonly ended: 'complete' | 'error' | 'open';
  /** The error, coded as the server would report it. */
  readonly error?: RedirectError;
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

/**
 * Runs a middleware chain without sockets, like Netty's EmbeddedChannel: the chain is built by
 * the same `buildChain` the server uses (upstream in array order, downstream reversed), input is
 * fed through a plain Observable the way the pump feeds it, and outputs are checked the way the
 * pump checks them (Buffers only; any other error becomes ERR_REDIRECT_MIDDLEWARE).
 *
 * There is no flow control here: nothing stops feeding, so a chain that would stall a real
 * connection just takes longer.
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
  const abort = new AbortController();
  let building = true;
  let deferrals = 0;
  let everDeferred = false;
  let target: TargetAddress | undefined;
  const ctx: ConnectionContext = {
    deferConnect: () => {
      if (!building) {
        throw new RedirectError(
          'ERR_REDIRECT_DEFER_CONNECT',
          'deferConnect() is only allowed while the chain is built',
        );
      }
      deferrals++;
      everDeferred = true;
      let done = false;
      return (to?: TargetAddress) => {
        if (done) return;
        done = true;
        if (to !== undefined) {
          // As in the server: a bad target ends the flow, it is not thrown at the caller.
          try {
            target = checkReleaseTarget(to);
          } catch (err) {
            fail(err);
            return;
          }
        }
        deferrals--;
      };
    },
    id: options.id ?? 1,
    record: createRecord(options.record ?? DEFAULT_RECORD),
    signal: abort.signal,
    state: new Map(options.state ?? []),
    proxyId: options.proxyId ?? 'rxredirect',
  };
  const endUp = options.endUpstream ?? true;
  const endDown = options.endDownstream ?? true;
  const upOut: Buffer[] = [];
  const downOut: Buffer[] = [];
  let error: RedirectError | undefined;
  let settle: () => void = () => {};
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });

  const fail = (err: unknown): void => {
    if (error !== undefined) return;
    error =
      err instanceof RedirectError
        ? err
        : new RedirectError('ERR_REDIRECT_MIDDLEWARE', `middleware failed: ${messageOf(err)}`, { cause: err });
    up?.stop();
    down?.stop();
    settle();
  };
  const checkDone = (): void => {
    if (up?.done && down?.done) settle();
  };

  let up: Direction | undefined;
  let down: Direction | undefined;
  let chain: ReturnType<typeof buildChain>;
  try {
    chain = buildChain(list, ctx);
    building = false;
  } catch (err) {
    building = false;
    fail(err);
    return finish();
  }
  up = new Direction(chain.upstream, upOut, fail, checkDone);
  down = new Direction(chain.downstream, downOut, fail, checkDone);
  up.start();
  down.start();

  const gap = options.gapMs ?? 0;
  const feed = async (dir: Direction, chunks: readonly (Buffer | string)[] | undefined, end: boolean) => {
    for (const chunk of chunks ?? []) {
      if (error !== undefined) return;
      if (gap > 0) await new Promise((r) => setTimeout(r, gap));
      dir.feed(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    }
    if (end && error === undefined) dir.end();
  };
  await feed(up, options.upstream, endUp);
  await feed(down, options.downstream, endDown);

  const wait = options.timeoutMs ?? (endUp && endDown ? 2000 : 0);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    settled,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, wait);
    }),
  ]);
  clearTimeout(timer);
  return finish();

  function finish(): TestMiddlewareResult {
    const ended = error !== undefined ? 'error' : up?.done && down?.done ? 'complete' : 'open';
    up?.stop();
    down?.stop();
    // As on a server: the error of a failed flow, else the close reason (a chain left open is cut).
    if (!abort.signal.aborted) abort.abort(error ?? (ended === 'complete' ? 'client-end' : 'destroyed'));
    return {
      upstream: upOut,
      downstream: downOut,
      upstreamBytes: Buffer.concat(upOut),
      downstreamBytes: Buffer.concat(downOut),
      ended,
      ...(error !== undefined ? { error } : {}),
      state: ctx.state,
      ctx,
      connect: !everDeferred ? 'at-accept' : deferrals === 0 ? 'released' : 'pending',
      ...(target !== undefined ? { target } : {}),
    };
  }
}

/** One direction: the same wiring as the pump's, without sockets. */
class Direction {
  done = false;
  private input: Subscriber<Buffer> | undefined;
  private subscription: Subscription | undefined;
  private stopped = false;

  constructor(
    private readonly operator: ByteOperator | undefined,
    private readonly out: Buffer[],
    private readonly fail: (err: unknown) => void,
    private readonly completed: () => void,
  ) {}

  start(): void {
    if (!this.operator) return;
    const input$ = new Observable<Buffer>((subscriber) => {
      this.input = subscriber;
      return () => {
        this.input = undefined;
      };
    });
    let output: Observable<Buffer>;
    try {
      output = applyChain(this.operator, input$);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.subscription = output.subscribe({
      next: (chunk) => this.emit(chunk),
      error: (err: unknown) => this.fail(err),
      complete: () => {
        if (this.stopped) return;
        this.done = true;
        this.completed();
      },
    });
  }

  feed(chunk: Buffer): void {
    if (this.stopped || this.done) return;
    if (!this.operator) {
      this.out.push(chunk);
      return;
    }
    this.input?.next(chunk);
  }

  end(): void {
    if (this.stopped || this.done) return;
    if (!this.operator) {
      this.done = true;
      this.completed();
      return;
    }
    this.input?.complete();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.subscription?.unsubscribe();
    this.input = undefined;
  }

  private emit(chunk: unknown): void {
    if (this.stopped) return;
    if (Buffer.isBuffer(chunk)) {
      if (chunk.length > 0) this.out.push(chunk);
    } else if (chunk instanceof Uint8Array) {
      if (chunk.byteLength > 0) this.out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } else {
      this.fail(new TypeError(`a middleware emitted ${typeof chunk} where a Buffer was expected`));
    }
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
