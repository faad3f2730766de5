import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { normaliseAddress } from '../common/record';
import type { ResolvedTarget, TargetAddress } from '../common/types';

/**
 * The address to connect to. An IP literal (the usual case) is answered
 * synchronously, so the connect needs no await and happens in the same tick.
 */
export function literalTarget(target: TargetAddress): ResolvedTarget | Promise<ResolvedTarget> {
  if (isIP(target.host)) {
    const { address, family } = normaliseAddress(target.host);
    return { host: address, port: target.port, family };
  }
  return lookup(target.host).then((found) => ({
    host: found.address,
    port: target.port,
    family: found.family === 6 ? 'IPv6' : 'IPv4',
  }));
}

/** Tells a user callback's promise from a plain answer, so a plain one costs no microtask. */
export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
