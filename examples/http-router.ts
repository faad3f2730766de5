// An HTTP/1 Host router: each connection goes to the backend of its Host header.
// Run: node dist/examples/http-router.js  (PORT, ROUTES='a.test=127.0.0.1:8081,b.test=127.0.0.1:8082', FALLBACK)
import { createRedirectServer, type RedirectServer, type TargetAddress } from '../lib/index';
import { route, sniff, sniffed, tap } from '../middleware/index';

export interface HttpRouterOptions {
  /** Host (lowercase, no port) → backend. */
  routes: ReadonlyMap<string, TargetAddress> | Readonly<Record<string, TargetAddress>>;
  /** Where requests for any other host (or non-HTTP bytes) go. */
  fallback: TargetAddress;
  log?: (line: string) => void;
}

export function createHttpRouter(options: HttpRouterOptions): RedirectServer {
  const routes = options.routes instanceof Map ? options.routes : new Map(Object.entries(options.routes));
  const log = options.log ?? (() => {});
  return createRedirectServer({
    // A plain reverse proxy: every accepted connection "was going to" the fallback.
    resolve: options.fallback,
    middleware: [
      sniff({ maxBytes: 8192, timeoutMs: 2000 }),
      route((ctx) => routes.get(sniffed(ctx)?.host ?? '')),
      tap({
        onEnd: (e, ctx) => {
          if (e.direction !== 'upstream') return;
          const s = sniffed(ctx);
          log(`#${ctx.id} ${s?.method ?? '-'} ${s?.host ?? '-'}${s?.path ?? ''} ${e.bytes} bytes up (${e.how})`);
        },
      }),
    ],
  });
}

if (require.main === module) {
  const routes: Record<string, TargetAddress> = {};
  for (const entry of (process.env.ROUTES ?? '').split(',').filter(Boolean)) {
    const [host, address] = entry.split('=');
    const [h, p] = (address ?? '').split(':');
    if (host && h && p) routes[host] = { host: h, port: Number(p) };
  }
  const [fh, fp] = (process.env.FALLBACK ?? '127.0.0.1:8080').split(':');
  const server = createHttpRouter({
    routes,
    fallback: { host: fh ?? '127.0.0.1', port: Number(fp) },
    log: console.log,
  });
  server.on('closed', (s) => s.error && console.log(`#${s.id} ${s.reason}: ${s.error.code}`));
  server.listen({ port: Number(process.env.PORT ?? 8000) }).then((a) => console.log(`http-router on ${a.port}`));
}
