import type { BypassDirection, ResolvedTarget, TargetAddress } from '../common/types';
import type { ResolveResult } from '../capture/types';
import type { ServerConfig } from '../config/options';
import { buildChain } from '../pipeline/compose';
import { ConnectDeferrals, type ContextOwner, createContext } from '../pipeline/context';

export type Chain = ReturnType<typeof buildChain>;

/** What the building step decided. */
export interface BuiltFlow {
  readonly chain: Chain;
  /** Present when middleware ran; `pending > 0` when one deferred the connect. */
  readonly deferrals: ConnectDeferrals | undefined;
  /** Where to connect unless a deferral's release names another target. */
  readonly target: TargetAddress;
  /** The record's own destination, already a normalised IP literal: no lookup needed. */
  readonly literal: ResolvedTarget | undefined;
}

/** The chain of a server without middleware: both directions relay raw. */
const NO_CHAIN: Chain = Object.freeze({});

/**
 * Building (docs/design.md, lifecycle step 3): every middleware is called once with the
 * context, then the target is chosen (the resolver's, the `target` option's, or the record's
 * own destination). No I/O. Throws what a middleware or the target option threw, or the coded
 * error of a release that named a bad target while the chain was built.
 */
export function buildFlow(
  config: ServerConfig,
  owner: ContextOwner,
  resolved: ResolveResult,
  bypass: (direction: BypassDirection) => void,
): BuiltFlow {
  let chain = NO_CHAIN;
  let deferrals: ConnectDeferrals | undefined;
  try {
    // No middleware: nothing can use (or keep) a context, or defer the connect.
    if (config.middleware.length > 0) {
      deferrals = new ConnectDeferrals();
      chain = buildChain(config.middleware, createContext(owner, config.id, bypass, deferrals));
      deferrals.seal();
      if (deferrals.failure) throw deferrals.failure;
    }
    const chosen = resolved.target ?? config.target?.(owner.record);
    if (chosen !== undefined) return { chain, deferrals, target: chosen, literal: undefined };
    const { address, port, family } = owner.record.destination;
    return { chain, deferrals, target: { host: address, port }, literal: { host: address, port, family } };
  } catch (err) {
    deferrals?.seal();
    throw err;
  }
}
