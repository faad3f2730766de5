import type { Socket } from 'node:net';
import type { ServerConfig } from '../config/options';
import type { Transport } from '../net/transport';
import type { Chain } from './build-flow';
import { Pump } from '../pipeline/pump';
import { zeroCopyEngine } from '../zero-copy/engine';
import { closeAfterRelay, ZeroCopyLink } from '../zero-copy/link';
import type { Upstream } from './dial';
import { DirectionHooks, type DirectionOwner } from './direction-hooks';

/**
 * A flow's two directions, each a Pump from one transport to the other; with
 * `zeroCopy: 'auto'`, a direction without a chain (or bypassed) is handed to the splice
 * engine through a ZeroCopyLink (docs/zero-copy.md).
 */
export class Directions {
  readonly up: Pump;
  readonly down: Pump;
  /** The socket pair the splice engine may own; only these need closing after a relay. */
  private readonly spliceable: { readonly client: Socket; readonly up: Socket } | undefined;

  constructor(
    owner: DirectionOwner,
    config: ServerConfig,
    client: Transport,
    upstream: Upstream,
    chain: Chain,
    /** The upstream pump of a deferred connect, already running into a queue. */
    deferredUp: Pump | undefined,
  ) {
    const hwm = config.limits.highWaterMark;
    // 'auto': a direction without a chain goes to the kernel once it shows bulk; 'always': at once.
    const engine = config.zeroCopy !== 'off' ? zeroCopyEngine() : undefined;
    const atOnce = config.zeroCopy === 'always';
    // The only place a flow's sockets are taken from their transports: the engine needs descriptors.
    const clientSocket = client.socket;
    const upSocket = upstream.transport.socket;
    this.spliceable = engine && clientSocket && upSocket ? { client: clientSocket, up: upSocket } : undefined;
    const pair = this.spliceable;
    // A deferred upstream pump started before the upstream existed: it stays on the JS path.
    const upLink = engine && pair && !deferredUp ? new ZeroCopyLink(engine, pair.client, pair.up, atOnce) : undefined;
    const downLink = engine && pair ? new ZeroCopyLink(engine, pair.up, pair.client, atOnce) : undefined;
    if (upLink && downLink) upLink.pair(downLink);
    const max = config.limits.maxReadBytes;
    this.up =
      deferredUp ??
      new Pump(client, upstream.transport, chain.upstream, hwm, new DirectionHooks(owner, 'client'), upLink, max);
    this.down = new Pump(
      upstream.transport,
      client,
      chain.downstream,
      hwm,
      new DirectionHooks(owner, 'upstream'),
      downLink,
      max,
    );
  }

  /**
   * Both directions sent their FIN. Node closes a socket by itself only after seeing its
   * FIN; a source the engine read never shows one, so close both here.
   */
  finished(): void {
    const { up, down } = this;
    if (!up.ended || !down.ended || (!up.handedOff && !down.handedOff) || !this.spliceable) return;
    closeAfterRelay(this.spliceable.client);
    closeAfterRelay(this.spliceable.up);
  }
}
