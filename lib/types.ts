import type { Socket } from 'node:net';
import type { OperatorFunction } from 'rxjs';
import type { RedirectError } from './errors';

export type AddressFamily = 'IPv4' | 'IPv6';

/** One end of a flow. IPv4-mapped IPv6 addresses are always normalised to IPv4. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly family: AddressFamily;
}

/**
 * How a record was obtained. 'static' and 'function' are built in; the rest are
 * provided by resolvers registered by the platform modules.
 */
export type RedirectMechanism =
  | 'static'
  | 'function'
  | 'netfilter'
  | 'tproxy'
  | 'proxy-protocol'
  | 'wfp'
  | (string & {});

/** A cooperating proxy that handled this flow before us. */
export interface ChainEntry {
  /** The proxy's `id` option. */
  readonly id: string;
  /** Where the fact came from: 'mark', 'proxy-protocol', 'wfp', … */
  readonly via?: string;
}

/** Everything known about where a redirected flow came from and was going. */
export interface RedirectRecord {
  readonly mechanism: RedirectMechanism;
  /** The original client. */
  readonly source: Endpoint;
  /** Where the client was trying to go. */
  readonly destination: Endpoint;
  /** Cooperating proxies that handled this flow before us, oldest first. */
  readonly chain: readonly ChainEntry[];
  /** Opaque platform redirect context (WFP redirect context). */
  readonly context?: Uint8Array;
  /** Opaque platform redirect records (WFP redirect records). */
  readonly records?: Uint8Array;
  /** Socket mark the flow arrived with (Linux, tcp_fwmark_accept). */
  readonly mark?: number;
  /** Mechanism-specific extras (e.g. PROXY protocol TLVs). */
  readonly extensions?: Readonly<Record<string, unknown>>;
}

/** Input accepted where a record is built: endpoints may be partial and are normalised. */
export interface RedirectRecordInit {
  mechanism?: RedirectMechanism;
  source?: { address: string; port: number; family?: AddressFamily | undefined };
  destination: { address: string; port: number; family?: AddressFamily | undefined };
  chain?: readonly ChainEntry[];
  context?: Uint8Array;
  records?: Uint8Array;
  mark?: number;
  extensions?: Readonly<Record<string, unknown>>;
}

export interface TargetAddress {
  readonly host: string;
  readonly port: number;
}

/** Per-connection context handed to every middleware once, before any byte flows. */
export interface ConnectionContext {
  readonly id: number;
  readonly record: RedirectRecord;
  /**
   * Fires when the connection ends, whatever the reason. `signal.reason` is the
   * RedirectError of a failed flow, or the CloseReason string of a graceful one.
   */
  readonly signal: AbortSignal;
  /** State shared along the chain, e.g. what a sniffer found for a router. */
  readonly state: Map<string | symbol, unknown>;
  /** The `id` option of this server. */
  readonly proxyId: string;
  /**
   * Defers the upstream connect until the returned function is called, optionally with the
   * target to connect to (e.g. chosen from sniffed bytes). Only callable while the middleware is
   * being built; the connect happens once every deferral is released. While deferred, client
   * bytes run through the upstream chain and are held by the core's flow control; the
   * `connectTimeoutMs` deadline covers the wait. Connect-at-accept stays the default.
   * The returned function never throws: a bad target ends the flow at once (`middleware-error`,
   * ERR_REDIRECT_INVALID_OPTION).
   */
  readonly deferConnect?: () => (target?: TargetAddress) => void;
  /**
   * Hands the rest of a direction over after its head was inspected: the
   * chain gets no more bytes, completes after flushing what it emitted, and
   * the rest flows raw (spliced in the kernel when `zeroCopy` allows).
   * Default 'both'. Optional only so hand-built contexts (test harnesses) stay valid.
   */
  readonly bypass?: (direction?: BypassDirection) => void;
}

export type BypassDirection = 'upstream' | 'downstream' | 'both';

export type ByteOperator = OperatorFunction<Buffer, Buffer>;

export interface MiddlewareOperators {
  /** client → destination; chains run in array order. */
  upstream?: ByteOperator;
  /** destination → client; chains run in reverse array order. */
  downstream?: ByteOperator;
}

// biome-ignore lint/suspicious/noConfusingVoidType: a middleware may return nothing.
export type Middleware = (ctx: ConnectionContext) => MiddlewareOperators | void;

/** Why a connection ended. Stable strings; see docs/errors.md. */
export type CloseReason =
  | 'client-end'
  | 'upstream-end'
  | 'client-reset'
  | 'upstream-reset'
  | 'client-error'
  | 'upstream-error'
  | 'upstream-refused'
  | 'upstream-unreachable'
  | 'connect-timeout'
  | 'idle-timeout'
  | 'resolve-failed'
  | 'not-redirected'
  | 'middleware-error'
  | 'loop-detected'
  | 'server-shutdown'
  | 'max-connections'
  | 'accept-failed'
  | 'destroyed'
  | 'fault-reset'
  | 'fault-timeout'
  | 'fault-limit';

/** Which data path carried a direction. */
export type DataPath = 'js' | 'zero-copy' | 'none';

export interface DirectionSummary {
  /** Bytes read from the sending socket. */
  readonly bytesRead: number;
  /** Chunks read from the sending socket on the JS path (bytesRead / reads: the mean read size). */
  readonly reads: number;
  /** Bytes written to the receiving socket (after middleware). */
  readonly bytesWritten: number;
  /** Highest number of bytes held between the two sockets at once. */
  readonly peakBuffered: number;
  /** Times reading from the sender was stopped for flow control. */
  readonly pauses: number;
  /** 'mixed': some bytes went through JS (a head, Node's buffer) before the kernel took over. */
  readonly path: DataPath | 'mixed';
  /** Bytes of bytesWritten that the zero-copy engine moved (never seen by JS). */
  readonly zeroCopyBytes: number;
}

export interface CloseSummary {
  readonly id: number;
  /**
   * The client, as the kernel reported it at accept: known even when the flow ended before it
   * had a record (resolve failures, 'accept-failed') or the client reset before it was served.
   */
  readonly peer: Endpoint | undefined;
  readonly record: RedirectRecord | undefined;
  readonly target: TargetAddress | undefined;
  readonly reason: CloseReason;
  readonly error: RedirectError | undefined;
  readonly durationMs: number;
  readonly upstream: DirectionSummary;
  readonly downstream: DirectionSummary;
  /** 'js', 'zero-copy', 'mixed' or 'none' when no byte moved through a relay. */
  readonly path: DataPath | 'mixed';
}

/** A resolver finds the record of an accepted socket before any byte reaches middleware. */
export interface ResolveResult {
  readonly record: RedirectRecord;
  /** Bytes the resolver had to read past what it consumed (e.g. after a PROXY header). */
  readonly leftover?: Buffer;
  /** Overrides the `target` option for this flow (e.g. a fallback for flows that were not redirected). */
  readonly target?: TargetAddress;
}

export interface ResolverContext {
  /** The accepted socket, paused: nothing has been read from it unless the resolver reads. */
  readonly socket: Socket;
  /**
   * The client as accept(2) reported it. Unlike `socket.remoteAddress` it survives a client that
   * reset before the flow was handled (optional only so hand-built contexts stay valid).
   */
  readonly peer?: Endpoint | undefined;
  /** The listener's own address, to recognise flows that were not redirected. */
  readonly listenAddress: Endpoint | undefined;
  readonly signal: AbortSignal;
}

/**
 * Context of a flow accepted by a native listener (Windows WFP, `transport: 'native'`):
 * there is no net.Socket, only the transport the addon drives.
 */
export interface NativeResolverContext {
  /** The client's transport, paused. */
  readonly transport: import('./transport').Transport;
  /** What the native listener found at accept (for the WFP engine: its query outcome, `WfpAcceptInfo`). */
  readonly accepted: unknown;
  readonly listenAddress: Endpoint | undefined;
  readonly signal: AbortSignal;
}

export interface Resolver {
  readonly name: RedirectMechanism;
  /**
   * False when this resolver never yields a record of a kernel mechanism
   * (netfilter, tproxy, wfp). Only such records can be our own outbound
   * connection coming back, so the server then skips remembering where its
   * outbound sockets are bound (a getsockname per connection). Default true.
   */
  readonly kernelRecords?: boolean;
  /**
   * May return the result itself when it needs no I/O (the static resolver): the
   * connection then goes on in the same tick, with no resolve deadline to arm.
   */
  resolve(ctx: ResolverContext): ResolveResult | Promise<ResolveResult>;
  /**
   * Finds the record of a flow from a native listener (`transport: 'native'`).
   * Only resolvers with this method can serve such a server.
   */
  resolveNative?(ctx: NativeResolverContext): Promise<ResolveResult>;
  /**
   * Called once by listen(), right after the listener is bound and before
   * listen() resolves: check capabilities, configure the listening socket
   * (e.g. IP_TRANSPARENT). A coded error thrown here fails listen().
   */
  prepareListener?(server: import('node:net').Server): void | Promise<void>;
}

export type ResolveOption =
  | TargetAddress
  | ((socket: Socket) => RedirectRecordInit | RedirectRecord | Promise<RedirectRecordInit | RedirectRecord>)
  | Resolver;

export type TargetOption = TargetAddress | ((record: RedirectRecord) => TargetAddress);

/**
 * Egress plugins pass the record on to the next hop. Each hook is optional;
 * they run in array order.
 */
export interface EgressPlugin {
  readonly name: string;
  /** Checked once at listen(); throw a coded error if the plugin cannot work here. */
  check?(): void | Promise<void>;
  /**
   * Makes the outbound socket (e.g. with a mark set before connect). Only one
   * plugin may provide it. The socket must not be connected yet.
   */
  createSocket?(target: ResolvedTarget, record: RedirectRecord): Socket;
  /** Bytes written to the upstream before any payload (e.g. a PROXY header). */
  preamble?(record: RedirectRecord, target: ResolvedTarget): Buffer | undefined;
}

/** A target with its host already a literal IP address. */
export interface ResolvedTarget {
  readonly host: string;
  readonly port: number;
  readonly family: AddressFamily;
}

export interface Limits {
  /** Connections above this are reset at accept. Default: Infinity. */
  maxConnections?: number;
  /** Upstream connect deadline. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** No byte either way for this long ends the connection. Default: 0 (off). */
  idleTimeoutMs?: number;
  /** Bytes held per direction before reading from the sender stops. Default 512 KiB. */
  highWaterMark?: number;
  /**
   * Largest read on a direction without middleware, once it shows bulk (docs/design.md,
   * "Large reads"). 65536 keeps Node's own 64 KiB reads. Default 1 MiB.
   */
  maxReadBytes?: number;
  /** Deadline for finding a record. Default 5 000 ms. */
  resolveTimeoutMs?: number;
  /** How long close() lets live connections finish before destroying them. Default 5 000 ms. */
  closeTimeoutMs?: number;
}

export interface RedirectServerOptions {
  /**
   * How a socket's record is found: `{ host, port }` (static), a function,
   * a Resolver object, or a mechanism name: 'netfilter', 'tproxy', 'auto' (Linux).
   */
  resolve: ResolveOption | 'netfilter' | 'tproxy' | 'auto' | 'proxy-protocol' | 'wfp';
  /**
   * Which sockets carry the flows: 'net' (node:net, the default) or 'native' (Windows: the
   * addon's WFP engine owns listener and sockets; the default with `resolve: 'wfp'`).
   */
  transport?: 'net' | 'native';
  target?: TargetOption;
  middleware?: readonly Middleware[];
  limits?: Limits;
  /** This proxy's name in redirect chains. Default 'rxredirect'. */
  id?: string;
  egress?: EgressOptions;
  /**
   * Cooperating proxies and their socket-mark bits (Linux, with
   * net.ipv4.tcp_fwmark_accept=1): `{ 'proxy-a': 0x1, 'proxy-b': 0x2 }`.
   * Our own `id` may be left out: it has the bit of `egress.mark` (a single bit
   * then). Given, it must be a bit of `egress.mark`.
   */
  cooperating?: Readonly<Record<string, number>>;
  /** Flows that were not redirected (netfilter, tproxy, auto, wfp): refuse them (default) or send them here. */
  notRedirected?: 'refuse' | TargetAddress;
  /** 'tproxy' and 'auto': set IP_TRANSPARENT on the listener (default true for 'tproxy', 'try' for 'auto'). */
  transparent?: boolean | 'try';
  /**
   * Linux: directions with no middleware (or bypassed) are relayed in the
   * kernel with splice(2) when the addon is loaded ('auto', the default);
   * 'off' keeps every byte on the JS path. See docs/zero-copy.md.
   */
  zeroCopy?: 'auto' | 'always' | 'off';
  /** With `resolve: 'proxy-protocol'`: who may send a header, and limits (docs/proxy-protocol.md). */
  proxyProtocol?: import('./resolve-proxy-protocol').ProxyProtocolResolverOptions;
}

export interface EgressOptions {
  plugins?: readonly EgressPlugin[];
  /** Linux: SO_MARK for outbound sockets, set before connect (needs CAP_NET_ADMIN). */
  mark?: number;
  /** Bind the outbound socket to this local address. */
  localAddress?: string;
  /** Write a PROXY header to the upstream: 'v1', 'v2' or options (the server's `id` is filled in). */
  proxyProtocol?: 'v1' | 'v2' | Omit<import('./egress-proxy-protocol').ProxyProtocolEgressOptions, 'id'>;
}
