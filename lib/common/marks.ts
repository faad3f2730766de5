import { PROXY_ID_PATTERN } from './record';
import { invalidOption } from './errors';
import type { ChainEntry } from './types';

/**
 * Loop-safe egress on Linux: the outbound socket carries SO_MARK from before
 * connect(), so a rule `-m mark --mark M/M -j RETURN` lets our own SYN pass the
 * REDIRECT/TPROXY rule that brought the client to us. See docs/linux.md.
 */

/** Cooperating proxies by id, each with its own mark bit: `{ 'proxy-a': 0x1, 'proxy-b': 0x2 }`. */
export type CooperatingMarks = Readonly<Record<string, number>>;

/** What to do when SO_MARK is refused: the capability, or skip the proxy by owner (REDIRECT only). */
export const MARK_PERMISSION_REMEDY =
  'Setting SO_MARK needs CAP_NET_ADMIN (or CAP_NET_RAW on Linux >= 5.17): ' +
  'run the proxy as root, with ' +
  '`setcap cap_net_admin+ep <node binary>`, or under systemd with AmbientCapabilities=CAP_NET_ADMIN. ' +
  'Without it, skip the proxy by owner instead of by mark: run it as a dedicated user and use ' +
  '`iptables ... -m owner --uid-owner <user> -j RETURN` (REDIRECT only; see docs/linux.md)';

/**
 * What to do when IP_TRANSPARENT is refused. TPROXY rules sit in PREROUTING, where no owner is
 * known, so an owner match is no way round it: the listener itself must be transparent.
 */
export const TRANSPARENT_PERMISSION_REMEDY =
  'Setting IP_TRANSPARENT on the listener needs CAP_NET_ADMIN: run the proxy as root, with ' +
  '`setcap cap_net_admin+ep <node binary>`, or under systemd with AmbientCapabilities=CAP_NET_ADMIN. ' +
  'Without it, let a privileged helper create the transparent listening socket and pass its fd: ' +
  'server.listen({ fd }) with transparent: false (see docs/linux.md)';

export function checkMark(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 0xffffffff) {
    throw invalidOption(path, `must be an integer 1 – 0xffffffff, got ${String(value)}`);
  }
  return value;
}

/** Validates a cooperating map: ids like server ids, each a distinct single bit. */
export function checkCooperating(value: unknown, path: string): CooperatingMarks {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidOption(path, "must be an object { id: bit }, e.g. { 'proxy-a': 0x1, 'proxy-b': 0x2 }");
  }
  const seen = new Map<number, string>();
  for (const [id, bit] of Object.entries(value)) {
    if (!PROXY_ID_PATTERN.test(id)) throw invalidOption(path, `"${id}" is not a valid proxy id`);
    checkMark(bit, `${path}.${id}`);
    if ((bit & (bit - 1)) !== 0) {
      throw invalidOption(`${path}.${id}`, `must be a single bit (a power of two), got 0x${bit.toString(16)}`);
    }
    const other = seen.get(bit);
    if (other !== undefined) throw invalidOption(`${path}.${id}`, `uses the same bit as "${other}"`);
    seen.set(bit, id);
  }
  return Object.freeze({ ...(value as Record<string, number>) });
}

/**
 * The server's `cooperating` map with this proxy's own bit in it. `id` plus
 * `egress.mark` already name that bit, so the map may leave it out; only a
 * contradiction is refused (own bit not in the mark, or a bit another proxy has).
 */
export function withOwnBit(cooperating: CooperatingMarks, id: string, mark: number | undefined): CooperatingMarks {
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const own = cooperating[id];
  if (own !== undefined) {
    if (mark !== undefined && (mark & own) >>> 0 === 0) {
      throw invalidOption(
        `cooperating.${id}`,
        `is ${hex(own)}, but egress.mark ${hex(mark)} does not carry that bit: this proxy's own bit must be in its mark (or leave "${id}" out and it is taken from egress.mark)`,
      );
    }
    return cooperating;
  }
  if (mark === undefined) {
    throw invalidOption(
      'cooperating',
      `has no bit for this proxy's own id "${id}": add "${id}": <its bit>, or set egress.mark to that bit`,
    );
  }
  if ((mark & (mark - 1)) !== 0) {
    throw invalidOption(
      'cooperating',
      `has no bit for this proxy's own id "${id}", and egress.mark ${hex(mark)} has several bits: add "${id}": <the one that is its own>`,
    );
  }
  for (const [other, bit] of Object.entries(cooperating)) {
    if (bit === mark) {
      throw invalidOption(
        `cooperating.${other}`,
        `uses ${hex(bit)}, the bit of egress.mark (this proxy's own, "${id}")`,
      );
    }
  }
  return Object.freeze({ ...cooperating, [id]: mark });
}

/** All cooperating bits together. */
export function cooperatingMask(cooperating: CooperatingMarks | undefined): number {
  let mask = 0;
  for (const bit of Object.values(cooperating ?? {})) mask = (mask | bit) >>> 0;
  return mask;
}

/**
 * The cooperating proxies whose bit the flow arrived with, one entry each, in
 * ascending bit order. Give proxies bits in the order they see a flow (the
 * first proxy the lowest bit) and this is also oldest-first.
 */
export function chainFromMark(mark: number | undefined, cooperating: CooperatingMarks | undefined): ChainEntry[] {
  if (mark === undefined || mark === 0 || cooperating === undefined) return [];
  return Object.entries(cooperating)
    .filter(([, bit]) => (mark & bit) >>> 0 !== 0)
    .sort(([, a], [, b]) => a - b)
    .map(([id]) => ({ id, via: 'mark' }));
}
