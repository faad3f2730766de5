// Size: the Windows engine's event dispatch and the Transport over it belong together: each
// transport call is one engine command and each engine event one handler call.
import { RedirectError } from '../common/errors';
import { normaliseAddress } from '../common/record';
import type { Transport, TransportHandlers } from './transport';
import type { Endpoint, ResolvedTarget } from '../common/types';
import type { WfpEngineAddon, WfpNativeOutcome } from '../platform/addon';

/**
 * Windows with WFP: Node cannot give the addon the SOCKET behind a net.Socket,
 * so the addon owns the sockets (native/win/wfp-engine.cc) and this module
 * drives them through the same Transport seam as SocketTransport. Reading is
 * started and stopped at the OS level (the engine stops polling the socket,
 * so the kernel buffer fills and TCP closes the window); `writableLength` is
 * exact: bytes handed to the engine and not yet taken by the kernel.
 * See docs/windows.md. Nothing here has run on real Windows yet.
 */

/** Event kinds of the engine (native/win/wfp-engine.h, WfpEventKind). */
export const WFP_EVENT = Object.freeze({
  ACCEPT: 0,
  CONNECT: 1,
  DATA: 2,
  END: 3,
  FLUSHED: 4,
  ERROR: 5,
  CLOSE: 6,
});

/** What the engine reports for an accepted connection. */
export interface WfpAcceptInfo extends WfpNativeOutcome {
  readonly local?: Endpoint;
  readonly remote?: Endpoint;
}

export interface WfpListenOptions {
  /** IP literal; '::' serves IPv4 and IPv6. */
  readonly host: string;
  readonly port: number;
  readonly backlog?: number;
}

/** Turns an engine error name ('WSAECONNRESET') into a Node-style system error ('ECONNRESET'). */
export function engineError(name: unknown, syscall: unknown): Error & { code: string; syscall: string } {
  const winName = typeof name === 'string' ? name : 'WIN0';
  const code = winName.startsWith('WSAE') ? winName.slice(3) : winName;
  const call = typeof syscall === 'string' && syscall !== '' ? syscall : 'socket';
  return Object.assign(new Error(`${call} ${code} (${winName})`), { code, syscall: call, winCode: winName });
}

/** One engine per process: it owns every WFP socket and routes events by id. */
export class WfpEngine {
  private readonly addon: WfpEngineAddon;
  private readonly transports = new Map<number, NativeTransport>();
  private readonly listeners = new Map<number, (transport: NativeTransport, info: WfpAcceptInfo) => void>();
  private referenced = false;

  constructor(addon: WfpEngineAddon) {
    this.addon = addon;
    addon.wfpEngineInit((kind, id, a, b) => this.dispatch(kind, id, a, b));
  }

  /** Opens a native listener; `onAccept` gets each connection paused, with its WFP outcome. */
  listen(
    options: WfpListenOptions,
    onAccept: (transport: NativeTransport, info: WfpAcceptInfo) => void,
  ): { readonly id: number; readonly port: number; close(): void } {
    const { address, family } = literal(options.host, 'host');
    const { id, port } = this.addon.wfpListen(family === 'IPv6' ? 6 : 4, address, options.port, options.backlog);
    this.listeners.set(id, onAccept);
    this.updateRef();
    return {
      id,
      port,
      close: () => {
        if (!this.listeners.delete(id)) return;
        this.addon.wfpCloseListener(id);
        this.updateRef();
      },
    };
  }

  /**
   * Connects out. `records` (from the accepted flow's record) are set on the
   * socket before connect, so the callout does not redirect our own connection.
   */
  connect(target: ResolvedTarget, records?: Uint8Array, localAddress?: string): NativeTransport {
    const { address, family } = literal(target.host, 'target.host');
    const id = this.addon.wfpConnect(family === 'IPv6' ? 6 : 4, address, target.port, records, localAddress);
    const transport = new NativeTransport(this.addon, id, undefined, { address, port: target.port, family }, true);
    this.track(id, transport);
    return transport;
  }

  get liveTransports(): number {
    return this.transports.size;
  }

  private track(id: number, transport: NativeTransport): void {
    this.transports.set(id, transport);
    this.updateRef();
  }

  private updateRef(): void {
    const want = this.transports.size > 0 || this.listeners.size > 0;
    if (want !== this.referenced) {
      this.referenced = want;
      this.addon.wfpEngineRef(want);
    }
  }

  private dispatch(kind: number, id: number, a: unknown, b: unknown): void {
    if (kind === WFP_EVENT.ACCEPT) {
      const onAccept = this.listeners.get(a as number);
      const info = b as WfpAcceptInfo;
      if (onAccept === undefined) {
        this.addon.wfpDestroy(id);
        return;
      }
      const transport = new NativeTransport(this.addon, id, normalised(info.local), normalised(info.remote), false);
      this.track(id, transport);
      onAccept(transport, info);
      return;
    }
    const transport = this.transports.get(id);
    if (transport === undefined) return;
    if (kind === WFP_EVENT.CLOSE) {
      this.transports.delete(id);
      this.updateRef();
    }
    transport.onEngineEvent(kind, a, b);
  }
}

interface PendingFlush {
  remaining: number;
  flushed: (err?: Error | null) => void;
}

/** Transport over an engine-owned SOCKET. Created by WfpEngine only. */
export class NativeTransport implements Transport {
  readonly localEndpoint: Endpoint | undefined;
  readonly remoteEndpoint: Endpoint | undefined;
  private readonly addon: WfpEngineAddon;
  private readonly id: number;
  private handlers: TransportHandlers | undefined;
  /** Events that came before attach() (a connect error, a close). */
  private early: [number, unknown, unknown][] = [];
  private unflushed = 0;
  private readonly pending: PendingFlush[] = [];
  private reading = false;
  private closed = false;
  /** FIN both ways: the peer's arrived, ours was asked for. Then it closes itself once flushed, like a net.Socket. */
  private peerEnded = false;
  private endRequested = false;
  private connecting: boolean;
  private connectWaiters: ((err?: Error) => void)[] = [];

  constructor(
    addon: WfpEngineAddon,
    id: number,
    local: Endpoint | undefined,
    remote: Endpoint | undefined,
    connecting: boolean,
  ) {
    this.addon = addon;
    this.id = id;
    this.localEndpoint = local;
    this.remoteEndpoint = remote;
    this.connecting = connecting;
  }

  get writableLength(): number {
    return this.unflushed;
  }

  get destroyed(): boolean {
    return this.closed;
  }

  /** Resolves once an outbound connection is up; rejects with ECONNREFUSED and the like. */
  connected(): Promise<void> {
    if (!this.connecting)
      return this.closed ? Promise.reject(engineError('WSAENOTCONN', 'connect')) : Promise.resolve();
    return new Promise((resolve, reject) => this.connectWaiters.push((err) => (err ? reject(err) : resolve())));
  }

  attach(handlers: TransportHandlers): void {
    this.handlers = handlers;
    const early = this.early;
    this.early = [];
    for (const [kind, a, b] of early) this.onEngineEvent(kind, a, b);
  }

  startReading(): void {
    if (this.reading || this.closed) return;
    this.reading = true;
    this.addon.wfpReadStart(this.id);
  }

  stopReading(): void {
    if (!this.reading || this.closed) return;
    this.reading = false;
    this.addon.wfpReadStop(this.id);
  }

  write(chunk: Buffer, flushed: (err?: Error | null) => void): void {
    if (this.closed) {
      queueMicrotask(() => flushed(engineError('WSAENOTCONN', 'send')));
      return;
    }
    if (chunk.length === 0) {
      queueMicrotask(() => flushed(null));
      return;
    }
    this.unflushed += chunk.length;
    this.pending.push({ remaining: chunk.length, flushed });
    this.addon.wfpWrite(this.id, chunk);
  }

  end(): void {
    if (this.closed || this.endRequested) return;
    this.endRequested = true;
    this.addon.wfpEnd(this.id);
    this.closeIfDone();
  }

  reset(): void {
    if (!this.closed) this.addon.wfpReset(this.id);
  }

  destroy(): void {
    if (!this.closed) this.addon.wfpDestroy(this.id);
  }

  /** Called by WfpEngine only. */
  onEngineEvent(kind: number, a: unknown, b: unknown): void {
    if (kind === WFP_EVENT.CONNECT) {
      this.connecting = false;
      const err = typeof a === 'string' ? engineError(a, 'connect') : undefined;
      const waiters = this.connectWaiters;
      this.connectWaiters = [];
      for (const w of waiters) w(err);
      if (err !== undefined && this.handlers === undefined) this.early.push([WFP_EVENT.ERROR, a, 'connect']);
      else if (err !== undefined) this.handlers?.error(err);
      return;
    }
    if (kind === WFP_EVENT.FLUSHED) {
      this.takeFlushed(a as number);
      this.closeIfDone();
      return;
    }
    const handlers = this.handlers;
    if (handlers === undefined) {
      this.early.push([kind, a, b]);
      return;
    }
    switch (kind) {
      case WFP_EVENT.DATA:
        handlers.data(a as Buffer);
        break;
      case WFP_EVENT.END:
        this.peerEnded = true;
        handlers.end();
        this.closeIfDone();
        break;
      case WFP_EVENT.ERROR:
        handlers.error(engineError(a, b));
        break;
      case WFP_EVENT.CLOSE:
        this.closed = true;
        this.failPending();
        for (const w of this.connectWaiters.splice(0)) w(engineError('WSAECONNABORTED', 'connect'));
        handlers.close();
        break;
    }
  }

  /**
   * net.Socket with allowHalfOpen closes itself once it has seen the peer's FIN and sent its own;
   * Connection relies on that. wfpDestroy drops what the engine still queues, so it waits until
   * the kernel took every byte: closesocket then sends the rest and the FIN gracefully.
   */
  private closeIfDone(): void {
    if (this.peerEnded && this.endRequested && this.unflushed === 0 && !this.closed) this.addon.wfpDestroy(this.id);
  }

  private takeFlushed(bytes: number): void {
    this.unflushed = Math.max(0, this.unflushed - bytes);
    let left = bytes;
    while (left > 0 && this.pending.length > 0) {
      const head = this.pending[0]!;
      const take = Math.min(left, head.remaining);
      head.remaining -= take;
      left -= take;
      if (head.remaining === 0) {
        this.pending.shift();
        head.flushed(null);
      }
    }
  }

  private failPending(): void {
    this.unflushed = 0;
    const pending = this.pending.splice(0);
    for (const p of pending) p.flushed(engineError('WSAECONNABORTED', 'send'));
  }
}

function literal(host: string, what: string): { address: string; family: 'IPv4' | 'IPv6' } {
  try {
    return normaliseAddress(host);
  } catch (err) {
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', `${what} must be an IP literal (got "${host}")`, {
      cause: err,
    });
  }
}

function normalised(endpoint: Endpoint | undefined): Endpoint | undefined {
  if (endpoint === undefined) return undefined;
  const { address, family } = normaliseAddress(endpoint.address);
  return { address, port: endpoint.port, family };
}
