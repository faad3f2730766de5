import { RedirectError } from '../common/errors';
import { checkTargetAddress } from '../common/target-address';
import type { BypassDirection, ConnectionContext, RedirectRecord, TargetAddress } from '../common/types';

/** What the context reads from its connection. */
export interface ContextOwner {
  readonly id: number;
  readonly record: RedirectRecord;
  /** Read through on every use: the connection makes its AbortController lazily. */
  readonly signal: AbortSignal;
}

/**
 * The target a `deferConnect()` release named, checked. A bad one is a bug in the
 * middleware that gave it, found while the flow runs: it ends that flow (reason
 * `middleware-error`) rather than throwing into whoever called release().
 */
function checkReleaseTarget(to: unknown): TargetAddress {
  try {
    return checkTargetAddress(to, 'release(target)');
  } catch (err) {
    // The target is a value handed over at run time, not a server option: say where it came from.
    const message = err instanceof Error ? err.message.replace(/^options\./, '') : String(err);
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', `ctx.deferConnect(): ${message}`);
  }
}

/**
 * ctx.deferConnect() bookkeeping: the connect waits until every deferral
 * handed out while the chain was built has been released. A release with a
 * bad target settles the wait at once, as a failure.
 */
export class ConnectDeferrals {
  /** The target named by a release, if any (the last one wins). */
  routed: TargetAddress | undefined;
  /** The error of the first release that named a bad target: the flow ends with it. */
  failure: RedirectError | undefined;
  private building = true;
  private outstanding = 0;
  private settle: ((failure: RedirectError | undefined) => void) | undefined;

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
      if (done || this.failure !== undefined) return;
      done = true;
      if (to !== undefined) {
        try {
          this.routed = checkReleaseTarget(to);
        } catch (err) {
          this.failure = err as RedirectError;
          this.settled();
          return;
        }
      }
      if (--this.outstanding === 0) this.settled();
    };
  }

  /** The chain is built: no more deferrals can be taken. */
  seal(): void {
    this.building = false;
  }

  /** Settles once the last pending deferral is released, or at once with the error of a bad target. */
  wait(): Promise<RedirectError | undefined> {
    return new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  private settled(): void {
    const settle = this.settle;
    this.settle = undefined;
    settle?.(this.failure);
  }
}

/** ctx.bypass()'s argument: a direction, 'both' when left out; anything else is a middleware's bug. */
function checkBypassDirection(direction: unknown): BypassDirection {
  if (direction === undefined) return 'both';
  if (direction !== 'upstream' && direction !== 'downstream' && direction !== 'both') {
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', "bypass(direction): 'upstream', 'downstream' or 'both'");
  }
  return direction;
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
    bypass: (direction) => bypass(checkBypassDirection(direction)),
    deferConnect: () => deferrals.defer(),
  };
}
