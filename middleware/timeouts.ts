import { Observable, type Subscriber } from 'rxjs';
import { invalidOption, RedirectError } from '../lib/common/errors';
import type { Middleware } from '../lib/common/types';
import { positiveInt } from './direction';

export interface TimeoutsOptions {
  /** No byte either way for this long ends the connection with ERR_REDIRECT_IDLE_TIMEOUT. */
  idleMs?: number;
  /** The connection ends with ERR_REDIRECT_MAX_DURATION this long after its chain starts. */
  maxDurationMs?: number;
}

/**
 * Per-connection deadlines, as middleware: an idle deadline (no byte in either direction) and a
 * total-duration deadline. Either ends the connection by erroring the chain with a coded
 * RedirectError, so the server resets both sockets with reason 'middleware-error' and the code
 * in the summary's `error`. Unlike `limits.idleTimeoutMs`, it can be set per route or per
 * destination by composing it conditionally.
 *
 * Memory bound: two timers and a timestamp per connection; bytes pass through unchanged.
 * Bytes a direction never answers for (a chain that holds them) do not count as activity here:
 * activity is what reaches this middleware.
 *
 * @example
 * ```ts
 * createRedirectServer({ resolve: 'netfilter', middleware: [timeouts({ idleMs: 30_000, maxDurationMs: 3_600_000 })] });
 * ```
 */
export function timeouts(options: TimeoutsOptions): Middleware {
  if (options === null || typeof options !== 'object') throw invalidOption('timeouts', 'must be an object');
  const idleMs = options.idleMs === undefined ? 0 : positiveInt('timeouts.idleMs', options.idleMs);
  const maxMs = options.maxDurationMs === undefined ? 0 : positiveInt('timeouts.maxDurationMs', options.maxDurationMs);
  if (idleMs === 0 && maxMs === 0) throw invalidOption('timeouts', 'set idleMs, maxDurationMs or both');

  return (ctx) => {
    const live = new Set<Subscriber<Buffer>>();
    let idleTimer: NodeJS.Timeout | undefined;
    let maxTimer: NodeJS.Timeout | undefined;
    let last = 0;
    let started = false;
    let fired = false;

    const stop = (): void => {
      clearTimeout(idleTimer);
      clearTimeout(maxTimer);
    };
    const fire = (err: RedirectError): void => {
      if (fired) return;
      fired = true;
      stop();
      // One live direction erroring is enough: the server resets both sockets.
      const first = live.values().next();
      if (!first.done) first.value.error(err);
    };
    const checkIdle = (): void => {
      const quiet = performance.now() - last;
      if (quiet >= idleMs) fire(new RedirectError('ERR_REDIRECT_IDLE_TIMEOUT', `no byte either way for ${idleMs} ms`));
      else idleTimer = setTimeout(checkIdle, idleMs - quiet + 1);
    };
    const start = (): void => {
      if (started) return;
      started = true;
      last = performance.now();
      if (idleMs > 0) idleTimer = setTimeout(checkIdle, idleMs);
      if (maxMs > 0) {
        maxTimer = setTimeout(
          () => fire(new RedirectError('ERR_REDIRECT_MAX_DURATION', `the connection lasted ${maxMs} ms`)),
          maxMs,
        );
      }
    };
    ctx.signal.addEventListener('abort', stop, { once: true });

    const operator = (source: Observable<Buffer>): Observable<Buffer> =>
      new Observable<Buffer>((subscriber) => {
        live.add(subscriber);
        start();
        const subscription = source.subscribe({
          next(chunk) {
            last = performance.now();
            subscriber.next(chunk);
          },
          error: (err) => subscriber.error(err),
          complete: () => subscriber.complete(),
        });
        return () => {
          live.delete(subscriber);
          subscription.unsubscribe();
          if (live.size === 0) stop();
        };
      });
    return { upstream: operator, downstream: operator };
  };
}
