import { Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { buildChain } from '../pipeline/compose';
import { ConnectDeferrals, createContext } from '../pipeline/context';
import { type DeadlineSweeper, sweeperFor } from '../common/deadlines';
import { DeferredSink } from '../net/deferred-sink';
import { RedirectError } from '../common/errors';
import { asRedirectError, egressFault, type Fault, middlewareFault, resolveFault, socketFault } from './faults';
import { flowKey, recordLoop, selfTargetLoop } from '../common/loop-guard';
import type { ServerConfig } from '../config/options';
import { Pump, type PumpHooks } from '../pipeline/pump';
import { isPromiseLike, literalTarget } from '../egress/target';
import { SocketTransport } from '../net/socket-transport';
import type { Transport } from '../net/transport';
import { closeAfterRelay, ZeroCopyLink } from '../zero-copy/link';
import { zeroCopyEngine } from '../zero-copy/engine';
import type {
  BypassDirection,
  CloseReason,
  CloseSummary,
  DataPath,
  DirectionSummary,
  Endpoint,
  RedirectRecord,
  ResolvedTarget,
  TargetAddress,
} from '../common/types';
import type { EgressPlugin } from '../egress/types';
import type { ResolveResult } from '../capture/types';

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly config: ServerConfig;
  readonly listenAddress: Endpoint | undefined;
  /**
   * `local>remote` of our own live upstream sockets, for loop detection;
   * undefined when the resolver never yields kernel records (nothing to match).
   */
  readonly egressEndpoints: Set<string> | undefined;
  /** The egress plugin that makes outbound sockets, if any. */
  readonly socketMaker: (EgressPlugin & Required<Pick<EgressPlugin, 'createSocket'>>) | undefined;
  opened(conn: Connection): void;
  closed(conn: Connection, summary: CloseSummary): void;
  /** `transport: 'native'` (Windows WFP): makes the upstream, records set before connect. */
  connectNative?(target: ResolvedTarget, record: RedirectRecord): Transport & { connected(): Promise<void> };
}

export interface ConnectionEvents {
  close: [summary: CloseSummary];
}

/** One redirected flow, from accept to its close summary (lifecycle in docs/design.md). */
export class Connection extends EventEmitter<ConnectionEvents> {
  readonly id: number;
  /** Set once resolved; the 'connection' event is only emitted after that. */
  record!: RedirectRecord;
  target: TargetAddress | undefined;
  /** True once the 'connection' event was emitted for this flow. */
  opened = false;

  private readonly host: ConnectionHost;
  private readonly client: Transport;
  /** The client's net.Socket; undefined for a native transport (`transport: 'native'`). */
  private readonly clientSocket: Socket | undefined;
  /** What a native listener reported at accept, for `resolver.resolveNative`. */
  private readonly accepted: unknown;
  private upstreamTransport: Transport | undefined;
  private egressKey: string | undefined;
  /** Made on first use of `signal`: most flows never need one. */
  private abortController: AbortController | undefined;
  private readonly startedAt = performance.now();
  private upPump: Pump | undefined;
  private downPump: Pump | undefined;
  private reason: CloseReason | undefined;
  private error: RedirectError | undefined;
  /** When each side's FIN was seen (process.hrtime ns): the earlier one closed first. */
  private clientEndAt = 0;
  private upstreamEndAt = 0;
  private clientClosed = false;
  private upstreamClosed = true;
  private connected = false;
  private done = false;
  /** The resolve or connect deadline this flow waits under (lib/common/deadlines.ts), if any. */
  private deadline: DeadlineSweeper | undefined;
  private deadlineKind = 0;
  private connectingTo: ResolvedTarget | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastActivity = 0;
  private summaryValue: CloseSummary | undefined;
  private bypassUp = false;
  private bypassDown = false;

  constructor(
    host: ConnectionHost,
    socket: Socket | Transport,
    id: number,
    accepted?: unknown,
    /** The client as accept(2) reported it. */
    readonly peer?: Endpoint,
  ) {
    super();
    this.host = host;
    this.id = id;
    this.clientSocket = socket instanceof Socket ? socket : undefined;
    this.client = socket instanceof Socket ? new SocketTransport(socket) : socket;
    this.accepted = accepted;
    this.client.attach({
      data: (chunk) => this.upPump?.onData(chunk),
      end: () => this.sourceEnded('client'),
      error: (err) => this.fault('client', err),
      close: () => {
        this.clientClosed = true;
        this.maybeFinish();
      },
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
    return this.done;
  }

  /** The close summary, once closed. */
  get summary(): CloseSummary | undefined {
    return this.summaryValue;
  }

  /** Live byte counters (used by server.stats()). */
  get bytes(): { upstream: number; downstream: number } {
    return { upstream: this.upPump?.bytesRead ?? 0, downstream: this.downPump?.bytesRead ?? 0 };
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
    let answer: ResolveResult | PromiseLike<ResolveResult>;
    try {
      answer = this.resolveRecord();
    } catch (err) {
      this.fail(resolveFault(err));
      return;
    }
    if (!isPromiseLike(answer)) {
      this.resolved(answer);
      return;
    }
    // Only an asynchronous resolver needs the resolve deadline (one shared timer: lib/common/deadlines.ts).
    this.setDeadline(DEADLINE_RESOLVE, this.host.config.limits.resolveTimeoutMs);
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
    // Ended meanwhile (the resolve deadline, destroy()): reason is set before done.
    if (this.reason !== undefined) return;
    const { config } = this.host;
    this.record = resolved.record;
    const loop = recordLoop(resolved.record, config.id, this.host.egressEndpoints);
    if (loop) {
      this.terminate('loop-detected', new RedirectError('ERR_REDIRECT_LOOP_DETECTED', loop), 'reset');
      return;
    }
    this.opened = true;
    this.host.opened(this);

    let chain = NO_CHAIN;
    let deferrals: ConnectDeferrals | undefined;
    let target: TargetAddress;
    let ownDestination: ResolvedTarget | undefined;
    try {
      // No middleware: nothing can use (or keep) a context, or defer the connect.
      if (config.middleware.length > 0) {
        deferrals = new ConnectDeferrals();
        const ctx = createContext(this, config.id, (direction) => this.requestBypass(direction), deferrals);
        chain = buildChain(config.middleware, ctx);
        deferrals.seal();
        // A release that named a bad target while the chain was built.
        if (deferrals.failure) throw deferrals.failure;
      }
      const chosen = resolved.target ?? config.target?.(this.record);
      if (chosen === undefined) {
        // The record's own destination: already a normalised IP literal, no lookup needed.
        const { address, port, family } = this.record.destination;
        target = { host: address, port };
        ownDestination = { host: address, port, family };
      } else {
        target = chosen;
      }
    } catch (err) {
      deferrals?.seal();
      this.terminate('middleware-error', asRedirectError(err, 'ERR_REDIRECT_MIDDLEWARE', 'middleware failed'), 'reset');
      return;
    }
    if (this.done) return;
    if (deferrals === undefined || deferrals.pending === 0) {
      this.target = target;
      if (ownDestination) this.targetResolved(ownDestination, chain, resolved.leftover, undefined);
      else this.lookUpTarget(target, chain, resolved.leftover, undefined);
      return;
    }
    // ctx.deferConnect(): the upstream pump runs into a queue until the middleware chooses.
    const sink = new DeferredSink();
    const wait = deferrals.wait();
    this.upPump = new Pump(this.client, sink, chain.upstream, config.limits.highWaterMark, {
      activity: () => {
        this.lastActivity = performance.now();
      },
      failed: (err) => this.middlewareFailed(err),
      finished: () => this.directionFinished(),
    });
    this.setDeadline(DEADLINE_CHOOSE, config.limits.connectTimeoutMs);
    this.upPump.start(resolved.leftover);
    const chosen = deferrals;
    wait
      .then((failure) => {
        this.clearDeadline();
        if (this.done) return;
        // A release named a bad target: end now rather than at the deadline.
        if (failure) return this.terminate('middleware-error', failure, 'reset');
        this.target = chosen.routed ?? target;
        this.lookUpTarget(this.target, chain, undefined, sink);
      })
      .catch((err: unknown) => this.internalError(err));
  }

  /** An IP literal (the usual case) needs no lookup, so no promise either. */
  private lookUpTarget(
    target: TargetAddress,
    chain: ReturnType<typeof buildChain>,
    leftover: Buffer | undefined,
    deferred: DeferredSink | undefined,
  ): void {
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
        if (!this.done) this.targetResolved(found, chain, leftover, deferred);
      }, unreachable)
      .catch((err: unknown) => this.internalError(err));
  }

  private targetResolved(
    target: ResolvedTarget,
    chain: ReturnType<typeof buildChain>,
    leftover: Buffer | undefined,
    deferred: DeferredSink | undefined,
  ): void {
    const selfLoop = selfTargetLoop(target, this.host.listenAddress);
    if (selfLoop) {
      this.terminate('loop-detected', new RedirectError('ERR_REDIRECT_LOOP_DETECTED', selfLoop), 'reset');
      return;
    }
    this.connectUpstream(target, chain, leftover, deferred);
  }

  /** The resolver's answer: the result itself, or a promise (then run() arms the resolve deadline). */
  private resolveRecord(): ResolveResult | Promise<ResolveResult> {
    const { resolver } = this.host.config;
    const self = this;
    return this.clientSocket === undefined && resolver.resolveNative
      ? resolver.resolveNative({
          transport: this.client,
          accepted: this.accepted,
          listenAddress: this.host.listenAddress,
          get signal() {
            return self.signal;
          },
        })
      : resolver.resolve({
          socket: this.clientSocket as Socket,
          peer: this.peer,
          listenAddress: this.host.listenAddress,
          get signal() {
            return self.signal;
          },
        });
  }

  private connectUpstream(
    target: ResolvedTarget,
    chain: ReturnType<typeof buildChain>,
    leftover?: Buffer,
    deferred?: DeferredSink,
  ): void {
    const { config } = this.host;
    let socket: Socket | undefined;
    let native: ReturnType<NonNullable<ConnectionHost['connectNative']>> | undefined;
    try {
      const maker = this.host.socketMaker;
      if (this.host.connectNative) native = this.host.connectNative(target, this.record);
      else {
        socket = maker ? maker.createSocket(target, this.record) : new Socket({ allowHalfOpen: true });
        // A relay must not add Nagle delays of its own; the client's segments are already sized.
        // (Node applies it once connected; `noDelay` among connect()'s options is ignored.)
        socket.setNoDelay(true);
      }
    } catch (err) {
      this.fail(egressFault(err, 'cannot create the outbound socket'));
      return;
    }
    const upstream = native ?? new SocketTransport(socket as Socket);
    this.upstreamTransport = upstream;
    this.upstreamClosed = false;
    upstream.attach({
      data: (chunk) => this.downPump?.onData(chunk),
      end: () => this.sourceEnded('upstream'),
      error: (err) => this.fault('upstream', err),
      close: () => {
        this.upstreamClosed = true;
        if (this.egressKey) this.host.egressEndpoints?.delete(this.egressKey);
        this.maybeFinish();
      },
    });
    // A failed connect arrives as the transport's error, like a socket's.
    native?.connected().then(
      () => this.upstreamConnected(),
      () => {},
    );
    // Only a server whose records can be the kernel's remembers its egress (see recordLoop).
    const remember = socket !== undefined && this.host.egressEndpoints !== undefined;
    socket?.once('connect', () => {
      this.upstreamConnected();
      if (remember) this.registerEgress(upstream, target);
    });
    this.connectingTo = target;
    this.setDeadline(DEADLINE_CONNECT, config.limits.connectTimeoutMs);
    // Same tick as the socket's creation, to an IP literal: no path can swap in another socket.
    socket?.connect({
      host: target.host,
      port: target.port,
      family: target.family === 'IPv6' ? 6 : 4,
      autoSelectFamily: false,
      localAddress: config.localAddress,
    });
    // Node issues connect(2) on the next tick; right after it the kernel has
    // bound our local port, and the SYN's own accept (if it loops back to us)
    // cannot be handled before this tick ends. So loop detection is exact.
    if (remember) process.nextTick(() => this.registerEgress(upstream, target));
    try {
      for (const plugin of config.egress) {
        const preamble = plugin.preamble?.(this.record, target);
        if (preamble && preamble.length > 0) socket ? socket.write(preamble) : upstream.write(preamble, () => {});
      }
    } catch (err) {
      this.fail(egressFault(err));
      return;
    }

    const hwm = config.limits.highWaterMark;
    // A deferred connect already runs the upstream pump into a queue: hand it the socket.
    if (deferred) deferred.connectTo(upstream);
    // zeroCopy 'auto': a direction without a chain (or bypassed) is handed to the splice engine.
    const engine = config.zeroCopy === 'auto' ? zeroCopyEngine() : undefined;
    const sockets = engine && socket && this.clientSocket ? { client: this.clientSocket, up: socket } : undefined;
    const upLink = engine && sockets && !deferred ? new ZeroCopyLink(engine, sockets.client, sockets.up) : undefined;
    const downLink = engine && sockets ? new ZeroCopyLink(engine, sockets.up, sockets.client) : undefined;
    if (upLink && downLink) upLink.pair(downLink);
    if (!deferred) {
      this.upPump = new Pump(
        this.client,
        upstream,
        chain.upstream,
        hwm,
        new DirectionHooks(this, 'client'),
        upLink,
        config.limits.maxReadBytes,
      );
    }
    this.downPump = new Pump(
      upstream,
      this.client,
      chain.downstream,
      hwm,
      new DirectionHooks(this, 'upstream'),
      downLink,
      config.limits.maxReadBytes,
    );
    this.applyBypass();
    this.armIdleTimer();
    if (!deferred) this.upPump?.start(leftover);
    this.downPump.start();
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
    if (this.bypassUp) this.upPump?.bypass();
    if (this.bypassDown) this.downPump?.bypass();
  }

  /**
   * @internal `side`'s FIN was seen at `atNs` (process.hrtime's clock). The
   * splice engine reports its EOFs through a queue, so a FIN the engine read
   * first can reach us after the other side's FIN that it caused: the
   * timestamps, not the order of arrival, say who closed first.
   */
  noteEnd(side: 'client' | 'upstream', atNs: number): void {
    if (side === 'client') {
      if (this.clientEndAt === 0 || atNs < this.clientEndAt) this.clientEndAt = atNs;
    } else if (this.upstreamEndAt === 0 || atNs < this.upstreamEndAt) this.upstreamEndAt = atNs;
  }

  /** The graceful reason: the side whose FIN came first. */
  private get firstEnd(): CloseReason | undefined {
    const client = this.clientEndAt;
    const upstream = this.upstreamEndAt;
    if (client === 0 && upstream === 0) return undefined;
    if (upstream === 0 || (client !== 0 && client <= upstream)) return 'client-end';
    return 'upstream-end';
  }

  /** @internal Bytes moved: only the idle timer reads the time. */
  noteActivity(): void {
    if (this.idleTimer !== undefined) this.lastActivity = performance.now();
  }

  /**
   * Both directions sent their FIN. Node closes a socket by itself only after
   * seeing its FIN; a source the engine read never shows one, so close here.
   */
  /** @internal */
  directionFinished(): void {
    const up = this.upPump;
    const down = this.downPump;
    if (!up?.ended || !down?.ended || (!up.handedOff && !down.handedOff)) return;
    if (this.clientSocket) closeAfterRelay(this.clientSocket);
    if (this.upstreamTransport instanceof SocketTransport) closeAfterRelay(this.upstreamTransport.socket);
  }

  private upstreamConnected(): void {
    this.connected = true;
    this.clearDeadline();
  }

  /** Remembers `local>remote` of our outbound socket, to recognise it if it comes back to us. */
  private registerEgress(upstream: Transport, to: ResolvedTarget): void {
    const registry = this.host.egressEndpoints;
    if (this.egressKey !== undefined || this.done || registry === undefined) return;
    const local = upstream instanceof SocketTransport ? upstream.boundEndpoint() : undefined;
    if (local === undefined || local.port === 0) return; // not bound yet: 'connect' will register it
    this.egressKey = flowKey(local, { address: to.host, port: to.port, family: to.family });
    registry.add(this.egressKey);
  }

  private sourceEnded(side: 'client' | 'upstream'): void {
    this.noteEnd(side, Number(process.hrtime.bigint()));
    if (side === 'client') this.upPump?.onSourceEnd();
    else this.downPump?.onSourceEnd();
  }

  /** @internal */
  fault(side: 'client' | 'upstream', err: Error): void {
    if (this.done) return;
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
  private terminate(reason: CloseReason, error: RedirectError | undefined, how: 'reset' | 'destroy' | 'close'): void {
    if (this.reason === undefined) {
      this.reason = reason;
      this.error = error;
    }
    this.upPump?.stop();
    this.downPump?.stop();
    this.clearTimers();
    if (how === 'reset') {
      this.client.reset();
      this.upstreamTransport?.reset();
    } else if (how === 'close') {
      closeWhenFlushed(this.client);
      if (this.upstreamTransport) closeWhenFlushed(this.upstreamTransport);
    } else {
      this.client.destroy();
      this.upstreamTransport?.destroy();
    }
    this.abortController?.abort(error ?? reason);
    this.maybeFinish();
  }

  /** Graceful-path close detection: both sockets closed. */
  private maybeFinish(): void {
    if (this.done || !this.clientClosed || !this.upstreamClosed) return;
    // A side that closed without a fault and without both ends seen was destroyed under us.
    if (this.reason === undefined) {
      this.reason = this.firstEnd ?? 'destroyed';
      this.upPump?.stop();
      this.downPump?.stop();
      this.upstreamTransport?.destroy();
    }
    this.done = true;
    this.clearTimers();
    this.abortController?.abort(this.reason);
    const up = this.upPump?.summary() ?? EMPTY_DIRECTION;
    const down = this.downPump?.summary() ?? EMPTY_DIRECTION;
    const summary: CloseSummary = {
      id: this.id,
      peer: this.peer,
      record: this.record as RedirectRecord | undefined,
      target: this.target,
      reason: this.reason,
      error: this.error,
      durationMs: performance.now() - this.startedAt,
      upstream: up,
      downstream: down,
      path: flowPath(up.path, down.path),
    };
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

  private armIdleTimer(): void {
    const idle = this.host.config.limits.idleTimeoutMs;
    if (idle <= 0) return;
    this.lastActivity = performance.now();
    const check = (): void => {
      // Spliced bytes are reported with a lag: ask the engine before deciding.
      this.upPump?.pollSpliced();
      this.downPump?.pollSpliced();
      const quiet = performance.now() - this.lastActivity;
      if (quiet >= idle) {
        this.terminate(
          'idle-timeout',
          new RedirectError('ERR_REDIRECT_IDLE_TIMEOUT', `no byte either way for ${idle} ms`),
          'destroy',
        );
      } else {
        this.idleTimer = setTimeout(check, idle - quiet + 1);
      }
    };
    this.idleTimer = setTimeout(check, idle);
  }

  private setDeadline(kind: number, ms: number): void {
    this.deadline = sweeperFor(ms);
    this.deadlineKind = kind;
    this.deadline.set(this);
  }

  private clearDeadline(): void {
    if (this.deadline === undefined) return;
    this.deadline.clear(this);
    this.deadline = undefined;
    this.connectingTo = undefined;
  }

  /** Called by the shared sweeper when the resolve or connect deadline passed. */
  deadlineExpired(): void {
    const kind = this.deadlineKind;
    const ms = this.deadline?.ms ?? 0;
    const to = this.connectingTo;
    this.deadline = undefined;
    this.connectingTo = undefined;
    if (this.reason !== undefined) return;
    if (kind === DEADLINE_RESOLVE) {
      this.terminate(
        'resolve-failed',
        new RedirectError('ERR_REDIRECT_RESOLVE_TIMEOUT', `no redirect record within ${ms} ms`),
        'reset',
      );
    } else if (kind === DEADLINE_CHOOSE) {
      this.terminate(
        'connect-timeout',
        new RedirectError('ERR_REDIRECT_CONNECT_TIMEOUT', `no upstream target was chosen within ${ms} ms`),
        'reset',
      );
    } else if (!this.connected) {
      this.terminate(
        'connect-timeout',
        new RedirectError('ERR_REDIRECT_CONNECT_TIMEOUT', `no connection to ${to?.host}:${to?.port} within ${ms} ms`),
        'reset',
      );
    }
  }

  private clearTimers(): void {
    this.clearDeadline();
    clearTimeout(this.idleTimer);
  }
}

/** A pump's hooks into its connection: one object per direction, with no closures. */
class DirectionHooks implements PumpHooks {
  constructor(
    private readonly conn: Connection,
    /** The side this direction reads from. */
    private readonly side: 'client' | 'upstream',
  ) {}

  activity(): void {
    this.conn.noteActivity();
  }

  failed(err: RedirectError): void {
    this.conn.middlewareFailed(err);
  }

  finished(): void {
    this.conn.directionFinished();
  }

  sourceEnded(atNs: number): void {
    this.conn.noteEnd(this.side, atNs);
  }

  relayFailed(err: Error, which: 'source' | 'sink'): void {
    const other = this.side === 'client' ? 'upstream' : 'client';
    this.conn.fault(which === 'source' ? this.side : other, err);
  }
}

/**
 * close(2) once the kernel has taken every byte written: the peer gets them, then FIN (or RST if
 * it sent bytes we never read, as with any close). An empty write's callback runs after the rest.
 */
function closeWhenFlushed(transport: Transport): void {
  if (transport.destroyed) return;
  if (transport.writableLength === 0) transport.destroy();
  else transport.write(EMPTY, () => transport.destroy());
}

const EMPTY = Buffer.alloc(0);

/** The flow's path from its two directions': a direction that carried nothing does not count. */
function flowPath(up: DataPath | 'mixed', down: DataPath | 'mixed'): DataPath | 'mixed' {
  if (up === 'none') return down;
  if (down === 'none' || down === up) return up;
  return 'mixed';
}

const DEADLINE_RESOLVE = 1;
/** deferConnect(): waiting for the middleware to choose the target. */
const DEADLINE_CHOOSE = 2;
const DEADLINE_CONNECT = 3;

/** The chain of a server without middleware: both directions relay raw. */
const NO_CHAIN: ReturnType<typeof buildChain> = Object.freeze({});

export const EMPTY_DIRECTION: DirectionSummary = Object.freeze({
  bytesRead: 0,
  reads: 0,
  bytesWritten: 0,
  peakBuffered: 0,
  pauses: 0,
  path: 'none' as const,
  zeroCopyBytes: 0,
});
