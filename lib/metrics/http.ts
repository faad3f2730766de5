import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RedirectError } from '../common/errors';
import { promClient } from './prom-client';

/** What /metrics serves: one process's metrics, or several workers' merged. */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsEndpoint {
  readonly address: { readonly host: string; readonly port: number };
  close(): Promise<void>;
}

/**
 * Merges the `json()` of several workers into one source (prom-client's
 * AggregatorRegistry.aggregate, the merge its cluster mode does). Series of different
 * workers stay apart by their `worker` label.
 */
export function aggregateMetrics(perWorker: readonly unknown[][]): MetricsSource {
  const prom = promClient();
  const registry = prom.AggregatorRegistry.aggregate(
    perWorker as Parameters<typeof prom.AggregatorRegistry.aggregate>[0],
  );
  return { text: () => registry.metrics(), contentType: registry.contentType };
}

/** Serves GET /metrics over HTTP (no TLS, no auth: bind it to a private address). */
export async function serveMetrics(
  source: MetricsSource | (() => Promise<MetricsSource>),
  options: { host?: string; port?: number } = {},
): Promise<MetricsEndpoint> {
  const http = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(path === '/metrics' ? 405 : 404, { 'content-type': 'text/plain' }).end('see /metrics\n');
      return;
    }
    (async () => (typeof source === 'function' ? await source() : source))()
      .then(async (s) => {
        const body = await s.text();
        res.writeHead(200, { 'content-type': s.contentType }).end(body);
      })
      .catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`);
      });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ host, port: options.port ?? 0 }, () => {
      http.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw new RedirectError(
      'ERR_REDIRECT_LISTEN_FAILED',
      `metrics: cannot listen on ${host} port ${options.port ?? 0}: ${String(err)}`,
      {
        cause: err,
      },
    );
  });
  const bound = http.address() as AddressInfo;
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}
