import { Observable } from 'rxjs';
import { invalidOption } from '../lib/common/errors';
import type { ConnectionContext, Middleware, TargetAddress } from '../lib/common/types';
import { positiveInt } from './direction';

export interface RouteOptions {
  /**
   * Longest wait for the first client bytes before choosing anyway (a client that sends nothing).
   * Default 5 000 ms; keep it under `limits.connectTimeoutMs`, which also covers this wait.
   */
  waitMs?: number;
}

export type Router = (ctx: ConnectionContext) => TargetAddress | undefined | Promise<TargetAddress | undefined>;

/**
 * Chooses the upstream target from what the client sent first, before the upstream connect:
 * it defers the connect (`ctx.deferConnect()`), and when the first client bytes reach it (put
 * `sniff()` before it, so those are sniff's whole decided head), when the client ends, or after
 * `waitMs`, it calls `choose(ctx)` and connects to what it returns (`undefined`: the default
 * target). A throw, a rejection or a bad target ends the connection with `middleware-error`.
 *
 * Memory bound: none of its own; it passes bytes on at once. Until the connect, the core holds
 * the client's bytes under the usual high-water mark (reading stops there).
 *
 * @example
 * ```ts
 * middleware: [
 *   sniff(),
 *   route((ctx) => backends.get(sniffed(ctx)?.host ?? '')),
 * ]
 * ```
 */
export function route(choose: Router, options: RouteOptions = {}): Middleware {
  if (typeof choose !== 'function') throw invalidOption('route', 'needs a function (ctx) => target | undefined');
  const waitMs = positiveInt('route.waitMs', options.waitMs, 5000);
  return (ctx) => {
    const release = ctx.deferConnect();
    return {
      upstream: (source) =>
        new Observable<Buffer>((subscriber) => {
          let chosen = false;
          const decide = (): void => {
            if (chosen) return;
            chosen = true;
            clearTimeout(timer);
            const fail = (err: unknown) => {
              if (!subscriber.closed) subscriber.error(err);
            };
            try {
              const answer = choose(ctx);
              if (answer instanceof Promise) answer.then((to) => release(to), fail).catch(fail);
              else release(answer);
            } catch (err) {
              fail(err);
            }
          };
          const timer = setTimeout(decide, waitMs);
          const subscription = source.subscribe({
            next(chunk) {
              decide();
              if (!subscriber.closed) subscriber.next(chunk);
            },
            error: (err) => subscriber.error(err),
            complete() {
              decide();
              if (!subscriber.closed) subscriber.complete();
            },
          });
          return () => {
            clearTimeout(timer);
            subscription.unsubscribe();
          };
        }),
    };
  };
}
