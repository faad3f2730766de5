import { Observable } from 'rxjs';
import { invalidOption } from '../lib/common/errors';
import type { ByteOperator, Middleware } from '../lib/common/types';
import { checkDirection, type Direction, onDirections, toBuffer } from './direction';

export interface ReplaceOptions {
  /** What to look for (a string is UTF-8). Must not be empty. */
  search: string | Buffer;
  /** What to put in its place; may be empty (deletes) or longer. */
  replacement: string | Buffer;
  /** Default 'both'. */
  direction?: Direction;
}

/**
 * Streaming search-and-replace that gives the same bytes whatever the chunk boundaries are:
 * occurrences are replaced left to right without overlap, like `String.prototype.replaceAll`
 * on the whole stream.
 *
 * Memory bound: at most `search.length - 1` bytes are held back per direction (only the longest
 * end of the data so far that could still become a match), plus one transient copy of that tail
 * joined to the chunk being searched. Held bytes are emitted when the input completes.
 *
 * Note that a proxy rewriting bytes changes lengths: protocols that declare lengths
 * (Content-Length, TLS records) are broken by a replacement of another length.
 *
 * @example
 * ```ts
 * const r = await testMiddleware(replace({ search: 'cat', replacement: 'dog' }), { upstream: ['a c', 'at'] });
 * r.upstreamBytes.toString(); // 'a dog'
 * ```
 */
export function replace(options: ReplaceOptions): Middleware {
  if (options === null || typeof options !== 'object') throw invalidOption('replace', 'must be an object');
  const search = toBuffer('replace.search', options.search);
  if (search.length === 0) throw invalidOption('replace.search', 'must not be empty');
  const replacement = toBuffer('replace.replacement', options.replacement);
  const direction = checkDirection('replace', options.direction, 'both');
  return () => onDirections(direction, () => replacer(search, replacement));
}

function replacer(search: Buffer, replacement: Buffer): ByteOperator {
  return (source) =>
    new Observable<Buffer>((subscriber) => {
      let held = Buffer.alloc(0);
      return source.subscribe({
        next(chunk) {
          const data = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
          const out: Buffer[] = [];
          let from = 0;
          for (let at = data.indexOf(search); at !== -1; at = data.indexOf(search, from)) {
            if (at > from) out.push(data.subarray(from, at));
            if (replacement.length > 0) out.push(replacement);
            from = at + search.length;
          }
          const keep = partialMatchAtEnd(data, from, search);
          if (data.length - keep > from) out.push(data.subarray(from, data.length - keep));
          held = Buffer.from(data.subarray(data.length - keep));
          if (out.length === 1) subscriber.next(out[0]!);
          else if (out.length > 1) subscriber.next(Buffer.concat(out));
        },
        error: (err) => subscriber.error(err),
        complete() {
          if (held.length > 0) subscriber.next(held);
          held = Buffer.alloc(0);
          subscriber.complete();
        },
      });
    });
}

/** Length of the longest suffix of data[from..] that is a proper prefix of search. */
function partialMatchAtEnd(data: Buffer, from: number, search: Buffer): number {
  const max = Math.min(search.length - 1, data.length - from);
  for (let n = max; n > 0; n--) {
    if (data.compare(search, 0, n, data.length - n, data.length) === 0) return n;
  }
  return 0;
}
