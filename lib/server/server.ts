// Size: the listener's whole lifecycle (listen with retry, accept, stats, drain and close) and the
// host it gives each connection; accepting itself is in acceptor.ts, counting in server-stats.ts.
import { createServer, type Server, Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { type Acceptor, type AcceptFault, acceptFailure, takeOverAccept } from './acceptor';
import { Connection } from '../connection/connection';
import type { ConnectionHost } from '../connection/host';
import { invalidOption, RedirectError } from '../common/errors';
import { normaliseOptions, type ServerConfig } from '../config/options';
import { MAX_TIMER_MS } from '../common/deadlines';
import { normaliseAddress } from '../common/record';
import { peerOf } from '../capture/resolvers';
import { connectNative, listenNative } from '../capture/wfp';
import { processBudget } from './connection-budget';
import { type ServerStats, StatsCounters } from './server-stats';
import type { Transport } from '../net/transport';
import { SocketTransport } from '../net/socket-transport';
import { zeroCopyEngine } from '../zero-copy/engine';
import { setListenerNoDelay } from '../platform/node-internals';
import type { CloseSummary, Endpoint } from '../common/types';
import type { EgressPlugin } from '../egress/types';
import type { RedirectServerOptions } from '../config/types';

export type { ServerStats } from './server-stats';

export interface ListenOptions {
  port?: number;
  host?: string;
  /** Listen on an existing listening fd (e.g. one made by the addon). */
  fd?: number;
  /**
   * Listen on a listening handle, as Node's `server.listen(handle)` takes it: a net.Server,
   * a net.Socket, or a handle received over IPC (lib/workers/ passes the primary's sockets so).
   */
  handle?: object;
  backlog?: number;
  ipv6Only?: boolean;
}

export interface RedirectServerEvents {
  /** A flow with its record, before any byte is relayed. */
  connection: [conn: Connection];
  /** A flow ended before it became a connection (resolve failed, loop, limit). */
  rejected: [summary: CloseSummary];
  /** Every closed flow, connection or not. */
  closed: [summary: CloseSummary];
  listening: [address: Endpoint];
  /**
   * A listener fault, e.g. accept(2) failing with EMFILE (ERR_REDIRECT_ACCEPT_FAILED, syscallCode
   * the errno); the server keeps running.
   */
  error: [err: Error];
}

/** Accepted TCP sockets inherit TCP_NODELAY from their listener (proven on Linux). */
const INHERITS_NODELAY = process.platform === 'linux';

/** A listener that turns each redirected connection into a middleware pipeline. */
export class RedirectServer extends EventEmitter<RedirectServerEvents> {
  readonly config: ServerConfig;
  /** The listener of the current listen() attempt (a failed attempt leaves none). */
  private net: Server | undefined;
  private readonly live = new Set<Connection>();
  private readonly egressEndpoints = new Set<string>();
  private nextId = 1;
  private state: 'idle' | 'listening' | 'closing' | 'closed' = 'idle';
  private address: Endpoint | undefined;
  private closing: Promise<void> | undefined;
  private readonly counters: StatsCounters;
  /** The connection limit in force: the option, or (for 'auto') the process's share, fixed at listen(). */
  private maxConnections = Number.POSITIVE_INFINITY;
  /** Live connections counted in the process budget ('auto' limit). */
  private readonly budgeted = new WeakSet<Connection>();
  /** Accepts for the listener, Linux with the addon (lib/server/acceptor.ts); else net.Server does. */
  private acceptor: Acceptor | undefined;
  private readonly host: ConnectionHost<Connection>;
  /** The addon's listener when `transport: 'native'` (Windows WFP); net.Server otherwise. */
  private nativeListener: { close(): void } | undefined;
  /** While close() waits for live connections: moves its deadline forward. */
  private hastenDeadline: ((ms: number) => void) | undefined;
  /**
   * True until the listener's own TCP_NODELAY is known to cover every accepted
   * socket (sockets queued before it was set did not inherit it).
   */
  private noDelayPerSocket = INHERITS_NODELAY;

  constructor(options: RedirectServerOptions) {
    super();
    this.config = normaliseOptions(options);
    this.counters = new StatsCounters(this.config.resolver.name);
    const server = this;
    this.host = {
      config: this.config,
      get listenAddress() {
        return server.address;
      },
      egressEndpoints: this.config.resolver.kernelRecords === false ? undefined : this.egressEndpoints,
      socketMaker: this.config.egress.find(
        (p): p is EgressPlugin & Required<Pick<EgressPlugin, 'createSocket'>> => p.createSocket !== undefined,
      ),
      opened: (conn) => {
        this.counters.total.connections++;
        this.emit('connection', conn);
      },
      closed: (conn, summary) => this.connectionClosed(conn, summary),
      ...(this.config.transport === 'native'
        ? { connectNative: (target, record) => connectNative(target, record, this.config.localAddress) }
        : {}),
    };
  }

  /** Binds and resolves with the bound address. */
  async listen(options: ListenOptions = {}): Promise<Endpoint> {
    if (this.state !== 'idle') {
      throw new RedirectError('ERR_REDIRECT_SERVER_STATE', `listen() called on a server that is ${this.state}`);
    }
    validateListen(options);
    for (const plugin of this.config.egress) await plugin.check?.();
    this.maxConnections = this.connectionLimit();
    this.state = 'listening';
    if (this.config.transport === 'native') return this.listenNative(options);
    const net = this.createListener();
    this.net = net;
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        net.once('error', onError);
        const done = (): void => {
          net.off('error', onError);
          // Still in the tick of listen(2) (Node emits 'listening' on nextTick): no accept yet.
          this.setListenerNoDelay();
          resolve();
        };
        if (options.handle !== undefined) net.listen(options.handle, options.backlog, done);
        else if (options.fd !== undefined) net.listen({ fd: options.fd, backlog: options.backlog }, done);
        else
          net.listen(
            {
              port: options.port ?? 0,
              host: options.host ?? '127.0.0.1',
              backlog: options.backlog,
              ipv6Only: options.ipv6Only,
            },
            done,
          );
      });
      if (this.state !== 'listening') {
        throw new RedirectError('ERR_REDIRECT_SERVER_STATE', 'close() was called while listen() was binding');
      }
      const bound = net.address();
      if (bound === null || typeof bound === 'string') throw new Error('the listener has no IP address');
      const { address, family } = normaliseAddress(bound.address);
      this.address = Object.freeze({ address, port: bound.port, family });
      await this.config.resolver.prepareListener?.(net);
      this.acceptor = takeOverAccept(net, {
        accepted: (socket, peer) => {
          if (this.noDelayPerSocket) socket.setNoDelay(true);
          this.accept(socket, undefined, peer);
        },
        failed: (code, fault, peer) => this.acceptFailed(code, fault, peer),
      });
    } catch (err) {
      // A failed attempt leaves nothing behind: listen() may be called again.
      net.close();
      this.net = undefined;
      this.address = undefined;
      if (this.state === 'listening') this.state = 'idle';
      throw listenFailed(err, options);
    }
    this.emit('listening', this.address);
    return this.address;
  }

  /** A fresh net.Server for one listen() attempt. */
  private createListener(): Server {
    // TCP_NODELAY: on Linux an accepted socket inherits it from the listener,
    // which saves a setsockopt per connection (see listen()).
    const net = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: !INHERITS_NODELAY }, (socket) => {
      if (this.noDelayPerSocket) socket.setNoDelay(true);
      // Node's remoteAddress is gone once the client has reset: read it while it is there.
      this.accept(socket, undefined, peerOf(socket));
    });
    net.on('error', (err) => {
      if (this.state !== 'listening' || this.net !== net) return;
      // Node reports accept(2) failures only when libuv could not drop the connection itself.
      const code = (err as NodeJS.ErrnoException).code;
      if ((err as NodeJS.ErrnoException).syscall === 'accept' && code !== undefined) this.acceptFailed(code, 'failed');
      else this.emit('error', err);
    });
    return net;
  }

  /**
   * Sets TCP_NODELAY on the listening socket, before the first accept, so new
   * connections inherit it. Connections the kernel completed between listen(2)
   * and this (or queued on a listening fd handed to us) are all taken in the
   * first accept round: they get it one by one until the loop has passed that round.
   */
  private setListenerNoDelay(): void {
    if (!INHERITS_NODELAY) return;
    this.noDelayPerSocket = true;
    if (this.net === undefined || !setListenerNoDelay(this.net)) return;
    setImmediate(() => {
      this.noDelayPerSocket = false;
    });
  }

  /** listen() on the addon's engine (`transport: 'native'`). */
  private listenNative(options: ListenOptions): Endpoint {
    try {
      const native = listenNative(options, (transport, info) => this.accept(transport, info, transport.remoteEndpoint));
      this.nativeListener = native;
      this.address = native.address;
    } catch (err) {
      if (this.state === 'listening') this.state = 'idle';
      throw listenFailed(err, options);
    }
    this.emit('listening', this.address);
    return this.address;
  }

  /**
   * Stops accepting, lets live connections finish for `timeoutMs` (default
   * limits.closeTimeoutMs), then resets what is left with reason 'server-shutdown'.
   * Called again while closing, a shorter `timeoutMs` brings the deadline forward
   * (a graceful drain, then a hard stop); it never pushes it back.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.config.limits.closeTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_TIMER_MS) {
      throw invalidOption(
        'close({ timeoutMs })',
        `must be an integer from 0 to ${MAX_TIMER_MS} ms, got ${String(timeoutMs)}`,
      );
    }
    if (this.closing) {
      if (options.timeoutMs !== undefined) this.hastenDeadline?.(timeoutMs);
      return this.closing;
    }
    this.state = 'closing';
    this.closing = (async () => {
      this.nativeListener?.close();
      this.acceptor?.close();
      // net.Server's close callback waits for every accepted socket, so it is
      // awaited last, after live connections had their chance and the rest were reset.
      const net = this.net;
      const listenerClosed = new Promise<void>((resolve) => {
        if (!net?.listening) return resolve();
        net.close(() => resolve());
      });
      if (this.live.size > 0) {
        const allClosed = new Promise<void>((resolve) => {
          const check = (): void => {
            if (this.live.size === 0) resolve();
          };
          for (const conn of this.live) conn.once('close', check);
          // Connections still resolving are not in `once` yet; poll for them too.
          const poll = setInterval(() => {
            if (this.live.size === 0) {
              clearInterval(poll);
              resolve();
            }
          }, 50);
          poll.unref();
        });
        let timer: NodeJS.Timeout | undefined;
        let dueAt = performance.now() + timeoutMs;
        const deadline = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
          this.hastenDeadline = (ms) => {
            if (performance.now() + ms >= dueAt) return;
            dueAt = performance.now() + ms;
            clearTimeout(timer);
            timer = setTimeout(resolve, ms);
          };
        });
        await Promise.race([allClosed, deadline]);
        this.hastenDeadline = undefined;
        clearTimeout(timer);
        if (this.live.size > 0) {
          const rest = [...this.live];
          const gone = Promise.all(rest.map((c) => (c.closed ? undefined : new Promise((r) => c.once('close', r)))));
          for (const conn of rest) {
            conn.destroy('server-shutdown', new RedirectError('ERR_REDIRECT_SERVER_SHUTDOWN', 'the server shut down'));
          }
          await gone;
        }
      }
      await listenerClosed;
      this.state = 'closed';
    })();
    return this.closing;
  }

  get listening(): boolean {
    return this.state === 'listening';
  }

  /** Live and total counters. */
  stats(): ServerStats {
    let up = 0;
    let down = 0;
    for (const conn of this.live) {
      const b = conn.bytes;
      up += b.upstream;
      down += b.downstream;
    }
    return this.counters.snapshot(
      { connections: this.live.size, bytesUpstream: up, bytesDownstream: down },
      this.maxConnections,
    );
  }

  private connectionLimit(): number {
    const limit = this.config.limits.maxConnections;
    if (limit !== 'auto') return limit;
    const engine = this.config.zeroCopy !== 'off' && this.config.transport === 'net' ? zeroCopyEngine() : undefined;
    return processBudget.limit(engine ? engine.stats().maxPipes : 0);
  }

  private accept(socket: Socket | Transport, accepted?: unknown, peer?: Endpoint): void {
    this.counters.total.accepted++;
    // From here on the flow reaches its client through the Transport only.
    const client = socket instanceof Socket ? new SocketTransport(socket) : socket;
    const conn = new Connection(this.host, client, this.nextId++, accepted, peer);
    this.live.add(conn);
    if (this.state !== 'listening') {
      conn.destroy('server-shutdown', new RedirectError('ERR_REDIRECT_SERVER_SHUTDOWN', 'the server is closing'));
      return;
    }
    const auto = this.config.limits.maxConnections === 'auto';
    if (auto) {
      this.budgeted.add(conn);
      processBudget.live++;
    }
    if ((auto ? processBudget.live : this.live.size) > this.maxConnections) {
      const what = auto ? 'derived from the open-file limit (ulimit -n)' : 'limits.maxConnections';
      conn.destroy(
        'max-connections',
        new RedirectError('ERR_REDIRECT_MAX_CONNECTIONS', `${what}: ${this.maxConnections} connections reached`),
      );
      return;
    }
    try {
      conn.run();
    } catch (err) {
      conn.internalError(err);
    }
  }

  /** A failed accept(2): counted, reported as 'error', and a reset connection gets its summary. */
  private acceptFailed(code: string, fault: AcceptFault, peer?: Endpoint): void {
    this.counters.acceptError(code);
    const { error, summary } = acceptFailure(code, fault, peer, this.nextId++);
    this.emit('error', error);
    if (summary) this.summarised(summary, false);
  }

  private connectionClosed(conn: Connection, summary: CloseSummary): void {
    this.live.delete(conn);
    if (this.budgeted.delete(conn)) processBudget.live--;
    this.summarised(summary, conn.opened);
  }

  /** Counts a closed flow and emits its summary. */
  private summarised(summary: CloseSummary, opened: boolean): void {
    this.counters.closed(summary);
    if (!opened) this.emit('rejected', summary);
    this.emit('closed', summary);
  }
}

export function createRedirectServer(options: RedirectServerOptions): RedirectServer {
  return new RedirectServer(options);
}

/** A failed listen attempt as a coded error: a system call's errno is its syscallCode. */
function listenFailed(err: unknown, options: ListenOptions): RedirectError {
  if (err instanceof RedirectError) return err;
  const where =
    options.handle !== undefined
      ? 'a listening handle'
      : options.fd !== undefined
        ? `fd ${options.fd}`
        : `${options.host ?? '127.0.0.1'} port ${options.port ?? 0}`;
  const message = err instanceof Error ? err.message : String(err);
  return new RedirectError('ERR_REDIRECT_LISTEN_FAILED', `cannot listen on ${where}: ${message}`, { cause: err });
}

function validateListen(options: ListenOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', 'listen(options): options must be { port, host }');
  }
  const { port, fd, handle } = options;
  if (handle !== undefined && (handle === null || typeof handle !== 'object')) {
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', 'listen(): handle must be a listening handle object');
  }
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new RedirectError(
      'ERR_REDIRECT_INVALID_OPTION',
      `listen(): port must be an integer 0–65535, got ${String(port)}`,
    );
  }
  if (fd !== undefined && (!Number.isInteger(fd) || fd < 0)) {
    throw new RedirectError(
      'ERR_REDIRECT_INVALID_OPTION',
      `listen(): fd must be a non-negative integer, got ${String(fd)}`,
    );
  }
}
