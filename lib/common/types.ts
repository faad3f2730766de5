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
  readonly deferConnect: () => (target?: TargetAddress) => void;
  /**
   * Hands the rest of a direction over after its head was inspected: the
   * chain gets no more bytes, completes after flushing what it emitted, and
   * the rest flows raw (spliced in the kernel when `zeroCopy` allows).
   * Default 'both'; any other value throws ERR_REDIRECT_INVALID_OPTION.
   */
  readonly bypass: (direction?: BypassDirection) => void;
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
  /** From connect(2) to the upstream connected (ms); undefined when it never connected. */
  readonly connectMs: number | undefined;
  readonly upstream: DirectionSummary;
  readonly downstream: DirectionSummary;
  /** 'js', 'zero-copy', 'mixed' or 'none' when no byte moved through a relay. */
  readonly path: DataPath | 'mixed';
}

/** A target with its host already a literal IP address. */
export interface ResolvedTarget {
  readonly host: string;
  readonly port: number;
  readonly family: AddressFamily;
}

export interface Limits {
  /**
   * Connections above this are reset at accept ('max-connections'). Default 'auto': derived from
   * the process's open-file limit (RLIMIT_NOFILE), shared by the 'auto' servers of the process.
   * Infinity: no limit.
   */
  maxConnections?: number | 'auto';
  /** Upstream connect deadline. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** No byte either way for this long ends the connection. Default 3 600 000 (one hour); 0: off. */
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
