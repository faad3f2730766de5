import { Observable } from 'rxjs';
import { invalidOption, RedirectError } from '../lib/common/errors';
import type { ByteOperator, Middleware } from '../lib/common/types';
import { checkDirection, type Direction, onDirections, positiveInt, toBuffer } from './direction';

export interface LineFraming {
  type: 'lines';
  /** Default '\n'. The delimiter is not part of the emitted message. */
  delimiter?: string | Buffer;
  /** Longest line accepted, delimiter excluded; a longer one fails with ERR_REDIRECT_FRAMING. */
  maxLineBytes: number;
  /** Default 'both'. */
  direction?: Direction;
}

export interface LengthFraming {
  type: 'length';
  /** Big-endian length prefix, counting the payload only. */
  prefix: 'uint16' | 'uint32';
  /** Largest payload accepted. Default 65 535 (uint16) or 1 MiB (uint32). */
  maxMessageBytes?: number;
  /** Default 'both'. */
  direction?: Direction;
}

export type FramingOptions = LineFraming | LengthFraming;

interface Framing {
  readonly lines: boolean;
  readonly delimiter: Buffer;
  readonly max: number;
  readonly prefixBytes: 2 | 4;
  readonly direction: Direction;
}

/**
 * Cuts the byte stream into messages: one emitted Buffer per line (without its delimiter) or per
 * length-prefixed message (without its prefix), so the operators after it see whole messages.
 * Put `unframe` with the same options after them to turn messages back into bytes.
 *
 * Memory bound per direction: one incomplete message, i.e. at most `maxLineBytes + delimiter - 1`
 * or `prefix + maxMessageBytes` bytes, plus a transient copy when a chunk is joined to it. A
 * message over the limit fails with ERR_REDIRECT_FRAMING. At the end of the input, an
 * unterminated last line is emitted as a message (so `unframe` adds a delimiter it did not
 * have); a truncated length-prefixed message fails with ERR_REDIRECT_FRAMING.
 *
 * @example
 * ```ts
 * const upper = upstream(map((line: Buffer) => Buffer.from(line.toString().toUpperCase())));
 * middleware: [frame({ type: 'lines', maxLineBytes: 8192 }), upper, unframe({ type: 'lines', maxLineBytes: 8192 })];
 * ```
 */
export function frame(options: FramingOptions): Middleware {
  const f = checkFraming('frame', options);
  return () => onDirections(f.direction, () => (f.lines ? splitLines(f) : splitLength(f)));
}

/**
 * Turns messages back into bytes: appends the delimiter, or prepends the big-endian length.
 * A message over the limit (or, for lines, one that contains the delimiter) fails with
 * ERR_REDIRECT_FRAMING. Holds nothing.
 */
export function unframe(options: FramingOptions): Middleware {
  const f = checkFraming('unframe', options);
  return () => onDirections(f.direction, () => join(f));
}

function checkFraming(name: string, options: FramingOptions): Framing {
  if (options === null || typeof options !== 'object') throw invalidOption(name, 'must be an object');
  const direction = checkDirection(name, options.direction, 'both');
  if (options.type === 'lines') {
    const delimiter = toBuffer(`${name}.delimiter`, options.delimiter ?? '\n');
    if (delimiter.length === 0) throw invalidOption(`${name}.delimiter`, 'must not be empty');
    return {
      lines: true,
      delimiter,
      max: positiveInt(`${name}.maxLineBytes`, options.maxLineBytes),
      prefixBytes: 2,
      direction,
    };
  }
  if (options.type === 'length') {
    if (options.prefix !== 'uint16' && options.prefix !== 'uint32') {
      throw invalidOption(`${name}.prefix`, "must be 'uint16' or 'uint32'");
    }
    const prefixBytes = options.prefix === 'uint16' ? 2 : 4;
    const ceiling = prefixBytes === 2 ? 0xffff : 0xffffffff;
    const max = positiveInt(`${name}.maxMessageBytes`, options.maxMessageBytes, prefixBytes === 2 ? 0xffff : 1 << 20);
    if (max > ceiling)
      throw invalidOption(`${name}.maxMessageBytes`, `cannot exceed ${ceiling} with ${options.prefix}`);
    return { lines: false, delimiter: Buffer.alloc(0), max, prefixBytes, direction };
  }
  throw invalidOption(`${name}.type`, "must be 'lines' or 'length'");
}

function framingError(message: string): RedirectError {
  return new RedirectError('ERR_REDIRECT_FRAMING', message);
}

function splitLines({ delimiter, max }: Framing): ByteOperator {
  return (source) =>
    new Observable<Buffer>((subscriber) => {
      let held = Buffer.alloc(0);
      return source.subscribe({
        next(chunk) {
          const data = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
          let from = 0;
          for (let at = data.indexOf(delimiter); at !== -1; at = data.indexOf(delimiter, from)) {
            if (at - from > max) {
              subscriber.error(framingError(`a line is longer than ${max} bytes`));
              return;
            }
            subscriber.next(data.subarray(from, at));
            from = at + delimiter.length;
          }
          if (data.length - from > max + delimiter.length - 1) {
            subscriber.error(framingError(`a line is longer than ${max} bytes`));
            return;
          }
          held = Buffer.from(data.subarray(from));
        },
        error: (err) => subscriber.error(err),
        complete() {
          if (held.length > max) {
            subscriber.error(framingError(`a line is longer than ${max} bytes`));
            return;
          }
          if (held.length > 0) subscriber.next(held);
          subscriber.complete();
        },
      });
    });
}

function splitLength({ max, prefixBytes }: Framing): ByteOperator {
  return (source) =>
    new Observable<Buffer>((subscriber) => {
      let held = Buffer.alloc(0);
      return source.subscribe({
        next(chunk) {
          const data = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
          let from = 0;
          while (data.length - from >= prefixBytes) {
            const size = prefixBytes === 2 ? data.readUInt16BE(from) : data.readUInt32BE(from);
            if (size > max) {
              subscriber.error(framingError(`a message of ${size} bytes is over the limit of ${max}`));
              return;
            }
            if (data.length - from - prefixBytes < size) break;
            subscriber.next(data.subarray(from + prefixBytes, from + prefixBytes + size));
            from += prefixBytes + size;
          }
          held = Buffer.from(data.subarray(from));
        },
        error: (err) => subscriber.error(err),
        complete() {
          if (held.length > 0) {
            subscriber.error(framingError(`the input ended inside a message (${held.length} bytes left)`));
            return;
          }
          subscriber.complete();
        },
      });
    });
}

function join({ lines, delimiter, max, prefixBytes }: Framing): ByteOperator {
  return (source) =>
    new Observable<Buffer>((subscriber) =>
      source.subscribe({
        next(message) {
          if (message.length > max) {
            subscriber.error(framingError(`a message of ${message.length} bytes is over the limit of ${max}`));
            return;
          }
          if (lines) {
            if (message.includes(delimiter)) {
              subscriber.error(framingError('a line contains the delimiter'));
              return;
            }
            subscriber.next(Buffer.concat([message, delimiter]));
            return;
          }
          const head = Buffer.alloc(prefixBytes);
          if (prefixBytes === 2) head.writeUInt16BE(message.length);
          else head.writeUInt32BE(message.length);
          subscriber.next(Buffer.concat([head, message]));
        },
        error: (err) => subscriber.error(err),
        complete: () => subscriber.complete(),
      }),
    );
}
