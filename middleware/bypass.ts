import { Observable } from 'rxjs';
import { invalidOption } from '../lib/common/errors';
import type { ByteOperator, ConnectionContext, Middleware } from '../lib/common/types';
import { checkDirection, type Direction } from './direction';

export interface BypassOptions {
  /** Hand over once this many bytes of the watched direction went through. */
  afterBytes?: number;
  /** Hand over after the first chunk for which this returns true (the chunk itself still goes through the chain). */
  when?: (chunk: Buffer, ctx: ConnectionContext) => boolean;
  /**
   * Which direction is handed over; default 'both'. 'upstream' and 'both' watch the
   * client's bytes, 'downstream' watches the destination's.
   */
  direction?: Direction;
}

/**
 * Lets the chain inspect the head of a stream, then hands the rest over with
 * `ctx.bypass()`: the chain completes for that direction after flushing what it
 * emitted, and the remaining bytes flow raw (spliced in the kernel on Linux when
 * `zeroCopy` is 'auto'). With neither `afterBytes` nor `when`, nothing is inspected.
 *
 * @example
 * ```ts
 * // look at the first 4 KiB (e.g. a TLS ClientHello), then relay in the kernel
 * createRedirectServer({ resolve: 'auto', middleware: [sniff(), bypass({ afterBytes: 4096 })] });
 * ```
 */
export function bypass(options: BypassOptions = {}): Middleware {
  if (options === null || typeof options !== 'object') throw invalidOption('bypass', 'must be an object');
  const { afterBytes, when } = options;
  if (afterBytes !== undefined && (typeof afterBytes !== 'number' || !Number.isInteger(afterBytes) || afterBytes < 0)) {
    throw invalidOption('bypass.afterBytes', `must be a non-negative integer, got ${String(afterBytes)}`);
  }
  if (when !== undefined && typeof when !== 'function') throw invalidOption('bypass.when', 'must be a function');
  const direction = checkDirection('bypass', options.direction, 'both');
  const immediate = afterBytes === undefined && when === undefined;
  return (ctx) => {
    if (immediate || afterBytes === 0) {
      ctx.bypass(direction);
      return undefined;
    }
    const watcher = watch(ctx, direction, afterBytes, when);
    return direction === 'downstream' ? { downstream: watcher } : { upstream: watcher };
  };
}

function watch(
  ctx: ConnectionContext,
  direction: Direction,
  afterBytes: number | undefined,
  when: BypassOptions['when'],
): ByteOperator {
  return (source) =>
    new Observable<Buffer>((subscriber) => {
      let seen = 0;
      let handed = false;
      return source.subscribe({
        next: (chunk) => {
          subscriber.next(chunk);
          if (handed) return;
          seen += chunk.length;
          if ((afterBytes !== undefined && seen >= afterBytes) || when?.(chunk, ctx) === true) {
            handed = true;
            ctx.bypass(direction);
          }
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
    });
}
