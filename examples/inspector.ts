// A content inspector: resets connections whose client bytes contain a blocked pattern and logs the rest.
// Run: node dist/examples/inspector.js  (PORT, TARGET=host:port, BLOCK='DROP TABLE,/etc/passwd')
import { createRedirectServer, type RedirectServer, type TargetAddress } from '../lib/index';
import { inspect, tap } from '../middleware/index';

export interface InspectorOptions {
  target: TargetAddress;
  block: readonly (string | Buffer)[];
  log?: (line: string) => void;
}

export function createInspector(options: InspectorOptions): RedirectServer {
  const log = options.log ?? (() => {});
  const server = createRedirectServer({
    resolve: options.target,
    middleware: [
      inspect({
        patterns: options.block,
        direction: 'upstream',
        onMatch: (m, ctx) => {
          log(`#${ctx.id} blocked: ${JSON.stringify(m.bytes.toString('latin1'))} at ${m.offset}`);
          return 'deny';
        },
      }),
      tap({
        onEnd: (e, ctx) => {
          const d = ctx.record.destination;
          log(`#${ctx.id} ${e.direction} ${d.address}:${d.port} ${e.bytes} bytes in ${e.chunks} chunks (${e.how})`);
        },
      }),
    ],
  });
  server.on('closed', (s) => log(`#${s.id} closed: ${s.reason}${s.error ? ` (${s.error.code})` : ''}`));
  return server;
}

if (require.main === module) {
  const [host, port] = (process.env.TARGET ?? '127.0.0.1:8080').split(':');
  const server = createInspector({
    target: { host: host ?? '127.0.0.1', port: Number(port) },
    block: (process.env.BLOCK ?? 'DROP TABLE').split(',').filter(Boolean),
    log: console.log,
  });
  server.listen({ port: Number(process.env.PORT ?? 8001) }).then((a) => console.log(`inspector on ${a.port}`));
}
