// Size: the lifecycle's transitions, one method per step of docs/design.md, stay in one file so
// the state machine reads top to bottom; everything else a flow needs is in the modules beside it.
import { EventEmitter } from 'eventemitter3';
import { RedirectError } from '../common/errors';
import { recordLoop, selfTargetLoop } from '../common/loop-guard';
import { isHostAddress } from '../platform/host-address';
import type {
  BypassDirection,
  CloseReason,
  CloseSummary,
  Endpoint,
  RedirectRecord,
  ResolvedTarget,
  TargetAddress,
} from '../common/types';
import type { ResolveResult } from '../capture/types';
import { isPromiseLike, literalTarget } from '../egress/target';
import { DeferredSink } from '../net/deferred-sink';
import type { Transport } from '../net/transport';
import type { ConnectDeferrals } from '../pipeline/context';
import { Pump } from '../pipeline/pump';
import { type BuiltFlow, buildFlow, type Chain } from './build-flow';
import { closeSummary, firstEnd } from '../pipeline/close-summary';
import { endConnections, type FlowEnding } from '../pipeline/flow-ending';
import { askResolver } from './ask-resolver';
import { dialUpstream, EgressRegistration, isFault } from './dial';
import type { DirectionOwner } from './direction-hooks';
import { Directions } from './directions';
import { asRedirectError, type Fault, middlewareFault, resolveFault, socketFault } from './faults';
import type { ConnectionHost } from './host';
import { type IdleOwner, IdleTimer } from './idle-timer';
import { advance, type ConnectionPhase, isEnding } from './phase';
import { type Wait, waitExpired } from './wait-deadline';
import { type DeadlineOwner, type DeadlineSweeper, sweeperFor } from '../common/deadlines';

export interface ConnectionEvents {
  close: [summary: CloseSummary];
}

/**
 * One redirected flow, from accept to its close summary. Its `phase` follows the lifecycle
 * of docs/design.md (lib/connection/phase.ts); dialling (dial.ts), the two directions and
 * their zero-copy wiring (directions.ts), the deadlines, the idle timer and the summary's
 * parts live in their own modules.
 */
export class Connection extends EventEmitter<ConnectionEvents> implements DirectionOwner, DeadlineOwner, IdleOwner {
  readonly id: number;
  /** Set once resolved; the 'connection' event is only emitted after that. */
  record!: RedirectRecord;
  target: TargetAddress | undefined;
  /** True once the 'connection' event was emitted for this flow (its record passed the loop check). */
  opened = false;
  phase: ConnectionPhase = 'accepted';

  private readonly host: ConnectionHost<Connection>;
  private readonly client: Transport;
  /** What a native listener reported at accept, for `resolver.resolveNative`. */
  private readonly accepted: unknown;
  private upstream: Transport | undefined;
  /** Our own egress for loop detection; only when the resolver's records can be the kernel's. */
  private egress: EgressRegistration | undefined;
  /** Made on first use of `signal`: most flows never need one. */
  private abortController: AbortController | undefined;
  private readonly startedAt = performance.now();
  /** The upstream pump alone while a deferred connect waits; both once the upstream is dialled. */
  private deferredUp: Pump | undefined;
  private directions: Directions | undefined;
  private reason: CloseReason | undefined;
  private error: RedirectError | undefined;
  /** When each side's FIN was seen (process.hrtime ns; 0: not yet): see firstEnd(). */
  private clientEndAt = 0;
  private upstreamEndAt = 0;
  /** Sockets still open: the client's, and the upstream's once dialled. */
  private openSockets = 1;
  private connected = false;
  /** The resolve, choose or connect deadline this flow waits under: one shared sweeper per length. */
  private deadline: DeadlineSweeper | undefined;
  private waiting: Wait = 'resolve';
  private connectingTo: ResolvedTarget | undefined;
  /** When connect(2) was issued, then how long the upstream took to connect (the summary's connectMs). */
  private connectStartedAt = 0;
  private connectMs: number | undefined;
  private idle: IdleTimer | undefined;
  private summaryValue: CloseSummary | undefined;
  private bypassUp = false;
  private bypassDown = false;

  constructor(
    host: ConnectionHost<Connection>,
    client: Transport,
    id: number,
    accepted?: unknown,
    /** The client as accept(2) reported it. */
    readonly peer?: Endpoint,
  ) {
    super();
    this.host = host;
    this.id = id;
    this.client = client;
    this.accepted = accepted;
    this.client.attach({
      data: (chunk) => this.upPump?.onData(chunk),
      end: () => this.sourceEnded('client'),
      error: (err) => this.fault('client', err),
      close: () => this.socketClosed(),
    });
  }

  get signal(): AbortSignal {
    if (this.abortController === undefined) {
      this.abortController = new AbortController();
      if (this.reason !== undefined) this.abortController.abort(this.error ?? this.reason);
    }
    return this.abortController.signal;
  }

  get closed(): boolean {
    return this.phase === 'closed';
  }

  /** The close summary, once closed. */
  get summary(): CloseSummary | undefined {
    return this.summaryValue;
  }

  /** Live byte counters (used by server.stats()). */
  get bytes(): { upstream: number; downstream: number } {
    return { upstream: this.upPump?.bytesRead ?? 0, downstream: this.directions?.down.bytesRead ?? 0 };
  }

  private get upPump(): Pump | undefined {
    return this.directions?.up ?? this.deferredUp;
  }

  /** Ends the connection now: RST on both sides, with this reason. */
  destroy(reason: CloseReason = 'destroyed', error?: RedirectError): void {
    this.terminate(reason, error, 'reset');
  }

  /**
   * Runs the lifecycle. Every failure becomes a close reason; a flow whose
   * resolver and target need no I/O goes from accept to connect(2) in this
   * very tick, with no promise on the way.
   */
  run(): void {
    this.phase = 'resolving';
    let answer: ResolveResult | PromiseLike<ResolveResult>;
    try {
      answer = askResolver(this.host, this.client, this.accepted, this);
    } catch (err) {
      this.fail(resolveFault(err));
      return;
    }
    if (!isPromiseLike(answer)) {
      this.resolved(answer);
      return;
    }
    // Only an asynchronous resolver needs the resolve deadline (one shared timer: lib/common/deadlines.ts).
    this.setDeadline('resolve', this.host.config.limits.resolveTimeoutMs);
    Promise.resolve(answer)
      .then(
        (result) => {
          this.clearDeadline();
          this.resolved(result);
        },
        (err: unknown) => {
          this.clearDeadline();
          this.fail(resolveFault(err));
        },
      )
      .catch((err: unknown) => this.internalError(err));
  }

  /** run() turns every failure into a close reason; anything thrown past it is our bug. Keep serving. */
  internalError(err: unknown): void {
    this.destroy(
      'destroyed',
      new RedirectError('ERR_REDIRECT_INTERNAL', `internal error: ${String(err)}`, { cause: err }),
    );
  }

  /** The record is known: check for loops, build the chain, pick the target. */
  private resolved(resolved: ResolveResult): void {
    // Ended meanwhile (the resolve deadline, destroy()).
    if (isEnding(this.phase)) return;
    const { config } = this.host;
    this.record = resolved.record;
    const loop = recordLoop(resolved.record, config.id, this.host.egressEndpoints);
    if (loop) {
      this.terminate('loop-detected', new RedirectError('ERR_REDIRECT_LOOP_DETECTED', loop), 'reset');
      return;
    }
    this.phase = 'building';
    this.opened = true;
    this.host.opened(this);

    let built: BuiltFlow;
    try {
      built = buildFlow(config, this, resolved, (direction) => this.requestBypass(direction));
    } catch (err) {
      this.terminate('middleware-error', asRedirectError(err, 'ERR_REDIRECT_MIDDLEWARE', 'middleware failed'), 'reset');
      return;
    }
    if (isEnding(this.phase)) return;
    const { chain, deferrals, target, literal } = built;
    if (deferrals !== undefined && deferrals.pending > 0) {
      this.choose(deferrals, target, chain, resolved.leftover);
      return;
    }
    // Every deferral was released while the chain was built: a release may still have named the target.
    const routed = deferrals?.routed;
    this.target = routed ?? target;
    if (literal && routed === undefined) this.targetResolved(literal, chain, resolved.leftover);
    else this.lookUpTarget(this.target, chain, resolved.leftover);
  }

  /** ctx.deferConnect(): the upstream pump runs into a queue until the middleware chooses. */
  private choose(deferrals: ConnectDeferrals, fallback: TargetAddress, chain: Chain, leftover?: Buffer): void {
    this.phase = 'choosing';
    const sink = new DeferredSink();
    const wait = deferrals.wait();
    this.deferredUp = new Pump(this.client, sink, chain.upstream, this.host.config.limits.highWaterMark, {
      activity: () => this.noteActivity(),
      failed: (err) => this.middlewareFailed(err),
      finished: () => this.directionFinished(),
    });
    this.setDeadline('choose', this.host.config.limits.connectTimeoutMs);
    this.deferredUp.start(leftover);
    wait
      .then((failure) => {
        this.clearDeadline();
        if (isEnding(this.phase)) return;
        // A release named a bad target: end now rather than at the deadline.
        if (failure) return this.terminate('middleware-error', failure, 'reset');
        this.target = deferrals.routed ?? fallback;
        this.lookUpTarget(this.target, chain, undefined, sink);
      })
      .catch((err: unknown) => this.internalError(err));
  }

  /** An IP literal (the usual case) needs no lookup, so no promise either. */
  private lookUpTarget(target: TargetAddress, chain: Chain, leftover?: Buffer, deferred?: DeferredSink): void {
    const unreachable = (err: unknown): void =>
      this.terminate(
        'upstream-unreachable',
        asRedirectError(err, 'ERR_REDIRECT_UPSTREAM_UNREACHABLE', `cannot look up ${target.host}`),
        'reset',
      );
    let literal: ResolvedTarget | Promise<ResolvedTarget>;
    try {
      literal = literalTarget(target);
    } catch (err) {
      unreachable(err);
      return;
    }
    if (!isPromiseLike(literal)) {
      this.targetResolved(literal, chain, leftover, deferred);
      return;
    }
    literal
      .then((found) => {
        if (!isEnding(this.phase)) this.targetResolved(found, chain, leftover, deferred);
      }, unreachable)
      .catch((err: unknown) => this.internalError(err));
  }

  private targetResolved(target: ResolvedTarget, chain: Chain, leftover?: Buffer, deferred?: DeferredSink): void {
    const selfLoop = selfTargetLoop(target, this.host.listenAddress, isHostAddress);
    if (selfLoop) {
      this.terminate('loop-detected', new RedirectError('ERR_REDIRECT_LOOP_DETECTED', selfLoop), 'reset');
      return;
    }
    this.connect(target, chain, leftover, deferred);
  }

  /** Dials the upstream and starts both directions; the client's bytes may flow before the connect completes. */
  private connect(target: ResolvedTarget, chain: Chain, leftover?: Buffer, deferred?: DeferredSink): void {
    this.phase = 'connecting';
    const registry = this.host.egressEndpoints;
    if (registry !== undefined) this.egress = new EgressRegistration(registry, this);
    this.connectStartedAt = performance.now();
    const upstream = dialUpstream(
      this.host,
      this.record,
      target,
      {
        data: (chunk) => this.directions?.down.onData(chunk),
        end: () => this.sourceEnded('upstream'),
        error: (err) => this.fault('upstream', err),
        close: () => {
          this.egress?.release();
          this.socketClosed();
        },
        connected: () => {
          this.connected = true;
          this.connectMs = performance.now() - this.connectStartedAt;
          this.phase = advance(this.phase, 'open');
          this.clearDeadline();
        },
      },
      this.egress,
    );
    if (isFault(upstream)) {
      this.fail(upstream);
      return;
    }
    this.upstream = upstream.transport;
    this.openSockets++;
    this.setDeadline('connect', this.host.config.limits.connectTimeoutMs, target);
    if (upstream.fault) {
      this.fail(upstream.fault);
      return;
    }
    // A deferred connect already runs the upstream pump into a queue: hand it the socket.
    deferred?.connectTo(upstream.transport);
    const { config } = this.host;
    this.directions = new Directions(this, config, this.client, upstream, chain, this.deferredUp);
    this.applyBypass();
    if (config.limits.idleTimeoutMs > 0) {
      this.idle = new IdleTimer(config.limits.idleTimeoutMs, this);
      this.idle.arm();
    }
    if (!deferred) this.directions.up.start(leftover);
    this.directions.down.start();
  }

  /** ctx.bypass(): applied now, or as soon as the pumps exist. */
  private requestBypass(direction: BypassDirection): void {
    if (direction !== 'upstream' && direction !== 'downstream' && direction !== 'both') {
      throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', "bypass(direction): 'upstream', 'downstream' or 'both'");
    }
    if (direction !== 'downstream') this.bypassUp = true;
    if (direction !== 'upstream') this.bypassDown = true;
    this.applyBypass();
  }

  private applyBypass(): void {
    if (this.bypassUp) this.directions?.up.bypass();
    if (this.bypassDown) this.directions?.down.bypass();
  }

  /** @internal `side`'s FIN was seen at `atNs` (process.hrtime's clock); see EndOrder. */
  noteEnd(side: 'client' | 'upstream', atNs: number): void {
    if (side === 'client') {
      if (this.clientEndAt === 0 || atNs < this.clientEndAt) this.clientEndAt = atNs;
    } else if (this.upstreamEndAt === 0 || atNs < this.upstreamEndAt) this.upstreamEndAt = atNs;
  }

  /** @internal Bytes moved: only the idle timer reads the time. */
  noteActivity(): void {
    this.idle?.activity();
  }

  /** @internal A direction sent its FIN after everything its chain emitted. */
  directionFinished(): void {
    this.directions?.finished();
  }

  private sourceEnded(side: 'client' | 'upstream'): void {
    this.noteEnd(side, Number(process.hrtime.bigint()));
    if (side === 'client') this.upPump?.onSourceEnd();
    else this.directions?.down.onSourceEnd();
  }

  /** @internal */
  fault(side: 'client' | 'upstream', err: Error): void {
    if (this.phase === 'closed') return;
    this.fail(socketFault(side, err, this.connected));
  }

  /** @internal A chain errored: `middleware-error` with RST, or the ending its code names (lib/connection/faults.ts). */
  middlewareFailed(err: RedirectError): void {
    const fault = middlewareFault(err);
    this.terminate(fault.reason, fault.error, fault.how);
  }

  private fail(fault: Fault): void {
    this.terminate(fault.reason, fault.error, 'reset');
  }

  /** Ends the flow for a reason; the first reason wins. */
  private terminate(reason: CloseReason, error: RedirectError | undefined, how: FlowEnding): void {
    if (this.reason === undefined) {
      this.reason = reason;
      this.error = error;
    }
    this.phase = advance(this.phase, 'closing');
    this.stopAll();
    endConnections(how, this.client, this.upstream);
    this.abortController?.abort(error ?? reason);
    this.maybeFinish();
  }

  private stopAll(): void {
    this.upPump?.stop();
    this.directions?.down.stop();
    this.clearDeadline();
    this.idle?.clear();
  }

  private socketClosed(): void {
    this.openSockets--;
    this.maybeFinish();
  }

  /** Both sockets closed: the summary, once. */
  private maybeFinish(): void {
    if (this.phase === 'closed' || this.openSockets > 0) return;
    // A side that closed without a fault and without both ends seen was destroyed under us.
    if (this.reason === undefined) {
      this.reason = firstEnd(this.clientEndAt, this.upstreamEndAt) ?? 'destroyed';
      this.upstream?.destroy();
    }
    this.phase = 'closed';
    this.stopAll();
    this.abortController?.abort(this.reason);
    const summary = closeSummary(
      this,
      this.reason,
      this.error,
      this.startedAt,
      {
        upstream: this.upPump?.summary(),
        downstream: this.directions?.down.summary(),
      },
      this.connectMs,
    );
    this.summaryValue = summary;
    this.host.closed(this, summary);
    try {
      this.emit('close', summary);
    } catch (err) {
      // A listener's bug must not take the server down; surface it like Node would, asynchronously.
      process.nextTick(() => {
        throw err;
      });
    }
  }

  /** @internal Spliced bytes are reported with a lag: the idle timer asks before deciding. */
  pollSpliced(): void {
    this.directions?.up.pollSpliced();
    this.directions?.down.pollSpliced();
  }

  /** @internal */
  idleExpired(ms: number): void {
    this.terminate(
      'idle-timeout',
      new RedirectError('ERR_REDIRECT_IDLE_TIMEOUT', `no byte either way for ${ms} ms`),
      'destroy',
    );
  }

  private setDeadline(wait: Wait, ms: number, to?: ResolvedTarget): void {
    this.clearDeadline();
    this.deadline = sweeperFor(ms);
    this.waiting = wait;
    this.connectingTo = to;
    this.deadline.set(this);
  }

  private clearDeadline(): void {
    if (this.deadline === undefined) return;
    this.deadline.clear(this);
    this.deadline = undefined;
    this.connectingTo = undefined;
  }

  /** @internal Called by the shared sweeper when the deadline passed. */
  deadlineExpired(): void {
    const ms = this.deadline?.ms ?? 0;
    const to = this.connectingTo;
    this.deadline = undefined;
    this.connectingTo = undefined;
    if (this.reason !== undefined) return;
    const { reason, error } = waitExpired(this.waiting, ms, to);
    this.terminate(reason, error, 'reset');
  }
}
