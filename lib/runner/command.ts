import { parseArgs } from 'node:util';
import { splitHostPort } from '../common/host-port';
import { MAX_TIMER_MS } from '../common/deadlines';
import type { LogLevel } from './log';
import { Runner } from './runner';

/** `rxredirect run`: the Subcommand lib/tools/cli.ts registers (docs/runner.md). */

export const RUN_USAGE = `rxredirect run CONFIG --listen host:port [--workers N] [--metrics host:port] [options]

  CONFIG              a module exporting the server options (CommonJS or ESM; export or default export)
  --listen host:port  where the proxy listens ([::1]:15001 for IPv6)
  --workers N         worker processes (default: the CPUs this process may use; 1 without the addon)
  --metrics host:port serve Prometheus metrics at /metrics (needs prom-client)
  --log-level L       info (every close), warn (faults only), error, silent; debug adds health checks (default info)
  --log-sample R      share 0-1 of graceful closes logged; faults always are (default 1)
  --close-timeout MS  how long a drain lets connections finish (default 30000 with workers,
                      the config's limits.closeTimeoutMs in one process)

  SIGHUP reloads CONFIG (no connection refused); SIGTERM/SIGINT drain and exit (twice: at once).`;

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

export async function runCommand(args: string[], usage: (message: string) => Error): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      listen: { type: 'string' },
      workers: { type: 'string' },
      metrics: { type: 'string' },
      'log-level': { type: 'string' },
      'log-sample': { type: 'string' },
      'close-timeout': { type: 'string' },
    },
  });
  const config = positionals[0];
  if (config === undefined || positionals.length > 1) throw usage('one CONFIG module is required');
  if (values.listen === undefined) throw usage('--listen host:port is required');
  const level = (values['log-level'] ?? 'info') as LogLevel;
  if (!LEVELS.includes(level)) throw usage(`--log-level must be one of ${LEVELS.join(', ')}`);
  const sampleText = values['log-sample'];
  // Number('') is 0: an empty value would silently log no graceful close at all.
  const sample = sampleText === undefined ? 1 : sampleText.trim() === '' ? Number.NaN : Number(sampleText);
  if (!(sample >= 0 && sample <= 1)) throw usage(`--log-sample must be a number from 0 to 1, got "${sampleText}"`);
  const runner = new Runner({
    config,
    listen: hostPort(values.listen, '--listen', usage),
    ...(values.workers === undefined ? {} : { workers: count(values.workers, '--workers', usage) }),
    ...(values.metrics === undefined ? {} : { metrics: hostPort(values.metrics, '--metrics', usage) }),
    ...(values['close-timeout'] === undefined
      ? {}
      : { closeTimeoutMs: count(values['close-timeout'], '--close-timeout', usage, 0, MAX_TIMER_MS) }),
    log: { level, sample },
  });
  await runner.start();
  const reload = (): void => void runner.reload();
  let stop = (): void => {};
  const stopped = new Promise<void>((resolve) => {
    // The first signal drains; a second one (drain() again) brings the deadline to now.
    stop = () => void runner.drain().then(resolve, resolve);
  });
  process.on('SIGHUP', reload);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await stopped;
  } finally {
    process.off('SIGHUP', reload);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
  return 0;
}

function hostPort(text: string, flag: string, usage: (m: string) => Error): { host: string; port: number } {
  try {
    const parsed = splitHostPort(text, flag);
    if (parsed.host !== '') return parsed;
  } catch {
    // reported below, as a usage error (exit code 2)
  }
  throw usage(`${flag} must be host:port ([::1]:port for IPv6), got "${text}"`);
}

function count(
  text: string,
  flag: string,
  usage: (m: string) => Error,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw usage(`${flag} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return n;
}
