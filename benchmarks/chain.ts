import { resolve as resolvePath } from 'node:path';
import { map } from 'rxjs';
import type { Middleware } from '../lib/index';

/** One pass-through operator each way: what any real chain costs at the least. */
const passThrough: Middleware = () => ({ upstream: map((c: Buffer) => c), downstream: map((c: Buffer) => c) });

/**
 * The chain a subject runs: 'none', 'map3' (three pass-throughs), or a user's module
 * exporting `middleware: Middleware[]` (or a default array or single middleware).
 */
export function loadMiddleware(spec: string | undefined): Middleware[] {
  if (spec === undefined || spec === 'none') return [];
  if (spec === 'map3') return [passThrough, passThrough, passThrough];
  const mod = require(resolvePath(spec)) as { middleware?: unknown; default?: unknown };
  const chain = mod.middleware ?? mod.default;
  const list = Array.isArray(chain) ? chain : typeof chain === 'function' ? [chain] : undefined;
  if (!list || list.some((m) => typeof m !== 'function')) {
    throw new Error(`${spec} must export \`middleware: Middleware[]\` (or a default array of middleware)`);
  }
  return list as Middleware[];
}
