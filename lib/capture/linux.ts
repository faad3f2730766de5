import type { Server, Socket } from 'node:net';
import { errnoOf, invalidOption, RedirectError } from '../common/errors';
import { chainFromMark, checkCooperating, type CooperatingMarks } from '../common/marks';
import { fdOf, type LinuxAddon } from '../platform/addon';
import { checkTargetAddress } from '../common/target-address';
import { createRecord, endpointKey, makeEndpoint, sameEndpoint } from '../common/record';
import type { Endpoint, RedirectMechanism, TargetAddress } from '../common/types';
import type { ResolveResult, ResolverContext } from './types';

/**
 * Resolver for iptables/nftables REDIRECT and DNAT: the kernel rewrote the
 * destination, conntrack remembers the original, SO_ORIGINAL_DST reads it.
 */

export interface LinuxResolverOptions {
  /**
   * A flow that was not redirected (a client that connected to the proxy's own
   * address): 'refuse' (default) ends it with ERR_REDIRECT_NOT_REDIRECTED;
   * `{ host, port }` sends it there instead.
   */
  notRedirected?: 'refuse' | TargetAddress;
  /**
   * Cooperating proxies and their mark bits. A flow that arrives with a bit set
   * (net.ipv4.tcp_fwmark_accept=1) lists that proxy in `record.chain`.
   */
  cooperating?: CooperatingMarks;
  /** This proxy's id; when given with `cooperating`, it must have a bit there. */
  id?: string;
}

export interface CheckedLinuxOptions {
  readonly notRedirected: 'refuse' | TargetAddress;
  readonly cooperating: CooperatingMarks | undefined;
}

export function checkLinuxResolverOptions(options: LinuxResolverOptions | undefined): CheckedLinuxOptions {
  if (options === undefined) return { notRedirected: 'refuse', cooperating: undefined };
  if (options === null || typeof options !== 'object') {
    throw invalidOption('resolve', 'resolver options must be an object');
  }
  const notRedirected =
    options.notRedirected === undefined || options.notRedirected === 'refuse'
      ? 'refuse'
      : checkTargetAddress(options.notRedirected, 'resolve.notRedirected');
  const cooperating =
    options.cooperating === undefined ? undefined : checkCooperating(options.cooperating, 'resolve.cooperating');
  if (options.id !== undefined) {
    if (typeof options.id !== 'string') throw invalidOption('resolve.id', 'must be a string');
    // Our own bit is what marks our own egress coming back; without it a loop is only
    // caught by the core's egress-socket check.
    if (cooperating !== undefined && !Object.hasOwn(cooperating, options.id)) {
      throw invalidOption('resolve.cooperating', `has no bit for this proxy's own id "${options.id}"`);
    }
  }
  return { notRedirected, cooperating };
}

/** What an accepted socket tells about itself, normalised. */
export interface AcceptedFacts {
  readonly fd: number | undefined;
  readonly local: Endpoint;
  readonly peer: Endpoint;
  /** SO_MARK, when the addon is loaded. */
  readonly mark: number | undefined;
}

export function acceptedFacts(socket: Socket, addon: LinuxAddon | undefined): AcceptedFacts {
  if (socket.localAddress === undefined || socket.remoteAddress === undefined) {
    throw new RedirectError('ERR_REDIRECT_RESOLVE_FAILED', 'the accepted socket is already closed');
  }
  const local = makeEndpoint({ address: socket.localAddress, port: socket.localPort ?? 0 }, 'destination');
  const peer = makeEndpoint({ address: socket.remoteAddress, port: socket.remotePort ?? 0 }, 'source');
  if (addon === undefined) return { fd: undefined, local, peer, mark: undefined };
  const fd = fdOf(socket);
  let mark: number | undefined;
  try {
    mark = addon.getMark(fd);
  } catch {
    mark = undefined; // a closed socket fails later, with a better message
  }
  return { fd, local, peer, mark };
}

/**
 * The conntrack original destination, or undefined when the flow was not
 * NATed: untracked (ENOENT), no conntrack at all (ENOPROTOOPT), or tracked
 * with its own local address as destination.
 */
export function originalDestinationOf(addon: LinuxAddon, facts: AcceptedFacts): Endpoint | undefined {
  if (facts.fd === undefined) return undefined;
  let raw: { address: string; port: number };
  try {
    raw = addon.originalDestination(facts.fd);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOPROTOOPT') return undefined;
    throw new RedirectError(
      'ERR_REDIRECT_RESOLVE_FAILED',
      `cannot read the original destination of ${endpointKey(facts.peer)}: ${String(err)}`,
      { cause: err },
    );
  }
  const destination = makeEndpoint(raw, 'destination');
  return sameEndpoint(destination, facts.local) ? undefined : destination;
}

export function redirectedResult(
  mechanism: RedirectMechanism,
  facts: AcceptedFacts,
  destination: Endpoint,
  options: CheckedLinuxOptions,
): ResolveResult {
  return {
    record: createRecord({
      mechanism,
      source: facts.peer,
      destination,
      chain: chainFromMark(facts.mark, options.cooperating),
      ...(facts.mark === undefined ? {} : { mark: facts.mark }),
    }),
  };
}

/** Refuses a flow nobody redirected, or sends it to the configured fallback. */
export function notRedirectedResult(
  mechanism: RedirectMechanism,
  facts: AcceptedFacts,
  options: CheckedLinuxOptions,
  why: string,
): ResolveResult {
  if (options.notRedirected === 'refuse') {
    throw new RedirectError(
      'ERR_REDIRECT_NOT_REDIRECTED',
      `${endpointKey(facts.peer)} connected to ${endpointKey(facts.local)} directly (${why}); ` +
        'set notRedirected: { host, port } to serve such flows',
    );
  }
  const { record } = redirectedResult(mechanism, facts, facts.local, options);
  return { record, target: options.notRedirected };
}

/** The listener's own endpoint: what the core passed, or what the server reports. */
export function listenerEndpoint(ctx: ResolverContext): Endpoint | undefined {
  if (ctx.listenAddress !== undefined) return ctx.listenAddress;
  const server = (ctx.socket as Socket & { server?: Server | null }).server;
  const address = server?.address();
  if (address === null || address === undefined || typeof address === 'string') return undefined;
  return makeEndpoint({ address: address.address, port: address.port }, 'listenAddress');
}
