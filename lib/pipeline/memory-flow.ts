import { closeSummary, firstEnd } from './close-summary';
import { buildChain } from './compose';
import { ConnectDeferrals, type ContextOwner, createContext } from './context';
import { endConnections, type FlowEnding } from './flow-ending';
import { middlewareFault } from './middleware-ending';
import { Pump, type PumpHooks } from './pump';
import { asRedirectError, RedirectError } from '../common/errors';
import { DeferredSink } from '../net/deferred-sink';
import { type MemoryTransport, memoryTransportPair } from '../net/memory-transport';
import type {
  BypassDirection,
  CloseReason,
  CloseSummary,
  ConnectionContext,
  Middleware,
  MiddlewareOperators,
  RedirectRecord,
  TargetAddress,
} from '../common/types';

export interface MemoryFlowOptions {
  readonly id: number;
  readonly record: RedirectRecord;
  readonly proxyId: string;
  /** As `limits.highWaterMark`: bytes held per direction before reading from the sender stops. */
  readonly highWaterMark: number;
  /** As `limits.connectTimeoutMs` for a deferred connect; 0: no deadline. */
  readonly connectTimeoutMs: number;
}

/** ctx.deferConnect() bookkeeping that also remembers whether the connect was ever deferred. */
class CountedDeferrals extends ConnectDeferrals {
  taken = 0;

  override defer(): (to?: TargetAddress) => void {
    const release = super.defer();
    this.taken++;
    return release;
  }
}

/**
 * One flow of the server's pipeline over two in-memory connections (lib/net/memory-transport.ts):
 * the same context, deferrals, chain building and Pumps as the server's Connection, in the same
 * order, so flow control, bypass, deferConnect with its target check and the close summary work
 * as they do on sockets. What it leaves out is what needs a network: resolving, dialing, loop
 * detection, zero-copy, the idle timer. The test drives `client` (the client's end) and
 * `destination` (the destination's end); the proxy holds the other two ends.
 */
export class MemoryFlow implements ContextOwner {
  readonly id: number;
  readonly record: RedirectRecord;
  readonly ctx: ConnectionContext;
  /** The test's end of the client connection. */
  readonly client: MemoryTransport;
  /** The test's end of the upstream connection (the destination). */
  readonly destination: MemoryTransport;
  /** The target a deferConnect() release named. */
  target: TargetAddress | undefined;
  /** Resolves with the close summary once both connections closed. */
  readonly closed: Promise<CloseSummary>;

  private readonly options: MemoryFlowOptions;
  private readonly fromClient: MemoryTransport;
  private readonly toUpstream: MemoryTransport;
  private readonly abort = new AbortController();
  private readonly deferrals = new CountedDeferrals();
  private readonly startedAt = performance.now();
  private upPump: Pump | undefined;
  private downPump: Pump | undefined;
  private reason: CloseReason | undefined;
  private error: RedirectError | undefined;
  /** When each side's FIN was seen, as a sequence number (0: not yet; see firstEnd()): here the order of arrival is the truth, so a counter is the clock. */
  private clientEndAt = 0;
  private upstreamEndAt = 0;
  private ends = 0;
  private clientClosed = false;
  /** Until the upstream "connects" there is nothing to wait for on that side. */
  private upstreamClosed = true;
  private connected = false;
  private done = false;
  private bypassUp = false;
  private bypassDown = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private resolveClosed: (summary: CloseSummary) => void = () => {};
  /** Both pumps' hooks: there is no idle timer to feed, nor a zero-copy relay to close after. */
  private readonly hooks: PumpHooks = {
    activity: () => {},
    failed: (err) => this.middlewareFailed(err),
    finished: () => {},
  };
  summary: CloseSummary | undefined;

  constructor(options: MemoryFlowOptions) {
    this.options = options;
    this.id = options.id;
    this.record = options.record;
    const { source, destination } = options.record;
    [this.client, this.fromClient] = memoryTransportPair({ local: source, remote: destination });
    [this.toUpstream, this.destination] = memoryTransportPair({ local: source, remote: destination });
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.ctx = createContext(this, options.proxyId, (direction) => this.requestBypass(direction), this.deferrals);
    this.attachSide('client', this.fromClient, () => this.upPump);
    this.attachSide('upstream', this.toUpstream, () => this.downPump);
  }

  /** The proxy's end of one side: its bytes feed the pump that reads it (made later). */
  private attachSide(side: 'client' | 'upstream', transport: MemoryTransport, reader: () => Pump | undefined): void {
    transport.attach({
      data: (chunk) => reader()?.onData(chunk),
      end: () => {
        if (side === 'client' && this.clientEndAt === 0) this.clientEndAt = ++this.ends;
        if (side === 'upstream' && this.upstreamEndAt === 0) this.upstreamEndAt = ++this.ends;
        reader()?.onSourceEnd();
      },
      error: (err) => this.fault(side, err),
      close: () => {
        if (side === 'client') this.clientClosed = true;
        else this.upstreamClosed = true;
        this.maybeFinish();
      },
    });
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** 'at-accept' (never deferred), 'released' (every deferral released) or 'pending'. */
  get connect(): 'at-accept' | 'released' | 'pending' {
    if (this.deferrals.taken === 0) return 'at-accept';
    return this.deferrals.pending === 0 ? 'released' : 'pending';
  }

  /** Builds the chain and starts the pumps, in the order Connection does (docs/design.md). */
  run(middleware: readonly Middleware[]): void {
    let chain: MiddlewareOperators;
    const deferrals = this.deferrals;
    try {
      chain = buildChain(middleware, this.ctx);
      deferrals.seal();
      // A release that named a bad target while the chain was built.
      if (deferrals.failure) throw deferrals.failure;
    } catch (err) {
      deferrals.seal();
      this.terminate('middleware-error', asRedirectError(err, 'ERR_REDIRECT_MIDDLEWARE', 'middleware failed'), 'reset');
      return;
    }
    if (deferrals.pending === 0) {
      this.target = deferrals.routed;
      this.connectUpstream(chain, undefined);
      return;
    }
    // ctx.deferConnect(): the upstream pump runs into a queue until the middleware chooses.
    const sink = new DeferredSink();
    const wait = deferrals.wait();
    this.upPump = new Pump(this.fromClient, sink, chain.upstream, this.options.highWaterMark, this.hooks);
    const ms = this.options.connectTimeoutMs;
    if (ms > 0) {
      this.connectTimer = setTimeout(() => {
        const err = new RedirectError('ERR_REDIRECT_CONNECT_TIMEOUT', `no upstream target was chosen within ${ms} ms`);
        this.terminate('connect-timeout', err, 'reset');
      }, ms);
    }
    this.upPump.start();
    wait
      .then((failure) => {
        clearTimeout(this.connectTimer);
        if (this.reason !== undefined) return;
        // A release named a bad target: end now rather than at the deadline.
        if (failure) return this.terminate('middleware-error', failure, 'reset');
        this.target = deferrals.routed;
        this.connectUpstream(chain, sink);
      })
      // As Connection.internalError: a throw past this point is our bug; the flow ends, the test sees it.
      .catch((err: unknown) =>
        this.terminate(
          'destroyed',
          new RedirectError('ERR_REDIRECT_INTERNAL', `internal error: ${String(err)}`, { cause: err }),
          'reset',
        ),
      );
  }

  /** Ends the flow now: RST on both sides, with this reason. */
  destroy(reason: CloseReason = 'destroyed'): void {
    this.terminate(reason, undefined, 'reset');
  }

  /** A chain errored: `middleware-error` with RST, or the ending its code names. */
  private middlewareFailed(err: RedirectError): void {
    const fault = middlewareFault(err);
    this.terminate(fault.reason, fault.error, fault.how);
  }

  /** The upstream is "connected" at once: the destination's end is already there. */
  private connectUpstream(chain: MiddlewareOperators, deferred: DeferredSink | undefined): void {
    const hwm = this.options.highWaterMark;
    this.connected = true;
    this.upstreamClosed = false;
    if (deferred) deferred.connectTo(this.toUpstream);
    else this.upPump = new Pump(this.fromClient, this.toUpstream, chain.upstream, hwm, this.hooks);
    this.downPump = new Pump(this.toUpstream, this.fromClient, chain.downstream, hwm, this.hooks);
    this.applyBypass();
    if (!deferred) this.upPump?.start();
    this.downPump.start();
  }

  /** ctx.bypass() (direction already checked by the context): applied now, or once the pumps exist. */
  private requestBypass(direction: BypassDirection): void {
    if (direction !== 'downstream') this.bypassUp = true;
    if (direction !== 'upstream') this.bypassDown = true;
    this.applyBypass();
  }

  private applyBypass(): void {
    if (this.bypassUp) this.upPump?.bypass();
    if (this.bypassDown) this.downPump?.bypass();
  }

  /** Memory ends fail only as sockets reset by their peer do. */
  private fault(side: 'client' | 'upstream', cause: Error): void {
    if (this.done) return;
    const error =
      side === 'client'
        ? new RedirectError('ERR_REDIRECT_CLIENT_RESET', 'the client reset the connection', { cause })
        : new RedirectError('ERR_REDIRECT_UPSTREAM_RESET', 'the upstream reset the connection', { cause });
    this.terminate(side === 'client' ? 'client-reset' : 'upstream-reset', error, 'reset');
  }

  /** Ends the flow for a reason; the first reason wins (as Connection.terminate). */
  private terminate(reason: CloseReason, error: RedirectError | undefined, how: FlowEnding): void {
    if (this.reason === undefined) {
      this.reason = reason;
      this.error = error;
    }
    this.upPump?.stop();
    this.downPump?.stop();
    clearTimeout(this.connectTimer);
    endConnections(how, this.fromClient, this.connected ? this.toUpstream : undefined);
    if (!this.abort.signal.aborted) this.abort.abort(error ?? reason);
    this.maybeFinish();
  }

  /** Both connections closed: the one close summary. */
  private maybeFinish(): void {
    if (this.done || !this.clientClosed || !this.upstreamClosed) return;
    if (this.reason === undefined) {
      this.reason = firstEnd(this.clientEndAt, this.upstreamEndAt) ?? 'destroyed';
      this.upPump?.stop();
      this.downPump?.stop();
    }
    this.done = true;
    clearTimeout(this.connectTimer);
    if (!this.abort.signal.aborted) this.abort.abort(this.reason);
    const flow = { id: this.id, peer: this.record.source, record: this.record, target: this.target };
    this.summary = closeSummary(flow, this.reason, this.error, this.startedAt, {
      upstream: this.upPump?.summary(),
      downstream: this.downPump?.summary(),
    });
    this.resolveClosed(this.summary);
  }
}
