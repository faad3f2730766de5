import { type DeadlineOwner, type DeadlineSweeper, sweeperFor } from '../common/deadlines';
import { RedirectError } from '../common/errors';
import type { CloseReason, ResolvedTarget } from '../common/types';

/** What a connection waits for under a deadline, at most one at a time. */
export type Wait = 'resolve' | 'choose' | 'connect';

/**
 * The resolve and connect deadlines of one connection (docs/design.md, "Deadlines"): a
 * registration with the process-wide sweeper of its length, no timer of its own.
 */
export class WaitDeadline implements DeadlineOwner {
  private sweeper: DeadlineSweeper | undefined;
  private wait: Wait = 'resolve';
  private to: ResolvedTarget | undefined;

  constructor(private readonly expired: (reason: CloseReason, error: RedirectError) => void) {}

  set(wait: Wait, ms: number, to?: ResolvedTarget): void {
    this.clear();
    this.sweeper = sweeperFor(ms);
    this.wait = wait;
    this.to = to;
    this.sweeper.set(this);
  }

  clear(): void {
    if (this.sweeper === undefined) return;
    this.sweeper.clear(this);
    this.sweeper = undefined;
    this.to = undefined;
  }

  /** Called by the sweeper. */
  deadlineExpired(): void {
    const ms = this.sweeper?.ms ?? 0;
    const { wait, to } = this;
    this.sweeper = undefined;
    this.to = undefined;
    if (wait === 'resolve') {
      this.expired(
        'resolve-failed',
        new RedirectError('ERR_REDIRECT_RESOLVE_TIMEOUT', `no redirect record within ${ms} ms`),
      );
    } else if (wait === 'choose') {
      this.expired(
        'connect-timeout',
        new RedirectError('ERR_REDIRECT_CONNECT_TIMEOUT', `no upstream target was chosen within ${ms} ms`),
      );
    } else {
      this.expired(
        'connect-timeout',
        new RedirectError('ERR_REDIRECT_CONNECT_TIMEOUT', `no connection to ${to?.host}:${to?.port} within ${ms} ms`),
      );
    }
  }
}
