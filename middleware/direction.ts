import { invalidOption } from '../lib/common/errors';
import type { ByteOperator, MiddlewareOperators } from '../lib/common/types';

export type Direction = 'upstream' | 'downstream' | 'both';

/** Checks a `direction` option; bad values throw at once, with a code. */
export function checkDirection(name: string, value: unknown, fallback: Direction): Direction {
  if (value === undefined) return fallback;
  if (value === 'upstream' || value === 'downstream' || value === 'both') return value;
  throw invalidOption(`${name}.direction`, `must be 'upstream', 'downstream' or 'both', got ${String(value)}`);
}

/** Puts a fresh operator (one per direction, so no state is shared by accident) on the chosen sides. */
export function onDirections(
  direction: Direction,
  make: (side: 'upstream' | 'downstream') => ByteOperator,
): MiddlewareOperators {
  const ops: MiddlewareOperators = {};
  if (direction !== 'downstream') ops.upstream = make('upstream');
  if (direction !== 'upstream') ops.downstream = make('downstream');
  return ops;
}

export function toBuffer(name: string, value: unknown): Buffer {
  if (typeof value === 'string') return Buffer.from(value);
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  throw invalidOption(name, 'must be a string or a Buffer');
}

export function positiveInt(name: string, value: unknown, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw invalidOption(name, `must be a positive integer, got ${String(value)}`);
  }
  return value;
}
