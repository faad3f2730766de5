import { randomInt } from 'node:crypto';
import { invalidOption } from '../../lib/common/errors';

/** A source of numbers in [0, 1): the same seed gives the same sequence, run after run. */
export interface Random {
  /** The next number in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  below(n: number): number;
}

/**
 * A seeded random source (sfc32: small, fast, and good enough for fault schedules; not for
 * secrets). Each connection, direction and toxic draws from its own stream, derived from the seed
 * and those labels, so one connection's draws never shift another's: a failing run replays with
 * the same seed as long as connections arrive in the same order (`ctx.id`).
 */
export function createRandom(seed: number | string, ...labels: readonly (string | number)[]): Random {
  // Hash seed and labels into four 32-bit words (FNV-1a over the text, then mixed per word).
  const text = [String(seed), ...labels.map(String)].join('\u0000');
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  const words = [0, 1, 2, 3].map((k) => mix(h + Math.imul(k + 1, 0x9e3779b9)));
  let [a, b, c, d] = words as [number, number, number, number];
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // Warm up: the first outputs of sfc32 still show the seed's structure.
  for (let i = 0; i < 12; i++) next();
  return { next, below: (n) => Math.floor(next() * n) };
}

/** A fresh seed for toxics given none: runs differ, and the seed in use can be read back and replayed. */
export function randomSeed(): number {
  return randomInt(0, 2 ** 32);
}

/** Checks a `seed` option: an integer or a string. */
export function checkSeed(name: string, value: unknown): number | string | undefined {
  if (value === undefined) return undefined;
  if ((typeof value === 'number' && Number.isSafeInteger(value)) || typeof value === 'string') return value;
  throw invalidOption(name, `must be an integer or a string, got ${String(value)}`);
}

/** murmur3's finaliser: spreads one 32-bit word. */
function mix(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
