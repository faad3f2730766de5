import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RedirectError } from '../common/errors';
import type { RedirectServerOptions } from '../config/types';

/** What a worker tells a config module's factory and a setup hook. */
export interface WorkerInfo {
  /** The worker's slot, 0 … workers − 1 (stable across restarts and reloads). */
  readonly worker: number;
  /** 1 for the workers start() made, +1 per reload. */
  readonly generation: number;
}

export type ServerOptionsFactory = (info: WorkerInfo) => RedirectServerOptions | Promise<RedirectServerOptions>;

/**
 * Imports a config module (CommonJS or ESM, by path or file: URL) and returns its export:
 * the server options object or a factory of them, as the module's export or its default
 * export. A worker calls it for itself (functions cannot cross a process boundary); a runner
 * may call it first to fail early. ERR_REDIRECT_CONFIG_MODULE when it cannot be imported or
 * exports neither.
 */
export async function loadConfigModule(path: string): Promise<RedirectServerOptions | ServerOptionsFactory> {
  const exported = await importModule(path, 'config module');
  if (exported !== null && (typeof exported === 'object' || typeof exported === 'function')) {
    return exported as RedirectServerOptions | ServerOptionsFactory;
  }
  throw new RedirectError(
    'ERR_REDIRECT_CONFIG_MODULE',
    `config module ${path} must export the server options (an object) or a function returning them, as its export or its default export; got ${typeof exported}`,
  );
}

/** The options a worker builds its server from. */
export async function serverOptionsFrom(path: string, info: WorkerInfo): Promise<RedirectServerOptions> {
  const exported = await loadConfigModule(path);
  const options = typeof exported === 'function' ? await exported(info) : exported;
  if (options === null || typeof options !== 'object') {
    throw new RedirectError(
      'ERR_REDIRECT_CONFIG_MODULE',
      `the function exported by config module ${path} must return the server options (an object); got ${typeof options}`,
    );
  }
  return options;
}

/** A setup module's export: called with the worker's server before it listens. */
export async function loadSetupHook(path: string): Promise<(server: unknown, info: WorkerInfo) => unknown> {
  const exported = await importModule(path, 'setup module');
  if (typeof exported === 'function') return exported as (server: unknown, info: WorkerInfo) => unknown;
  throw new RedirectError(
    'ERR_REDIRECT_CONFIG_MODULE',
    `setup module ${path} must export a function (server, { worker, generation }), as its export or its default export; got ${typeof exported}`,
  );
}

/** The module's export, or its default export when it has one (ESM, or CommonJS compiled from ESM). */
async function importModule(path: string, what: string): Promise<unknown> {
  if (typeof path !== 'string' || path === '') {
    throw new RedirectError('ERR_REDIRECT_CONFIG_MODULE', `the ${what} must be a path or a file: URL`);
  }
  const url = path.startsWith('file:') ? path : pathToFileURL(isAbsolute(path) ? path : resolve(path)).href;
  let ns: Record<string, unknown>;
  try {
    // import() loads both kinds; a CommonJS module's module.exports is its default export.
    ns = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new RedirectError('ERR_REDIRECT_CONFIG_MODULE', `cannot import ${what} ${path}: ${message}`, {
      cause: err,
    });
  }
  let value: unknown = 'default' in ns ? ns.default : ns;
  // CommonJS compiled from ESM (`exports.default = …` beside __esModule) arrives as { default: { default } }.
  const inner = value as { __esModule?: unknown; default?: unknown } | null;
  if (inner !== null && typeof inner === 'object' && inner.__esModule === true && 'default' in inner) {
    value = inner.default;
  }
  return value;
}
