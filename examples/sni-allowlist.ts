// A TLS SNI allow-list: passes TLS connections whose ClientHello names an allowed server, resets the rest.
// A denied client never reaches the target: sniff with onSniff holds the upstream connect until its
// verdict (no SYN, no RST to the destination of a refused flow).
// Run: node dist/examples/sni-allowlist.js  (PORT, ALLOW='example.com,*.example.org', TARGET=host:port)
import { createRedirectServer, type RedirectServer, type TargetAddress } from '../lib/index';
import { sniff } from '../middleware/index';

export interface SniAllowlistOptions {
  /** Exact names, or '*.suffix' for any name under suffix. */
  allow: readonly string[];
  /** Where allowed connections go (with netfilter or tproxy, use `resolve` instead: the original destination). */
  target: TargetAddress;
  log?: (line: string) => void;
}

export function isAllowed(name: string | undefined, allow: readonly string[]): boolean {
  if (!name) return false;
  return allow.some((a) => (a.startsWith('*.') ? name.endsWith(a.slice(1)) : name === a.toLowerCase()));
}

export function createSniAllowlist(options: SniAllowlistOptions): RedirectServer {
  const log = options.log ?? (() => {});
  return createRedirectServer({
    resolve: options.target,
    middleware: [
      sniff({
        maxBytes: 16384,
        // Under limits.connectTimeoutMs (10 s by default), which also covers the held connect.
        timeoutMs: 5000,
        onSniff: (r, ctx) => {
          const ok = r.protocol === 'tls' && isAllowed(r.sni, options.allow);
          log(`#${ctx.id} ${r.protocol} sni=${r.sni ?? '-'} ${ok ? 'allowed' : 'denied'}`);
          return ok ? 'allow' : 'deny';
        },
      }),
    ],
  });
}

if (require.main === module) {
  const [host, port] = (process.env.TARGET ?? '127.0.0.1:443').split(':');
  const server = createSniAllowlist({
    allow: (process.env.ALLOW ?? '').split(',').filter(Boolean),
    target: { host: host ?? '127.0.0.1', port: Number(port) },
    log: console.log,
  });
  server.listen({ port: Number(process.env.PORT ?? 8443) }).then((a) => console.log(`sni-allowlist on ${a.port}`));
}
