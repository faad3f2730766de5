import { isIP, Socket } from 'node:net';
import { RedirectError } from '../common/errors';
import { requireLinux } from '../platform/addon';
import { passableHandleOf } from '../platform/node-internals';
import { normaliseAddress } from '../common/record';
import type { Endpoint } from '../common/types';

/** Where the workers listen. */
export interface ClusterListenOptions {
  /** An IP literal. Default '127.0.0.1'. */
  host?: string;
  /** Default 0: the first socket picks a port, the others join it. */
  port?: number;
  backlog?: number;
  /** For an IPv6 host: IPv6 only (no v4-mapped flows). Default false. */
  ipv6Only?: boolean;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT before bind(2), for TPROXY (needs CAP_NET_ADMIN). */
  transparent?: boolean;
}

/**
 * The listening sockets of a cluster, one per worker slot, all in one
 * SO_REUSEPORT group. The primary holds them for its whole life and never
 * accepts: each is a net.Socket over the fd that never reads, so its handle can
 * be passed to a worker with child.send(message, handle). Holding them is what
 * keeps a dead or draining worker's queue from being reset (docs/workers.md).
 */
export class ListeningSockets {
  readonly address: Endpoint;
  private readonly holders: Socket[] = [];
  private readonly family: 4 | 6;
  private readonly options: ClusterListenOptions;

  constructor(options: ClusterListenOptions, count: number) {
    const addon = requireLinux('workers (SO_REUSEPORT listeners)');
    const host = options.host ?? '127.0.0.1';
    const kind = isIP(host);
    if (kind === 0)
      throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', `listen.host must be an IP address, got ${host}`);
    const port = options.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RedirectError(
        'ERR_REDIRECT_INVALID_OPTION',
        `listen.port must be an integer 0–65535, got ${String(port)}`,
      );
    }
    this.family = kind === 6 ? 6 : 4;
    this.options = options;
    const first = this.open(host, port);
    const bound = addon.localAddress(first);
    const { address, family } = normaliseAddress(bound.address);
    this.address = Object.freeze({ address, port: bound.port, family });
    this.holders.push(hold(first));
    try {
      while (this.holders.length < count) this.grow();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get count(): number {
    return this.holders.length;
  }

  /** Adds one more socket to the group (a reload to more workers). */
  grow(): void {
    this.holders.push(hold(this.open(this.options.host ?? '127.0.0.1', this.address.port)));
  }

  /** The handle to pass for a slot (a slot past the sockets shares one: sockets are never closed early). */
  handle(slot: number): object {
    const handle = passableHandleOf(this.holders[slot % this.holders.length] as Socket);
    if (handle === undefined) throw new RedirectError('ERR_REDIRECT_SERVER_STATE', 'the listening sockets are closed');
    return handle;
  }

  close(): void {
    for (const holder of this.holders.splice(0)) holder.destroy();
  }

  private open(host: string, port: number): number {
    const addon = requireLinux('workers (SO_REUSEPORT listeners)');
    const { backlog, ipv6Only, transparent } = this.options;
    try {
      return addon.listenReusePort(this.family, host, port, {
        ...(backlog === undefined ? {} : { backlog }),
        ipv6Only: ipv6Only === true,
        transparent: transparent === true,
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new RedirectError('ERR_REDIRECT_LISTEN_FAILED', `cannot listen on ${host} port ${port}: ${message}`, {
        cause: err,
      });
    }
  }
}

/** A net.Socket that owns the fd and never reads (readStart on a listener would fail). */
function hold(fd: number): Socket {
  const socket = new Socket({ fd, readable: false, writable: false });
  // A listening socket has no peer; nothing should ever be emitted, but never crash the primary.
  socket.on('error', () => {});
  return socket;
}
