import { Observable } from 'rxjs';
import { invalidOption } from '../lib/common/errors';
import type { ByteOperator, ConnectionContext, Middleware } from '../lib/common/types';
import { checkDirection, type Direction, onDirections } from './direction';

export interface TapChunk {
  readonly direction: 'upstream' | 'downstream';
  /** Bytes in this chunk. */
  readonly size: number;
  /** Stream offset of its first byte in that direction. */
  readonly offset: number;
  /** Milliseconds since the middleware was built for this connection. */
  readonly atMs: number;
}

export interface TapEnd {
  readonly direction: 'upstream' | 'downstream';
  /** 'complete': the sender's FIN went through; 'error': the chain failed; 'stopped': the connection ended first. */
  readonly how: 'complete' | 'error' | 'stopped';
  readonly bytes: number;
  readonly chunks: number;
  readonly durationMs: number;
  readonly error?: unknown;
}

export interface TapOptions {
  onChunk?: (chunk: TapChunk, ctx: ConnectionContext) => void;
  onEnd?: (end: TapEnd, ctx: ConnectionContext) => void;
  /** Default 'both'. */
  direction?: Direction;
}

/**
 * Observes a connection's traffic (sizes, timing, the record through `ctx`) without keeping any
 * payload: bytes pass through unchanged and the callbacks only get numbers. Memory bound: a few
 * counters per direction. Callbacks run inside the data path; one that throws ends the connection
 * with `ERR_REDIRECT_MIDDLEWARE`, so keep them cheap and safe.
 *
 * @example
 * ```ts
 * tap({
 *   onEnd: (e, ctx) => log.info({ id: ctx.id, dest: ctx.record.destination, ...e }),
 * });
 * ```
 */
export function tap(options: TapOptions = {}): Middleware {
  if (options === null || typeof options !== 'object') throw invalidOption('tap', 'must be an object');
  for (const key of ['onChunk', 'onEnd'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'function') {
      throw invalidOption(`tap.${key}`, 'must be a function');
    }
  }
  const direction = checkDirection('tap', options.direction, 'both');
  return (ctx) => {
    const startedAt = performance.now();
    return onDirections(direction, (side) => tapper(side, ctx, startedAt, options));
  };
}

function tapper(
  side: 'upstream' | 'downstream',
  ctx: ConnectionContext,
  startedAt: number,
  { onChunk, onEnd }: TapOptions,
): ByteOperator {
  return (source) =>
    new Observable<Buffer>((subscriber) => {
      let bytes = 0;
      let chunks = 0;
      let ended = false;
      const end = (how: TapEnd['how'], error?: unknown): boolean => {
        if (ended) return true;
        ended = true;
        if (!onEnd) return true;
        const info: TapEnd = {
          direction: side,
          how,
          bytes,
          chunks,
          durationMs: performance.now() - startedAt,
          ...(error !== undefined ? { error } : {}),
        };
        try {
          onEnd(info, ctx);
          return true;
        } catch (err) {
          subscriber.error(err);
          return false;
        }
      };
      const subscription = source.subscribe({
        next(chunk) {
          if (onChunk) {
            try {
              onChunk({ direction: side, size: chunk.length, offset: bytes, atMs: performance.now() - startedAt }, ctx);
            } catch (err) {
              subscriber.error(err);
              return;
            }
          }
          bytes += chunk.length;
          chunks++;
          subscriber.next(chunk);
        },
        error(err) {
          end('error', err);
          subscriber.error(err);
        },
        complete() {
          if (end('complete')) subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        end('stopped');
      };
    });
}
