import { Observable } from 'rxjs';
import { invalidOption, RedirectError } from '../lib/common/errors';
import type { ByteOperator, ConnectionContext, Middleware } from '../lib/common/types';
import { checkDirection, type Direction, onDirections, positiveInt } from './direction';

export type InspectPattern = string | Buffer | RegExp;

export interface InspectMatch {
  /** The pattern as given. */
  readonly pattern: InspectPattern;
  /** Its index in `patterns`. */
  readonly patternIndex: number;
  readonly direction: 'upstream' | 'downstream';
  /** Offset of the first matched byte in that direction's stream. */
  readonly offset: number;
  /** The matched bytes (a copy). */
  readonly bytes: Buffer;
}

export type InspectVerdict = 'allow' | 'deny';

export interface InspectOptions {
  /** Strings (UTF-8), Buffers or RegExps (run over the bytes read as latin1, one char per byte). */
  patterns: readonly InspectPattern[];
  /** Default 'both'. */
  direction?: Direction;
  /** What a match does. Default 'deny'. A function returning nothing allows. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback may return nothing.
  onMatch?: InspectVerdict | ((match: InspectMatch, ctx: ConnectionContext) => InspectVerdict | undefined | void);
  /** Required with a RegExp: the longest match it can make, in bytes; it sets the memory bound. */
  maxMatchLength?: number;
}

/**
 * Looks for patterns in the byte stream, across chunk boundaries, and allows or denies the
 * connection when one is found. A deny errors the chain with `ERR_REDIRECT_DENIED`, so the server
 * resets both sockets (reason 'middleware-error').
 *
 * Bytes are passed through unchanged, in order and without delay: each chunk is emitted as soon as
 * it has been searched. What is held is a copy of the last `L - 1` bytes seen in each direction,
 * where `L` is the longest pattern (or `maxMatchLength`), so that a match split across chunks is
 * still found; plus, while one chunk is searched, a transient window of `L - 1 + chunk` bytes.
 * The consequence: on a deny, the chunk that completes the match is not forwarded, but up to
 * `L - 1` bytes of the match that arrived in earlier chunks have already been.
 *
 * A RegExp match is found across chunks only if it is at most `maxMatchLength` bytes long.
 *
 * @example
 * ```ts
 * createRedirectServer({
 *   resolve: 'netfilter',
 *   middleware: [inspect({ patterns: ['DROP TABLE', /password=\w+/], maxMatchLength: 64, direction: 'upstream' })],
 * });
 * ```
 */
export function inspect(options: InspectOptions): Middleware {
  if (options === null || typeof options !== 'object') throw invalidOption('inspect', 'must be an object');
  const direction = checkDirection('inspect', options.direction, 'both');
  const { patterns } = options;
  if (!Array.isArray(patterns) || patterns.length === 0) {
    throw invalidOption('inspect.patterns', 'must be a non-empty array');
  }
  const onMatch = options.onMatch ?? 'deny';
  if (onMatch !== 'allow' && onMatch !== 'deny' && typeof onMatch !== 'function') {
    throw invalidOption('inspect.onMatch', "must be 'allow', 'deny' or a function");
  }
  const hasRegExp = patterns.some((p) => p instanceof RegExp);
  const maxMatch = hasRegExp ? positiveInt('inspect.maxMatchLength', options.maxMatchLength) : 0;
  const compiled = patterns.map((p, i): Buffer | RegExp => {
    if (p instanceof RegExp) return new RegExp(p.source, `${p.flags.replace(/[gy]/g, '')}g`);
    if (typeof p === 'string' || Buffer.isBuffer(p)) {
      const b = Buffer.from(p);
      if (b.length === 0) throw invalidOption(`inspect.patterns[${i}]`, 'must not be empty');
      return b;
    }
    throw invalidOption(`inspect.patterns[${i}]`, 'must be a string, a Buffer or a RegExp');
  });
  const longest = Math.max(maxMatch, ...compiled.map((p) => (Buffer.isBuffer(p) ? p.length : 0)));

  return (ctx) =>
    onDirections(direction, (side) => searcher(side, ctx, patterns, compiled, longest - 1, (m) => verdict(m, ctx)));

  function verdict(match: InspectMatch, ctx: ConnectionContext): InspectVerdict {
    if (typeof onMatch !== 'function') return onMatch;
    return onMatch(match, ctx) === 'deny' ? 'deny' : 'allow';
  }
}

function searcher(
  side: 'upstream' | 'downstream',
  _ctx: ConnectionContext,
  patterns: readonly InspectPattern[],
  compiled: readonly (Buffer | RegExp)[],
  keep: number,
  decide: (m: InspectMatch) => InspectVerdict,
): ByteOperator {
  return (source) =>
    new Observable<Buffer>((subscriber) => {
      let tail = Buffer.alloc(0);
      let seen = 0; // bytes before the current chunk
      return source.subscribe({
        next(chunk) {
          const window = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
          const windowStart = seen - tail.length;
          const matches: InspectMatch[] = [];
          for (const [i, p] of compiled.entries()) {
            const found = (index: number, length: number): void => {
              matches.push({
                pattern: patterns[i]!,
                patternIndex: i,
                direction: side,
                offset: windowStart + index,
                bytes: Buffer.from(window.subarray(index, index + length)),
              });
            };
            if (Buffer.isBuffer(p)) {
              // Only matches that end in the new chunk: the rest were reported already.
              let at = window.indexOf(p, Math.max(0, tail.length - p.length + 1));
              while (at !== -1) {
                found(at, p.length);
                at = window.indexOf(p, at + 1);
              }
            } else {
              for (const m of window.toString('latin1').matchAll(p)) {
                if (m[0].length > 0 && m.index + m[0].length > tail.length) found(m.index, m[0].length);
              }
            }
          }
          matches.sort((a, b) => a.offset - b.offset);
          for (const m of matches) {
            let answer: InspectVerdict;
            try {
              answer = decide(m);
            } catch (err) {
              subscriber.error(err);
              return;
            }
            if (answer === 'deny') {
              subscriber.error(
                new RedirectError(
                  'ERR_REDIRECT_DENIED',
                  `inspect: ${side} bytes matched pattern ${String(m.pattern)} at offset ${m.offset}`,
                ),
              );
              return;
            }
          }
          seen += chunk.length;
          tail = keep > 0 ? Buffer.from(window.subarray(Math.max(0, window.length - keep))) : Buffer.alloc(0);
          subscriber.next(chunk);
        },
        error: (err) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
    });
}
