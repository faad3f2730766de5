import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RedirectError } from '../common/errors';
import type { RedirectServerOptions } from '../config/types';

/**
 * Loads a config module fresh for each generation: a reload must see the file as it is now.
 * CommonJS leaves the require cache first; ESM gets a new URL (`?load=N`), as Node caches
 * ESM by URL (each generation's module stays in memory: a reload costs one module instance).
 * The options are the module's export or its default export, or what a function so exported returns.
 */
/** `load` numbers the import (a fresh URL each time); `generation` is told to a factory export. */
export async function loadServerOptions(file: string, load: number, generation = load): Promise<RedirectServerOptions> {
  const path = resolvePath(file);
  let mod: unknown;
  try {
    try {
      delete require.cache[require.resolve(path)];
    } catch {
      // not resolvable as CommonJS (or missing): import() says why
    }
    mod = await import(`${pathToFileURL(path).href}?load=${load}`);
  } catch (err) {
    throw new RedirectError('ERR_REDIRECT_CONFIG_MODULE', `cannot load the config ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const found = optionsOf(mod);
  // A factory, as the worker host takes (lib/workers): called with this worker and generation.
  const options = typeof found === 'function' ? await found({ worker: 0, generation }) : found;
  if (options === null || typeof options !== 'object' || !('resolve' in options)) {
    throw new RedirectError(
      'ERR_REDIRECT_CONFIG_MODULE',
      `the config ${path} exports no server options: export an object with \`resolve\`, or a function returning one (module.exports = … or export default …)`,
    );
  }
  return options as RedirectServerOptions;
}

/**
 * The options object: the deepest of the module, its default and its default's default that has
 * `resolve`. A CommonJS module imported this way is a namespace whose `default` is the whole
 * module.exports (its other keys are what a static scan found, maybe not all); CommonJS compiled
 * from ESM puts the object one level further down.
 */
type OptionsFactory = (info: { worker: number; generation: number }) => unknown;

function optionsOf(mod: unknown): RedirectServerOptions | OptionsFactory | undefined {
  const levels: unknown[] = [mod];
  for (let i = 0; i < 2; i++) {
    const last = levels[levels.length - 1];
    levels.push(last !== null && typeof last === 'object' ? (last as { default?: unknown }).default : undefined);
  }
  levels.reverse();
  const found = levels.find((c) => c !== null && typeof c === 'object' && 'resolve' in c);
  return (found ?? levels.find((c) => typeof c === 'function')) as RedirectServerOptions | OptionsFactory | undefined;
}
