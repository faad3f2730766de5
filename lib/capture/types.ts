import type { Socket } from 'node:net';
import type { Endpoint, RedirectMechanism, RedirectRecord, RedirectRecordInit, TargetAddress } from '../common/types';

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
  readonly transport: import('../net/transport').Transport;
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
