import { RedirectError } from '../common/errors';
import type { ZeroCopyBudget } from '../zero-copy/engine';
import type { ClusterListenOptions } from './sockets';

export interface RedirectClusterOptions {
  /** Path (or file: URL) of the config module: it exports the server options or a function returning them. */
  module: string;
  listen: ClusterListenOptions;
  /** Worker processes. Default os.availableParallelism(). */
  workers?: number;
  /** How long a draining generation (reload, close) may take before its rest is reset. Default 30 s. */
  closeTimeoutMs?: number;
  /** The global splice budget, divided among the workers (docs/workers.md). */
  zeroCopyBudget?: ZeroCopyBudget;
  /** Forward each worker's close summaries as 'closed' events. Default false. */
  summaries?: boolean;
  /** A module whose export is called with each worker's server before it listens. */
  setup?: string;
  /**
   * Keep one spare process forked ahead (library loaded, no slot), so a crashed worker is
   * replaced without waiting for a Node start. Default true; false saves its memory.
   */
  spare?: boolean;
  /** Node flags for the workers. Default: none. */
  execArgv?: readonly string[];
}

const KNOWN = new Set([
  'module',
  'listen',
  'workers',
  'closeTimeoutMs',
  'zeroCopyBudget',
  'summaries',
  'setup',
  'spare',
  'execArgv',
]);

function invalid(path: string, message: string): RedirectError {
  return new RedirectError('ERR_REDIRECT_INVALID_OPTION', `cluster options.${path}: ${message}`);
}

/** Checks what can be checked in the primary (the server options are checked by each worker). */
export function validateClusterOptions(options: RedirectClusterOptions): Readonly<RedirectClusterOptions> {
  if (options === null || typeof options !== 'object') {
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', 'cluster options must be an object');
  }
  for (const key of Object.keys(options)) if (!KNOWN.has(key)) throw invalid(key, 'unknown option');
  if (typeof options.module !== 'string' || options.module === '') {
    throw invalid('module', 'must be the path of the config module');
  }
  if (options.setup !== undefined && (typeof options.setup !== 'string' || options.setup === '')) {
    throw invalid('setup', 'must be the path of a setup module');
  }
  if (options.listen === null || typeof options.listen !== 'object') {
    throw invalid('listen', 'must be { host, port }');
  }
  const { workers, closeTimeoutMs } = options;
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 1024)) {
    throw invalid('workers', `must be an integer 1–1024, got ${String(workers)}`);
  }
  if (closeTimeoutMs !== undefined && (!Number.isInteger(closeTimeoutMs) || closeTimeoutMs < 0)) {
    throw invalid('closeTimeoutMs', `must be a non-negative integer, got ${String(closeTimeoutMs)}`);
  }
  if (options.spare !== undefined && typeof options.spare !== 'boolean') throw invalid('spare', 'must be a boolean');
  if (options.execArgv !== undefined && !Array.isArray(options.execArgv)) {
    throw invalid('execArgv', 'must be an array of strings');
  }
  return Object.freeze({ ...options, listen: Object.freeze({ ...options.listen }) });
}
