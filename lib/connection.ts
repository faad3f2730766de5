import { lookup } from 'node:dns/promises';
import { isIP, Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { buildChain } from './compose';
import { DeferredSink } from './deferred-sink';
import { errnoOf, RedirectError } from './errors';
import type { ServerConfig } from './options';
import { Pump, type PumpHooks } from './pump';
import { endpointKey, normaliseAddress } from './record';
import { SocketTransport, type Transport } from './transport';
import { closeAfterRelay, ZeroCopyLink, zeroCopyEngine } from './zero-copy';
import type {
  BypassDirection,
  CloseReason,
  CloseSummary,
  ConnectionContext,
  Endpoint,
  RedirectRecord,
  ResolvedTarget,
  ResolveResult,
  TargetAddress,
} from './types';

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly config: ServerConfig;
  readonly listenAddress: Endpoint | undefined;
  /** `local>remote` of our own live upstream sockets, for loop detection. */
  readonly egressEndpoints: Set<string>;
  opened(conn: Connection): void;
  closed(conn: Connection, summary: CloseSummary): void;
}

export interface ConnectionEvents {
  close: [summary: CloseSummary];
}

const RESET_ERRNOS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
const UNREACHABLE_ERRNOS = new Set([
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENETDOWN',
  'EHOSTDOWN',
  'ETIMEDOUT',
]);

/** One redirected flow, from accept to its close summary (lifecycle in docs/design.md). */
export class Connection extends EventEmitter<ConnectionEvents> {
  readonly id: number;
  /** Set once resolved; the 'connection' event is only emitted after that. */
  record!: RedirectRecord;
  target: TargetAddress | undefined;
  /** True once the 'connection' event was emitted for this flow. */
  opened = false;

  private readonly host: ConnectionHost;
  private readonly client: SocketTransport;
  private upstreamTransport: Transport | undefined;
  private egressKey: string | undefined;
  /** Made on first use of `signal`: most flows never need one. */
  private abortController: AbortController | undefined;
  private readonly startedAt = performance.now();
  private upPump: Pump | undefined;
  private downPump: Pump | undefined;
  private reason: CloseReason | undefined;
  private error: RedirectError | undefined;
  private firstEnd: CloseReason | undefined;
  private clientClosed = false;
  private upstreamClosed = true;
  private connected = false;
  private done = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastActivity = 0;
  private summaryValue: CloseSummary | undefined;
  private bypassUp = false;
  private bypassDown = false;

  constructor(host: ConnectionHost, socket: Socket, id: number) {
    super();
    this.host = host;
    this.id = id;
    this.client = new SocketTransport(socket);
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

  /** Runs the lifecycle; never throws (every failure becomes a close reason). */
  async run(): Promise<void> {
    const { config } = this.host;
    let resolved: ResolveResult;
    try {
      resolved = await this.resolveRecord();
    } catch (err) {
      const e = asRedirectError(err, 'ERR_REDIRECT_RESOLVE_FAILED', 'could not find the redirect record');
      const reason: CloseReason =
        e.code === 'ERR_REDIRECT_NOT_REDIRECTED'
          ? 'not-redirected'
          : e.code === 'ERR_REDIRECT_LOOP_DETECTED'
            ? 'loop-detected'
            : 'resolve-failed';
      this.terminate(reason, e, 'reset');
      return;
    }
    if (this.done) return;
    this.record = resolved.record;

    const loop = this.detectLoop(resolved.record);
    if (loop) {
      this.terminate('loop-detected', new RedirectError('ERR_REDIRECT_LOOP_DETECTED', loop), 'reset');
      return;
    }
    this.opened = true;
    this.host.opened(this);

    // ctx.deferConnect(): the connect waits until every deferral is released.
    let building = true;
    let deferrals = 0;
    let routed: TargetAddress | undefined;
    let released: () => void = () => {};
    const conn = this;
    const ctx: ConnectionContext = {
      id: this.id,
      record: this.record,
      get signal() {
        return conn.signal;
      },
      state: new Map(),
      proxyId: config.id,
      bypass: (direction) => this.requestBypass(direction ?? 'both'),
      deferConnect: () => {
        if (!building) {
          throw new RedirectError(
            'ERR_REDIRECT_SERVER_STATE',
            'deferConnect() is only allowed while the chain is built',
          );
        }
        deferrals++;
        let done = false;
        return (to?: TargetAddress) => {
          if (done) return;
          if (to !== undefined) routed = checkTarget(to);
          done = true;
          if (--deferrals === 0) released();
        };
      },
    };
    let chain: ReturnType<typeof buildChain>;
    let target: TargetAddress;
    try {
      chain = buildChain(config.middleware, ctx);
      building = false;
      target = resolved.target ??
        config.target?.(this.record) ?? {
          host: this.record.destination.address,
          port: this.record.destination.port,
        };
    } catch (err) {
      this.terminate('middleware-error', asRedirectError(err, 'ERR_REDIRECT_MIDDLEWARE', 'middleware failed'), 'reset');
      return;
    }
    building = false;
    if (this.done) return;
    let deferred: DeferredSink | undefined;
    if (deferrals > 0) {
      deferred = new DeferredSink();
      const sink = deferred;
      const wait = new Promise<void>((resolve) => {
        released = resolve;
      });
      this.upPump = new Pump(this.client, sink, chain.upstream, config.limits.highWaterMark, {
        activity: () => {
          this.lastActivity = performance.now();
        },
        failed: (err) => this.terminate('middleware-error', err, 'reset'),
        finished: () => this.directionFinished(),
      });
      this.connectTimer = setTimeout(() => {
        this.terminate(
          'connect-timeout',
          new RedirectError(
            'ERR_REDIRECT_CONNECT_TIMEOUT',
            `no upstream target was chosen within ${config.limits.connectTimeoutMs} ms`,
          ),
          'reset',
        );
      }, config.limits.connectTimeoutMs);
      this.upPump.start(resolved.leftover);
      await wait;
      clearTimeout(this.connectTimer);
      if (this.done) return;
    }
    if (routed !== undefined) target = routed;
    this.target = target;

    let resolvedTarget: ResolvedTarget;
    try {
      resolvedTarget = await literalTarget(target);
    } catch (err) {
      this.terminate(
        'upstream-unreachable',
        asRedirectError(err, 'ERR_REDIRECT_UPSTREAM_UNREACHABLE', `cannot look up ${target.host}`),
        'reset',
      );
      return;
    }
    if (this.done) return;
    const self = this.host.listenAddress;
    if (
      self &&
      resolvedTarget.port === self.port &&
      (resolvedTarget.host === self.address || isWildcard(self.address))
    ) {
      if (isWildcard(self.address) ? isLoopback(resolvedTarget.host) || resolvedTarget.host === self.address : true) {
        this.terminate(
          'loop-detected',
          new RedirectError(
            'ERR_REDIRECT_LOOP_DETECTED',
            `the target ${endpointKey({ ...self })} is this server itself`,
          ),
          'reset',
        );
        return;
      }
    }
    this.connectUpstream(resolvedTarget, chain, deferred ? undefined : resolved.leftover, deferred);
  }

  private async resolveRecord(): Promise<ResolveResult> {
    const { resolver, limits } = this.host.config;
    const self = this;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new RedirectError(
              'ERR_REDIRECT_RESOLVE_TIMEOUT',
              `no redirect record within ${limits.resolveTimeoutMs} ms`,
            ),
          ),
        limits.resolveTimeoutMs,
      );
    });
    try {
      return await Promise.race([
        resolver.resolve({
          socket: this.client.socket,
          listenAddress: this.host.listenAddress,
          get signal() {
            return self.signal;
          },
        }),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private detectLoop(record: RedirectRecord): string | undefined {
    const { id } = this.host.config;
    if (record.chain.some((entry) => entry.id === id)) {
      return `this flow already passed through "${id}" (chain: ${record.chain.map((e) => e.id).join(' → ')})`;
    }
    // Only a record that carries the kernel's own view of the flow (its real
    // original destination) can be matched against our outbound sockets: both
    // ends must match, since the kernel reuses a local port for connections to
    // different destinations, and a static record's destination is not the
    // flow's.
    const key = flowKey(record.source, record.destination);
    if (KERNEL_MECHANISMS.has(record.mechanism) && this.host.egressEndpoints.has(key)) {
      return `this flow is our own outbound connection ${key} coming back`;
    }
    return undefined;
  }

  private connectUpstream(
    target: ResolvedTarget,
    chain: ReturnType<typeof buildChain>,
    leftover?: Buffer,
    deferred?: DeferredSink,
  ): void {
    const { config } = this.host;
    let socket: Socket;
    try {
      const maker = config.egress.find((p) => p.createSocket);
      socket = maker?.createSocket ? maker.createSocket(target, this.record) : new Socket({ allowHalfOpen: true });
    } catch (err) {
      this.terminate(
        'upstream-error',
        asRedirectError(err, 'ERR_REDIRECT_UPSTREAM_FAILED', 'cannot create the outbound socket'),
        'reset',
      );
      return;
    }
    const upstream = new SocketTransport(socket);
    this.upstreamTransport = upstream;
    this.upstreamClosed = false;
    upstream.attach({
      data: (chunk) => this.downPump?.onData(chunk),
      end: () => this.sourceEnded('upstream'),
      error: (err) => this.fault('upstream', err),
      close: () => {
        this.upstreamClosed = true;
        if (this.egressKey) this.host.egressEndpoints.delete(this.egressKey);
        this.maybeFinish();
      },
    });
    const egressTo: Endpoint = { address: target.host, port: target.port, family: target.family };
    socket.once('connect', () => {
      this.connected = true;
      clearTimeout(this.connectTimer);
      this.registerEgress(upstream, egressTo);
    });
    this.connectTimer = setTimeout(() => {
      if (!this.connected) {
        this.terminate(
          'connect-timeout',
          new RedirectError(
            'ERR_REDIRECT_CONNECT_TIMEOUT',
            `no connection to ${target.host}:${target.port} within ${config.limits.connectTimeoutMs} ms`,
          ),
          'reset',
        );
      }
    }, config.limits.connectTimeoutMs);
    // Same tick as the socket's creation, to an IP literal: no path can swap in another socket.
    socket.connect({
      host: target.host,
      port: target.port,
      family: target.family === 'IPv6' ? 6 : 4,
      autoSelectFamily: false,
      // A relay must not add Nagle delays of its own; the client's segments are already sized.
      noDelay: true,
      ...(config.localAddress ? { localAddress: config.localAddress } : {}),
    });
    // Node issues connect(2) on the next tick; right after it the kernel has
    // bound our local port, and the SYN's own accept (if it loops back to us)
    // cannot be handled before this tick ends. So loop detection is exact.
    process.nextTick(() => this.registerEgress(upstream, egressTo));
    try {
      for (const plugin of config.egress) {
        const preamble = plugin.preamble?.(this.record, target);
        if (preamble && preamble.length > 0) socket.write(preamble);
      }
    } catch (err) {
      const e = asRedirectError(err, 'ERR_REDIRECT_UPSTREAM_FAILED', 'an egress plugin failed');
      this.terminate(e.code === 'ERR_REDIRECT_LOOP_DETECTED' ? 'loop-detected' : 'upstream-error', e, 'reset');
      return;
    }

    const hwm = config.limits.highWaterMark;
    const activity = (): void => {
      this.lastActivity = performance.now();
    };
    const failed = (err: RedirectError): void => this.terminate('middleware-error', err, 'reset');
    // A deferred connect already runs the upstream pump into a queue: hand it the socket.
    if (deferred) deferred.connectTo(upstream);
    // zeroCopy 'auto': a direction without a chain (or bypassed) is handed to the splice engine.
    const engine = config.zeroCopy === 'auto' ? zeroCopyEngine() : undefined;
    const upLink = engine && !deferred ? new ZeroCopyLink(engine, this.client.socket, socket) : undefined;
    const downLink = engine ? new ZeroCopyLink(engine, socket, this.client.socket) : undefined;
    if (upLink && downLink) upLink.pair(downLink);
    const finished = (): void => this.directionFinished();
    if (!deferred) {
      this.upPump = new Pump(
        this.client,
        upstream,
        chain.upstream,
        hwm,
        { activity, failed, finished, ...this.relayHooks('client') },
        upLink,
      );
    }
    this.downPump = new Pump(
      upstream,
      this.client,
      chain.downstream,
      hwm,
      { activity, failed, finished, ...this.relayHooks('upstream') },
      downLink,
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

  /** Zero-copy hooks of the pump whose source is `side`. */
  private relayHooks(side: 'client' | 'upstream'): Pick<PumpHooks, 'sourceEnded' | 'relayFailed'> {
    return {
      sourceEnded: () => {
        if (this.firstEnd === undefined) this.firstEnd = side === 'client' ? 'client-end' : 'upstream-end';
      },
      relayFailed: (err, which) => {
        const other = side === 'client' ? 'upstream' : 'client';
        this.fault(which === 'source' ? side : other, err);
      },
    };
  }

  /**
   * Both directions sent their FIN. Node closes a socket by itself only after
   * seeing its FIN; a source the engine read never shows one, so close here.
   */
  private directionFinished(): void {
    const up = this.upPump;
    const down = this.downPump;
    if (!up?.ended || !down?.ended || (!up.handedOff && !down.handedOff)) return;
    closeAfterRelay(this.client.socket);
    if (this.upstreamTransport instanceof SocketTransport) closeAfterRelay(this.upstreamTransport.socket);
  }

  /** Remembers `local>remote` of our outbound socket, to recognise it if it comes back to us. */
  private registerEgress(upstream: SocketTransport, to: Endpoint): void {
    if (this.egressKey !== undefined || this.done) return;
    const local = upstream.boundEndpoint();
    if (local === undefined || local.port === 0) return; // not bound yet: 'connect' will register it
    this.egressKey = flowKey(local, to);
    this.host.egressEndpoints.add(this.egressKey);
  }

  private sourceEnded(side: 'client' | 'upstream'): void {
    if (this.firstEnd === undefined) this.firstEnd = side === 'client' ? 'client-end' : 'upstream-end';
    if (side === 'client') this.upPump?.onSourceEnd();
    else this.downPump?.onSourceEnd();
  }

  private fault(side: 'client' | 'upstream', err: Error): void {
    if (this.done) return;
    const errno = errnoOf(err);
    if (side === 'upstream' && !this.connected) {
      if (errno === 'ECONNREFUSED') {
        this.terminate(
          'upstream-refused',
          coded('ERR_REDIRECT_UPSTREAM_REFUSED', 'the upstream refused the connection', err),
          'reset',
        );
      } else if (errno !== undefined && UNREACHABLE_ERRNOS.has(errno)) {
        this.terminate(
          'upstream-unreachable',
          coded('ERR_REDIRECT_UPSTREAM_UNREACHABLE', 'the upstream is unreachable', err),
          'reset',
        );
      } else {
        this.terminate(
          'upstream-error',
          coded('ERR_REDIRECT_UPSTREAM_FAILED', 'the upstream connection failed', err),
          'reset',
        );
      }
      return;
    }
    const reset = errno !== undefined && RESET_ERRNOS.has(errno);
    const reason: CloseReason = reset ? `${side}-reset` : `${side}-error`;
    this.terminate(reason, coded('ERR_REDIRECT_UPSTREAM_FAILED', `${side} socket failed`, err), 'reset');
  }

  /** Ends the flow for a reason; the first reason wins. */
  private terminate(reason: CloseReason, error: RedirectError | undefined, how: 'reset' | 'destroy'): void {
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
    const paths = new Set([up.path, down.path].filter((p) => p !== 'none'));
    const summary: CloseSummary = {
      id: this.id,
      record: this.record as RedirectRecord | undefined,
      target: this.target,
      reason: this.reason,
      error: this.error,
      durationMs: performance.now() - this.startedAt,
      upstream: up,
      downstream: down,
      path: paths.size === 0 ? 'none' : paths.size > 1 ? 'mixed' : [...paths][0]!,
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

  private clearTimers(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.idleTimer);
  }
}

const EMPTY_DIRECTION = Object.freeze({
  bytesRead: 0,
  bytesWritten: 0,
  peakBuffered: 0,
  pauses: 0,
  path: 'none' as const,
  zeroCopyBytes: 0,
});

function coded(code: RedirectError['code'], message: string, cause: Error): RedirectError {
  const errno = errnoOf(cause);
  return new RedirectError(code, errno ? `${message} (${errno})` : message, { cause });
}

function asRedirectError(err: unknown, code: RedirectError['code'], message: string): RedirectError {
  if (err instanceof RedirectError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new RedirectError(code, `${message}: ${detail}`, { cause: err });
}

/** Checks a target handed to a deferConnect() release; a bad one throws into the middleware that gave it. */
function checkTarget(to: TargetAddress): TargetAddress {
  if (
    to === null ||
    typeof to !== 'object' ||
    typeof to.host !== 'string' ||
    to.host === '' ||
    !Number.isInteger(to.port) ||
    to.port < 1 ||
    to.port > 65535
  ) {
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', 'a deferred connect target must be { host, port }');
  }
  return { host: to.host, port: to.port };
}

/** Mechanisms whose record is the kernel's 4-tuple of the flow. */
const KERNEL_MECHANISMS: ReadonlySet<string> = new Set(['netfilter', 'tproxy', 'wfp']);

function flowKey(from: Endpoint, to: Endpoint): string {
  return `${endpointKey(from)}>${endpointKey(to)}`;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

async function literalTarget(target: TargetAddress): Promise<ResolvedTarget> {
  if (isIP(target.host)) {
    const { address, family } = normaliseAddress(target.host);
    return { host: address, port: target.port, family };
  }
  const found = await lookup(target.host);
  return { host: found.address, port: target.port, family: found.family === 6 ? 'IPv6' : 'IPv4' };
}
