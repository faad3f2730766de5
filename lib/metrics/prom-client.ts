import type * as PromClient from 'prom-client';
import { RedirectError } from '../common/errors';

export type Prom = typeof PromClient;

let loaded: Prom | undefined;

/**
 * prom-client, loaded on first use: it is an optional peer dependency, so a user who never asks
 * for metrics needs not install it, and importing rxredirect never fails for want of it.
 */
export function promClient(): Prom {
  if (loaded) return loaded;
  try {
    loaded = require('prom-client') as Prom;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    throw new RedirectError(
      'ERR_REDIRECT_METRICS_UNAVAILABLE',
      'metrics need the optional peer dependency prom-client: npm install prom-client@15',
      { cause: err },
    );
  }
  return loaded;
}
