import { lookup } from 'node:dns/promises';
import { isIP, Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { buildChain } from './compose';
import { errnoOf, RedirectError } from './errors';
import type { ServerConfig } from './options';
import { Pump } from './pump';
import { endpointKey, normaliseAddress } from './record';
import { SocketTransport, type Transport } from './transport';
import type {
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
  /** Local endpoints of our own live upstream sockets, for loop detection. */
  readonly egressEndpoints: Set<string>;
  /** Upstream connects in flight (their local endpoints are not known yet). */
  pendingConnects: number;
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
  private readonly abort = new AbortController();
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
    return this.abort.signal;
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

    // Our own looping connect and its accept can land in the same event-loop
    // turn, accept first: let pending connect callbacks record their local
    // endpoints before we compare.
    if (this.host.pendingConnects > 0) await new Promise((r) => setImmediate(r));
    if (this.done) return;
    const loop = this.detectLoop(resolved.record);
    if (loop) {
      this.terminate('loop-detected', new RedirectError('ERR_REDIRECT_LOOP_DETECTED', loop), 'reset');
      return;
    }
    this.opened = true;
    this.host.opened(this);

    const ctx: ConnectionContext = {
      id: this.id,
      record: this.record,
      signal: this.abort.signal,
      state: new Map(),
      proxyId: config.id,
    };
    let chain: ReturnType<typeof buildChain>;
    let target: TargetAddress;
    try {
      chain = buildChain(config.middleware, ctx);
      target = resolved.target ??
        config.target?.(this.record) ?? {
          host: this.record.destination.address,
          port: this.record.destination.port,
        };
    } catch (err) {
      this.terminate('middleware-error', asRedirectError(err, 'ERR_REDIRECT_MIDDLEWARE', 'middleware failed'), 'reset');
      return;
    }
    if (this.done) return;
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
    this.connectUpstream(resolvedTarget, chain, resolved.leftover);
  }

  private async resolveRecord(): Promise<ResolveResult> {
    const { resolver, limits } = this.host.config;
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
        resolver.resolve({ socket: this.client.socket, listenAddress: this.host.listenAddress, signal: this.signal }),
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
    if (this.host.egressEndpoints.has(endpointKey(record.source))) {
      return `this flow comes from our own outbound connection ${endpointKey(record.source)}`;
    }
    return undefined;
  }

  private connectUpstream(target: ResolvedTarget, chain: ReturnType<typeof buildChain>, leftover?: Buffer): void {
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
    this.host.pendingConnects++;
    let pending = true;
    const settle = (): void => {
      if (pending) {
        pending = false;
        this.host.pendingConnects--;
      }
    };
    socket.once('close', settle);
    socket.once('connect', () => {
      settle();
      this.connected = true;
      clearTimeout(this.connectTimer);
      const local = upstream.localEndpoint;
      if (local) {
        this.egressKey = endpointKey(local);
        this.host.egressEndpoints.add(this.egressKey);
      }
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
      ...(config.localAddress ? { localAddress: config.localAddress } : {}),
    });
    try {
      for (const plugin of config.egress) {
        const preamble = plugin.preamble?.(this.record, target);
        if (preamble && preamble.length > 0) socket.write(preamble);
      }
    } catch (err) {
      this.terminate(
        'upstream-error',
        asRedirectError(err, 'ERR_REDIRECT_UPSTREAM_FAILED', 'an egress plugin failed'),
        'reset',
      );
      return;
    }

    const hwm = config.limits.highWaterMark;
    const activity = (): void => {
      this.lastActivity = performance.now();
    };
    const failed = (err: RedirectError): void => this.terminate('middleware-error', err, 'reset');
    this.upPump = new Pump(this.client, upstream, chain.upstream, hwm, { activity, failed, finished: () => {} });
    this.downPump = new Pump(upstream, this.client, chain.downstream, hwm, { activity, failed, finished: () => {} });
    this.armIdleTimer();
    this.upPump.start(leftover);
    this.downPump.start();
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
    if (!this.abort.signal.aborted) this.abort.abort(error ?? new RedirectError('ERR_REDIRECT_SERVER_STATE', reason));
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
    if (!this.abort.signal.aborted) this.abort.abort(new RedirectError('ERR_REDIRECT_SERVER_STATE', this.reason));
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
