// Size: the addon is typed once, here: every export of native/ (Linux, the splice engine, Windows
// WFP and its portable logic) with its JS type, beside the one loader that finds and checks it.
import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import { errnoOf, RedirectError } from '../common/errors';
import type { AddressFamily } from '../common/types';
import { descriptorOf } from './node-internals';

/**
 * The one place the native addon is loaded and typed. Everything else asks
 * here, so a missing addon is reported once, with a remedy, and features that
 * do not need it keep working.
 *
 * Set RXREDIRECT_NATIVE=0 to run without the addon (as if it failed to load).
 */

/** An endpoint exactly as the kernel reports it (v4-mapped IPv6 not yet normalised). */
export interface NativeEndpoint {
  readonly address: string;
  readonly port: number;
  readonly family: AddressFamily;
}

export interface MarkedSocketBind {
  /** Local IP literal of the socket's family. */
  readonly address?: string;
  /** Local port; 0 lets the kernel choose. */
  readonly port?: number;
  /** IP_BIND_ADDRESS_NO_PORT: binding an address reserves no port until connect. */
  readonly noPort?: boolean;
}

/** The Linux half of the addon (native/*.cc other than addon.cc). */
export interface LinuxAddon {
  readonly platform: 'linux';
  version(): string;
  /** SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST. Throws ENOENT (untracked) or ENOPROTOOPT (no conntrack). */
  originalDestination(fd: number): NativeEndpoint;
  localAddress(fd: number): NativeEndpoint;
  peerAddress(fd: number): NativeEndpoint;
  /** SO_MARK of the socket. */
  getMark(fd: number): number;
  /** TCP_NODELAY of the socket. */
  tcpNoDelay(fd: number): boolean;
  /** SO_ERROR, read and cleared: the errno name of a fault the kernel holds (ECONNRESET after an RST), or null. */
  pendingError(fd: number): string | null;
  /** SO_LINGER {1, 0}: the socket's close(2) sends RST, whatever its state. */
  resetOnClose(fd: number): void;
  /** F_DUPFD_CLOEXEC: a second descriptor of the same socket (the runner's listener across reloads). */
  dupFd(fd: number): number;
  /** RTM_GETROUTE: whether the kernel routes the address as one of this host's own (RTN_LOCAL). */
  isLocalRoute(address: string): boolean;
  /** IP_TRANSPARENT or IPV6_TRANSPARENT, by the socket's family. Needs CAP_NET_ADMIN. */
  setTransparent(fd: number): void;
  isTransparent(fd: number): boolean;
  /** Non-blocking, close-on-exec TCP socket with SO_MARK set; returns the fd. Needs CAP_NET_ADMIN. */
  createMarkedSocket(family: 4 | 6, mark: number, bind?: MarkedSocketBind): number;
  capabilities(): { netAdmin: boolean; netRaw: boolean; splice: boolean };
  /** Registers the one callback that receives the splice engine's reports (once per process). */
  spliceInit(onReport: SpliceReportCallback): void;
  /** Sets the splice budget; `threads` only applies before the first relay starts. */
  spliceConfigure(budget: SpliceBudget): void;
  /**
   * Relays src → dst in the kernel on these very fds (no dups: abort before closing either); returns
   * the relay id, or 0 when the budget can never give a pipe. `pairWith`: the relay of the other
   * direction (same thread; an error stops both).
   */
  spliceStart(srcFd: number, dstFd: number, pairWith?: number): number;
  /** Stops a relay; the engine is done with its fds on return: [bytesIn, bytesOut], or undefined if it already finished. */
  spliceAbort(id: number): [number, number] | undefined;
  spliceStats(): SpliceEngineStats;
  /** Totals of a running relay, read now (reports lag by up to 100 ms): [bytesIn, bytesOut], or undefined. */
  spliceProgress(id: number): [number, number] | undefined;
  /**
   * Accepts on a dup of a listening fd, polled on Node's loop (lib/server/acceptor.ts); returns the
   * acceptor id. `family` is 4 or 6; `kind` 0 dropped, 1 failed, 2 paused (see native/acceptor.h).
   */
  acceptorOpen(
    fd: number,
    onAccept: (fd: number, address: string, port: number, family: 4 | 6) => void,
    onFault: (code: string, kind: 0 | 1 | 2, address?: string, port?: number, family?: 4 | 6) => void,
  ): number;
  /** Polls again after a pause (reopens the reserve descriptor first). */
  acceptorResume(id: number): void;
  /** Stops polling; the listener dup and the reserve are closed before it returns. */
  acceptorClose(id: number): void;
  /**
   * A listening TCP socket (non-blocking, close-on-exec) with SO_REUSEADDR and, unless
   * `reusePort: false`, SO_REUSEPORT; `transparent` sets IP(V6)_TRANSPARENT before bind(2).
   * Returns the fd (the caller owns it).
   */
  listenReusePort(family: 4 | 6, address: string, port: number, options?: ReusePortOptions): number;
}

export interface ReusePortOptions {
  readonly backlog?: number;
  readonly ipv6Only?: boolean;
  readonly transparent?: boolean;
  readonly reusePort?: boolean;
}

/** Budget of the splice engine (native/splice-engine.h). */
export interface SpliceBudget {
  readonly threads: number;
  readonly maxPipes: number;
  readonly maxPipeBytes: number;
  /** Every relay's pipe to start with. */
  readonly pipeSize: number;
  /** A busy relay doubles its pipe up to this (≥ pipeSize). */
  readonly maxPipeSize: number;
}

export interface SpliceEngineStats {
  /** Engine threads running (0 until the first relay). */
  readonly threads: number;
  readonly relays: number;
  /** Pipes open now, held by relays or free in the pool (≤ maxPipes; two descriptors each). */
  readonly pipes: number;
  /** Pipes held by relays with bytes in flight (an idle spliced connection holds none). */
  readonly pipesInUse: number;
  /** Free pipes in the pool (closed after 1 s unused). */
  readonly pooledPipes: number;
  /** Pipe bytes reserved now: base pipes plus growth, held or free (≤ maxPipeBytes). */
  readonly pipeBytes: number;
  /** The part of pipeBytes pipes grew beyond their base size (≤ maxPipeBytes / 2). */
  readonly grownBytes: number;
  /** Pipe doublings since the process started. */
  readonly growths: number;
  /**
   * Doublings the kernel refused since the process started (F_SETPIPE_SZ: EPERM over
   * fs.pipe-max-size without CAP_SYS_RESOURCE or over the per-user pipe pages, EBUSY); such a
   * pipe keeps its size and is not asked again.
   */
  readonly growthFailures: number;
  /** Bytes relays moved by copying (peek, send, discard) because no pipe was to be had. */
  readonly copiedBytes: number;
  /** Descriptors the engine holds now: two per open pipe, two per thread (epoll, eventfd). */
  readonly descriptors: number;
  /**
   * What a spliced connection costs in descriptors: `idle` its two sockets (owned by Node; the
   * engine holds no dups), `busy` plus a pipe per direction with bytes in flight.
   */
  readonly descriptorsPerConnection: { readonly idle: number; readonly busy: number };
  readonly maxThreads: number;
  readonly maxPipes: number;
  readonly maxPipeBytes: number;
  readonly pipeSize: number;
  readonly maxPipeSize: number;
}

/**
 * kind: 0 progress, 1 end (FIN passed on), 2 error; side: 0 source, 1 sink;
 * eofAtNs: for an end, when the source's EOF was read (CLOCK_MONOTONIC ns, process.hrtime's clock).
 */
export type SpliceReportCallback = (
  id: number,
  kind: 0 | 1 | 2,
  bytesIn: number,
  bytesOut: number,
  errno: string | undefined,
  side: 0 | 1,
  eofAtNs: number,
) => void;

/** Whatever the addon exports on this platform: always `version`, the rest per OS. */
export type RxredirectAddon = { version(): string; readonly platform?: string } & Partial<Omit<LinuxAddon, 'platform'>>;

export interface Capabilities {
  /** CAP_NET_ADMIN in the effective set: SO_MARK, IP_TRANSPARENT. */
  readonly netAdmin: boolean;
  readonly netRaw: boolean;
  /** splice(2) usable; undefined when it cannot be told without the addon. */
  readonly splice: boolean | undefined;
  /** Where the answer came from. */
  readonly source: 'addon' | 'procfs' | 'none';
}

export interface NativeStatus {
  /** The addon loaded. */
  readonly available: boolean;
  /** Why it did not (undefined when it did). */
  readonly loadError: Error | undefined;
  readonly addon: RxredirectAddon | undefined;
  /** What this process may do; works without the addon on Linux (from /proc). */
  readonly capabilities: Capabilities;
}

// Compiled to dist/lib/platform/addon.js: the package root is three levels up.
const PACKAGE_ROOT = join(__dirname, '..', '..', '..');
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

let loaded: { addon: RxredirectAddon | undefined; error: Error | undefined } | undefined;
let capabilitiesCache: Capabilities | undefined;

/** Loads the addon once (node-gyp-build: prebuilds/ or build/); undefined when it cannot. */
export function loadAddon(): RxredirectAddon | undefined {
  if (loaded === undefined) loaded = tryLoad();
  return loaded.addon;
}

function tryLoad(): { addon: RxredirectAddon | undefined; error: Error | undefined } {
  if (process.env.RXREDIRECT_NATIVE === '0') {
    return { addon: undefined, error: new Error('turned off by RXREDIRECT_NATIVE=0') };
  }
  try {
    const build = require('node-gyp-build') as (dir: string) => unknown;
    const addon = build(PACKAGE_ROOT) as RxredirectAddon;
    if (typeof addon?.version !== 'function') throw new Error('the loaded module is not the rxredirect addon');
    return { addon, error: undefined };
  } catch (err) {
    return { addon: undefined, error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/** Live view of the addon's state; properties are computed on first use. */
export const native: NativeStatus = Object.freeze({
  get available(): boolean {
    return loadAddon() !== undefined;
  },
  get loadError(): Error | undefined {
    loadAddon();
    return loaded?.error;
  },
  get addon(): RxredirectAddon | undefined {
    return loadAddon();
  },
  get capabilities(): Capabilities {
    capabilitiesCache ??= probeCapabilities();
    return capabilitiesCache;
  },
});

const REMEDY =
  'Prebuilt addons cover linux-x64 and linux-arm64 (glibc) and win32-x64; elsewhere build it with ' +
  '`npm rebuild rxredirect --build-from-source` (needs python3, make and a C++ compiler; see docs/install.md), ' +
  'and make sure RXREDIRECT_NATIVE is not set to 0.';

/** The addon, or a coded error that says which feature needs it and how to get it. */
export function requireNative(feature: string): RxredirectAddon {
  const addon = loadAddon();
  if (addon === undefined) {
    const why = loaded?.error?.message ?? 'unknown reason';
    throw new RedirectError(
      'ERR_REDIRECT_ADDON_UNAVAILABLE',
      `${feature} needs the rxredirect native addon, which is not loaded (${why}). ${REMEDY}`,
      { cause: loaded?.error },
    );
  }
  return addon;
}

/** The addon's Linux functions, or a coded error (other OS, or addon missing). */
export function requireLinux(feature: string): LinuxAddon {
  if (process.platform !== 'linux') {
    throw new RedirectError(
      'ERR_REDIRECT_ADDON_UNAVAILABLE',
      `${feature} works on Linux only (this is ${process.platform})`,
    );
  }
  const addon = requireNative(feature);
  if (addon.platform !== 'linux' || typeof addon.createMarkedSocket !== 'function') {
    throw new RedirectError(
      'ERR_REDIRECT_ADDON_UNAVAILABLE',
      `${feature}: the loaded addon has no Linux support (stale build?). ${REMEDY}`,
    );
  }
  return addon as LinuxAddon;
}

/** The Linux addon when it is loaded, undefined otherwise (for features that can do without). */
export function optionalLinux(): LinuxAddon | undefined {
  const addon = loadAddon();
  return addon?.platform === 'linux' && typeof addon.getMark === 'function' ? (addon as LinuxAddon) : undefined;
}

/** The file descriptor under a net.Socket or net.Server (libuv keeps ownership). */
export function fdOf(handleOwner: Socket | Server): number {
  const fd = descriptorOf(handleOwner);
  if (fd === undefined) {
    throw new RedirectError('ERR_REDIRECT_NATIVE', 'the socket has no file descriptor (closed, or not a TCP socket)');
  }
  return fd;
}

/**
 * Wraps an addon system error in a RedirectError: EPERM/EACCES become
 * ERR_REDIRECT_PERMISSION (with `remedy` appended), anything else ERR_REDIRECT_NATIVE.
 */
export function nativeError(err: unknown, what: string, remedy?: string): RedirectError {
  if (err instanceof RedirectError) return err;
  const errno = errnoOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (errno === 'EPERM' || errno === 'EACCES') {
    return new RedirectError('ERR_REDIRECT_PERMISSION', `${what}: ${detail}${remedy ? `. ${remedy}` : ''}`, {
      cause: err,
    });
  }
  return new RedirectError('ERR_REDIRECT_NATIVE', `${what}: ${detail}`, { cause: err });
}

function probeCapabilities(): Capabilities {
  const addon = loadAddon();
  if (addon?.capabilities) {
    try {
      return Object.freeze({ ...addon.capabilities(), source: 'addon' as const });
    } catch {
      // fall through to procfs
    }
  }
  const effective = readCapEff();
  if (effective === undefined) {
    return Object.freeze({ netAdmin: false, netRaw: false, splice: undefined, source: 'none' as const });
  }
  return Object.freeze({
    netAdmin: hasBit(effective, CAP_NET_ADMIN),
    netRaw: hasBit(effective, CAP_NET_RAW),
    splice: undefined,
    source: 'procfs' as const,
  });
}

/** CapEff from /proc/self/status as a bigint, or undefined off Linux. */
function readCapEff(): bigint | undefined {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
    return match?.[1] === undefined ? undefined : BigInt(`0x${match[1]}`);
  } catch {
    return undefined;
  }
}

function hasBit(mask: bigint, bit: number): boolean {
  return ((mask >> BigInt(bit)) & 1n) === 1n;
}

/**
 * Windows WFP redirect records (docs/windows.md). The addon queries an
 * accepted socket with SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS / _CONTEXT
 * and SO_ORIGINAL_DST and hands back one outcome; this module turns it into a
 * RedirectRecord or a coded error. The negotiation itself is portable C++
 * (native/wfp-logic.cc) and is exported on every OS for tests.
 */

export type WfpStatus = 'ok' | 'not-redirected' | 'error';

/** What the addon returns for one accepted socket (native/wfp-napi.cc, WfpRecordObject). */
export interface WfpNativeOutcome {
  readonly status: WfpStatus;
  /** Present when status is 'ok': SO_ORIGINAL_DST. */
  readonly destination?: NativeEndpoint;
  /** Present when status is 'ok': the opaque redirect records, never empty. */
  readonly records?: Uint8Array;
  /** The callout's redirect context, when it set one. */
  readonly context?: Uint8Array;
  /** Windows error of the failing call (WSAGetLastError), 0 when none. */
  readonly error: number;
  /** 'WSAEINVAL', 'WSAEOPNOTSUPP', … or 'WIN<n>'. */
  readonly errorName: string;
  /** 'WSAIoctl' or 'getsockopt' when a call failed, '' otherwise. */
  readonly syscall: string;
  /** Short reason: 'records: provider-lacks-ioctl', 'original-destination', … */
  readonly reason: string;
}

/** One scripted WSAIoctl reply for the test-only negotiation export. */
export interface WfpScriptedReply {
  readonly error: number;
  readonly bytesReturned: number;
  /** Bytes the fake provider writes into the output buffer (clipped to its size). */
  readonly fill?: Uint8Array;
}

/** Result of one buffer-size negotiation (native/wfp-logic.h, Outcome). */
export interface WfpNegotiation {
  readonly status: WfpStatus;
  readonly bytes: Uint8Array;
  readonly error: number;
  readonly errorName: string;
  readonly reason: string;
  /** Output buffer size offered on each call, in order. */
  readonly asks: readonly number[];
}

/** The portable WFP logic the addon exports on every OS, for tests (not public API). */
export interface WfpLogicExports {
  wfpNegotiate(replies: readonly WfpScriptedReply[], maxBytes?: number): WfpNegotiation;
  wfpParseSockaddr(bytes: Uint8Array): NativeEndpoint | undefined;
  wfpBuildRecord(
    records: readonly WfpScriptedReply[],
    context: readonly WfpScriptedReply[],
    originalDstError: number,
    sockaddr: Uint8Array,
  ): WfpNativeOutcome;
}

export type WfpEventCallback = (kind: number, id: number, a: unknown, b: unknown) => void;

/** The Windows exports of the addon (native/win/wfp-exports.cc). */
export interface WfpEngineAddon {
  wfpEngineInit(callback: WfpEventCallback): void;
  wfpEngineRef(ref: boolean): void;
  wfpListen(family: 4 | 6, address: string, port: number, backlog?: number): { id: number; port: number };
  wfpConnect(family: 4 | 6, address: string, port: number, records?: Uint8Array, bindAddress?: string): number;
  wfpWrite(id: number, bytes: Uint8Array): void;
  wfpReadStart(id: number): void;
  wfpReadStop(id: number): void;
  wfpEnd(id: number): void;
  wfpReset(id: number): void;
  wfpDestroy(id: number): void;
  wfpCloseListener(id: number): void;
}
