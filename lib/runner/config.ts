import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RedirectError } from '../common/errors';
import type { RedirectServerOptions } from '../config/types';

/**
 * Loads a config module fresh for each generation: a reload must see the file as it is now.
 * CommonJS leaves the require cache first; ESM gets a new URL (`?generation=N`), as Node caches
 * ESM by URL (each generation's module stays in memory: a reload costs one module instance).
 * The options are the module's export or its default export.
 */
export async function loadServerOptions(file: string, generation: number): Promise<RedirectServerOptions> {
  const path = resolvePath(file);
  let mod: unknown;
  try {
    try {
      delete require.cache[require.resolve(path)];
    } catch {
      // not resolvable as CommonJS (or missing): import() says why
    }
    mod = await import(`${pathToFileURL(path).href}?generation=${generation}`);
  } catch (err) {
    throw new RedirectError('ERR_REDIRECT_CONFIG', `cannot load the config ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const options = optionsOf(mod);
  if (options === undefined) {
    throw new RedirectError(
      'ERR_REDIRECT_CONFIG',
      `the config ${path} exports no server options: export an object with \`resolve\` (module.exports = {…} or export default {…})`,
    );
  }
  return options;
}

/**
 * The options object: the deepest of the module, its default and its default's default that has
 * `resolve`. A CommonJS module imported this way is a namespace whose `default` is the whole
 * module.exports (its other keys are what a static scan found, maybe not all); CommonJS compiled
 * from ESM puts the object one level further down.
 */
function optionsOf(mod: unknown): RedirectServerOptions | undefined {
  const levels: unknown[] = [mod];
  for (let i = 0; i < 2; i++) {
    const last = levels[levels.length - 1];
    levels.push(last !== null && typeof last === 'object' ? (last as { default?: unknown }).default : undefined);
  }
  const found = levels.reverse().find((c) => c !== null && typeof c === 'object' && 'resolve' in c);
  return found as RedirectServerOptions | undefined;
}
