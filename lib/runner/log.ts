import pino, { type Logger } from 'pino';
import { joinHostPort } from '../common/host-port';
import type { CloseSummary, Endpoint, TargetAddress } from '../common/types';
import { isGraceful } from '../server/server-stats';

/** The runner's JSON line log (docs/runner.md, "The log"). */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface LogOptions {
  level?: LogLevel;
  /** Share (0–1) of gracefully closed flows logged; faults always are. Default 1. */
  sample?: number;
  /** Where lines go: a file descriptor (default 1, standard output). */
  fd?: number;
  /** For tests: a random source in [0, 1). */
  random?: () => number;
}

const hostPort = (e: Endpoint | TargetAddress | undefined): string | undefined =>
  e === undefined ? undefined : joinHostPort('address' in e ? e.address : e.host, e.port);

export interface RunnerLog {
  readonly logger: Logger;
  /** One line for a closed flow (sampled when graceful). */
  closed(summary: CloseSummary, fields: Readonly<Record<string, unknown>>): void;
  /** Writes what is buffered; resolves once written. */
  flush(): Promise<void>;
}

export function createRunnerLog(options: LogOptions = {}): RunnerLog {
  const sample = options.sample ?? 1;
  const random = options.random ?? Math.random;
  // Asynchronous writes (sonic-boom buffers) keep the log off the relay's path; flush() at exit.
  const destination = pino.destination({ dest: options.fd ?? 1, sync: false, minLength: 0 });
  const logger = pino({ level: options.level ?? 'info', base: { pid: process.pid } }, destination);
  return {
    logger,
    closed(summary, fields) {
      // A balancer's health check (a PROXY v2 LOCAL header) every few hundred ms is noise at info.
      if (isHealthCheck(summary) && !logger.isLevelEnabled('debug')) return;
      const graceful = isGraceful(summary.reason);
      if (
        graceful ? !logger.isLevelEnabled('info') || (sample < 1 && random() >= sample) : !logger.isLevelEnabled('warn')
      ) {
        return;
      }
      const line = {
        ...fields,
        event: 'close',
        id: summary.id,
        reason: summary.reason,
        code: summary.error?.code,
        peer: hostPort(summary.peer),
        source: hostPort(summary.record?.source),
        destination: hostPort(summary.record?.destination),
        target: hostPort(summary.target),
        durationMs: round(summary.durationMs),
        connectMs: summary.connectMs === undefined ? undefined : round(summary.connectMs),
        bytesUp: summary.upstream.bytesWritten,
        bytesDown: summary.downstream.bytesWritten,
        path: summary.path,
      };
      if (graceful) logger.info(line, 'close');
      else logger.warn(line, 'close');
    },
    flush: () =>
      new Promise<void>((resolve) => {
        logger.flush(() => resolve());
      }),
  };
}

function isHealthCheck(summary: CloseSummary): boolean {
  const pp = summary.record?.extensions?.proxyProtocol as { command?: unknown } | undefined;
  return pp?.command === 'local';
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
