import { invalidOption, type RedirectError } from '../../lib/common/errors';
import type { ConnectionContext, Middleware } from '../../lib/common/types';
import { checkDirection, type Direction, onDirections } from '../direction';
import { checkSeed, createRandom, type Random, randomSeed } from './random';
import { type AppliedStage, ToxicRunner } from './runner';
import { compileScope, type ScopeCheck, type ToxicScope } from './scope';
import type { Pass, ToxicStage } from './stage';

/**
 * A kind of toxic: Toxiproxy's type name, its attributes (same names and units) and the stage
 * that does it on one direction of one connection.
 */
export interface ToxicType<A extends object = Record<string, number>> {
  readonly type: string;
  /** Checks attributes; when updating, `base` holds the current ones and fields not given keep them. */
  attributes(input: unknown, base?: A): A;
  /** `attrs()` reads the live attributes (the control API may change them while bytes flow). */
  stage(attrs: () => A, random: Random): ToxicStage;
}

/** Options every toxic middleware takes besides its attributes. */
export interface ToxicOptions {
  /** 'upstream' (client → destination), 'downstream' (the default, as in Toxiproxy) or 'both'. */
  direction?: Direction;
  /** Probability (0 to 1) that a connection gets this toxic. Default 1. */
  toxicity?: number;
  /** Makes every random choice (toxicity, jitter, slice sizes) repeat from run to run. */
  seed?: number | string;
  /** Only flows that match (docs/faults.md). */
  scope?: ToxicScope;
}

/** Builds the middleware form of a toxic: `latency({ latency: 100, jitter: 10 })`. */
export function toxicMiddleware<A extends object>(kind: ToxicType<A>, options: ToxicOptions & Partial<A>): Middleware {
  const name = kind.type;
  if (options === null || typeof options !== 'object') throw invalidOption(name, 'must be an object');
  const { direction: d, toxicity: p, seed: s, scope: sc, ...rest } = options;
  const attrs = kind.attributes(rest);
  const direction = checkDirection(name, d, 'downstream');
  const toxicity = checkToxicity(`${name}.toxicity`, p ?? 1);
  const seed = checkSeed(`${name}.seed`, s) ?? randomSeed();
  const scope = compileScope(sc, `${name}.scope`);
  return (ctx) =>
    onDirections(direction, (side) => {
      const random = createRandom(seed, name, ctx.id, side);
      const runner = new ToxicRunner();
      runner.add(
        applyStage(
          kind.stage(() => attrs, random),
          random.next() < toxicity,
          scope,
          ctx,
        ),
      );
      return runner.operator;
    });
}

/**
 * One connection's copy of a toxic: `drawn` is its toxicity draw; a scope that needs sniffed
 * bytes is decided at the first chunk (timers wait for that decision too).
 */
export function applyStage(stage: ToxicStage, drawn: boolean, scope: ScopeCheck, ctx: ConnectionContext): AppliedStage {
  if (!drawn) return { stage, active: false };
  const now = scope(ctx);
  if (now !== undefined) return { stage, active: now };
  let decided: boolean | undefined;
  let fail: ((err: RedirectError) => void) | undefined;
  const decide = (): boolean => {
    if (decided === undefined) {
      decided = scope(ctx) ?? false;
      if (decided && fail) stage.start?.(fail);
    }
    return decided;
  };
  const scoped: ToxicStage = {
    chunk: (data: Buffer, at: number, pass: Pass) => (decide() ? stage.chunk(data, at, pass) : pass(data)),
    end: () => (decide() && stage.end ? stage.end() : Promise.resolve()),
    start: (f) => {
      fail = f;
    },
    update: () => stage.update?.(),
    stop: () => stage.stop(),
  };
  return { stage: scoped, active: true };
}

export function checkToxicity(name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw invalidOption(name, `must be a number from 0 to 1, got ${String(value)}`);
  }
  return value;
}

/**
 * Reads Toxiproxy-style integer attributes: each a non-negative integer; missing ones keep
 * `base` (an update) or take `defaults`.
 */
export function readAttributes<A extends Record<string, number>>(
  type: string,
  input: unknown,
  defaults: A,
  base: A | undefined,
): A {
  if (input === undefined || input === null) input = {};
  if (typeof input !== 'object' || Array.isArray(input)) throw invalidOption(type, 'attributes must be an object');
  const given = input as Record<string, unknown>;
  const out: Record<string, number> = { ...(base ?? defaults) };
  for (const key of Object.keys(given)) {
    if (!(key in defaults)) {
      throw invalidOption(`${type}.${key}`, `unknown attribute (${Object.keys(defaults).join(', ')})`);
    }
    const v = given[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw invalidOption(`${type}.${key}`, `must be a non-negative integer, got ${String(v)}`);
    }
    out[key] = v;
  }
  return out as A;
}
