import { RedirectError } from './errors';
import { checkTargetAddress } from './options';
import type { BypassDirection, ConnectionContext, RedirectRecord, TargetAddress } from './types';

/** What the context reads from its connection. */
export interface ContextOwner {
  readonly id: number;
  readonly record: RedirectRecord;
  /** Read through on every use: the connection makes its AbortController lazily. */
  readonly signal: AbortSignal;
}

/**
 * ctx.deferConnect() bookkeeping: the connect waits until every deferral
 * handed out while the chain was built has been released.
 */
export class ConnectDeferrals {
  /** The target named by a release, if any (the last one wins). */
  routed: TargetAddress | undefined;
  private building = true;
  private outstanding = 0;
  private released: () => void = () => {};

  /** Deferrals not released yet. */
  get pending(): number {
    return this.outstanding;
  }

  /** ctx.deferConnect(). */
  defer(): (to?: TargetAddress) => void {
    if (!this.building) {
      throw new RedirectError('ERR_REDIRECT_DEFER_CONNECT', 'deferConnect() is only allowed while the chain is built');
    }
    this.outstanding++;
    let done = false;
    return (to?: TargetAddress) => {
      if (done) return;
      // A bad target throws into the middleware that gave it, not into the connection.
      if (to !== undefined) this.routed = checkTargetAddress(to, 'deferConnect(target)');
      done = true;
      if (--this.outstanding === 0) this.released();
    };
  }

  /** The chain is built: no more deferrals can be taken. */
  seal(): void {
    this.building = false;
  }

  /** Settles once the last pending deferral is released. */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.released = resolve;
    });
  }
}

/** The `ctx` handed to each middleware of one flow. */
export function createContext(
  owner: ContextOwner,
  proxyId: string,
  bypass: (direction: BypassDirection) => void,
  deferrals: ConnectDeferrals,
): ConnectionContext {
  let state: Map<string | symbol, unknown> | undefined;
  return {
    id: owner.id,
    record: owner.record,
    get signal() {
      return owner.signal;
    },
    // Made on first use: most middleware never keeps per-flow state.
    get state() {
      if (state === undefined) state = new Map();
      return state;
    },
    proxyId,
    bypass: (direction) => bypass(direction ?? 'both'),
    deferConnect: () => deferrals.defer(),
  };
}
