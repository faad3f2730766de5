import { Socket } from 'node:net';
import { flowKey } from '../common/loop-guard';
import type { RedirectRecord, ResolvedTarget } from '../common/types';
import { SocketTransport } from '../net/socket-transport';
import type { Transport, TransportHandlers } from '../net/transport';
import { egressFault, type Fault } from './faults';
import type { ConnectionHost, NativeUpstream } from './host';

/** The outbound side of a flow once dialled. */
export interface Upstream {
  readonly transport: Transport;
  /** An egress preamble failed: the flow ends with this, after the upstream is known. */
  readonly fault?: Fault;
}

export interface DialEvents extends TransportHandlers {
  /** The connect completed. */
  connected(): void;
}

/**
 * Dials `target` for `record` (docs/design.md, lifecycle step "connecting"): makes the socket
 * (an egress plugin's, with its mark set before connect, or a plain one; or the platform's
 * native upstream), connects in the same tick to the IP literal so that no path can swap in
 * another socket, remembers our own egress for loop detection, and writes the egress
 * preambles before any payload. Returns the fault instead of throwing.
 */
export function dialUpstream(
  host: ConnectionHost,
  record: RedirectRecord,
  target: ResolvedTarget,
  events: DialEvents,
  /** Our own egress, remembered when the server's records can be the kernel's. */
  egress: EgressRegistration | undefined,
): Upstream | Fault {
  const { config } = host;
  let socket: Socket | undefined;
  let native: NativeUpstream | undefined;
  try {
    if (host.connectNative) native = host.connectNative(target, record);
    else {
      socket = host.socketMaker ? host.socketMaker.createSocket(target, record) : new Socket({ allowHalfOpen: true });
      // A relay must not add Nagle delays of its own; the client's segments are already sized.
      // (Node applies it once connected; `noDelay` among connect()'s options is ignored.)
      socket.setNoDelay(true);
    }
  } catch (err) {
    return egressFault(err, 'cannot create the outbound socket');
  }
  const transport = native ?? new SocketTransport(socket as Socket);
  transport.attach(events);
  // A failed connect arrives as the transport's error, like a socket's.
  native?.connected().then(
    () => events.connected(),
    () => {},
  );
  // Only a server whose records can be the kernel's remembers its egress (see recordLoop).
  const remember = socket !== undefined ? egress : undefined;
  socket?.once('connect', () => {
    events.connected();
    remember?.register(transport, target);
  });
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
  if (remember) process.nextTick(() => remember.register(transport, target));
  try {
    for (const plugin of config.egress) {
      const preamble = plugin.preamble?.(record, target);
      if (preamble && preamble.length > 0) transport.write(preamble, noop);
    }
  } catch (err) {
    return { transport, fault: egressFault(err) };
  }
  return { transport };
}

/** True when dialUpstream could not even make the socket. */
export function isFault(value: Upstream | Fault): value is Fault {
  return (value as Upstream).transport === undefined;
}

/**
 * Our own live egress `local>remote`, registered once bound and removed at close, so a flow
 * that comes back to us is recognised as a loop (lib/common/loop-guard.ts).
 */
export class EgressRegistration {
  private key: string | undefined;

  constructor(
    private readonly registry: Set<string>,
    private readonly flow: { readonly closed: boolean },
  ) {}

  register(upstream: Transport, to: ResolvedTarget): void {
    if (this.key !== undefined || this.flow.closed) return;
    const local = upstream.boundEndpoint?.();
    if (local === undefined || local.port === 0) return; // not bound yet: 'connect' will register it
    this.key = flowKey(local, { address: to.host, port: to.port, family: to.family });
    this.registry.add(this.key);
  }

  release(): void {
    if (this.key !== undefined) this.registry.delete(this.key);
  }
}

function noop(): void {}
