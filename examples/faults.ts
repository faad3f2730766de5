// Fault injection on a service's real traffic: latency for one HTTP Host, resets for another,
// everything else untouched; the toxics stay under Toxiproxy's API (any Toxiproxy client).
//
// Transparent (root, Linux): TRANSPARENT=1 node dist/examples/faults.js
//   prints the iptables rules that send this host's outgoing HTTP (port 80) through the proxy
//   (`resolve: 'netfilter'`: no client is re-pointed), then serves until stopped.
// Anywhere else: node dist/examples/faults.js
//   runs the same toxics on loopback with a static resolver, in front of a small HTTP service,
//   and shows what two requests see.
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFaultControl, type FaultControl } from '../lib/fault-control/index';
import { createRedirectServer, type RedirectServer, type TargetAddress } from '../lib/index';
import { formatRules, generateRules } from '../lib/tools/rules';
import { sniff, ToxicSet } from '../middleware/index';

export interface FaultDemoOptions {
  /** 'netfilter' for real traffic (root), or where to send everything (loopback demo). */
  resolve: 'netfilter' | TargetAddress;
  /** Replays every random choice. */
  seed?: number;
  /** Where the Toxiproxy API listens: 0 for any free port. Default 8474. */
  apiPort?: number;
}

/** The proxy with its toxics, and the API that controls them (proxy name "app"). */
export async function startFaultDemo(
  options: FaultDemoOptions,
): Promise<{ server: RedirectServer; port: number; control: FaultControl; apiPort: number; toxics: ToxicSet }> {
  const toxics = new ToxicSet({ seed: options.seed ?? 1 });
  // Scoped by the sniffed HTTP Host (an extension of Toxiproxy's JSON: clients may add such toxics too).
  toxics.add({
    name: 'slow-api',
    type: 'latency',
    stream: 'downstream',
    attributes: { latency: 200 },
    scope: { host: ['api.test'] },
  });
  toxics.add({
    name: 'flaky',
    type: 'reset_peer',
    stream: 'upstream',
    attributes: { timeout: 0 },
    scope: { host: ['flaky.test'] },
  });
  const server = createRedirectServer({
    resolve: options.resolve,
    // sniff() first: it reads the Host before the toxics decide (at most 16 KiB, 5 s).
    middleware: [sniff(), toxics.middleware],
    // Our own upstream connections carry mark 0x1 so the rules below let them out (needs root).
    ...(options.resolve === 'netfilter' ? { egress: { mark: 0x1 } } : {}),
  });
  const bound = await server.listen({ host: options.resolve === 'netfilter' ? '0.0.0.0' : '127.0.0.1', port: 0 });
  const control = createFaultControl({ port: options.apiPort ?? 8474 });
  control.attach('app', toxics, { listen: `${bound.address}:${bound.port}` });
  const api = await control.listen();
  return { server, port: bound.port, control, apiPort: api.port, toxics };
}

/** One HTTP GET through the proxy with a Host header: status and time, or the error. */
export function get(port: number, host: string): Promise<{ status?: number; ms: number; error?: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ error: err.code ?? err.message, ms: performance.now() - started }),
    );
    req.end();
  });
}

async function main(): Promise<void> {
  const transparent = process.env.TRANSPARENT === '1' && process.getuid?.() === 0;
  if (transparent) {
    const demo = await startFaultDemo({ resolve: 'netfilter' });
    const rules = generateRules({ port: demo.port, mark: 0x1, ports: [80] });
    console.log(`proxy on :${demo.port}, Toxiproxy API on 127.0.0.1:${demo.apiPort} (proxy "app")`);
    console.log(`apply these (and the teardown when done):\n${formatRules(rules)}`);
    await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
    await demo.control.close();
    await demo.server.close();
    return;
  }
  const service = createServer((_, res) => res.end('hello\n')).listen(0, '127.0.0.1');
  await once(service, 'listening');
  const demo = await startFaultDemo({
    resolve: { host: '127.0.0.1', port: (service.address() as AddressInfo).port },
    apiPort: 0,
  });
  for (const host of ['plain.test', 'api.test', 'flaky.test']) {
    const r = await get(demo.port, host);
    console.log(`${host.padEnd(11)} ${r.error ? `error ${r.error}` : `HTTP ${r.status}`} after ${Math.round(r.ms)} ms`);
  }
  console.log(`(the toxics are under Toxiproxy's API on 127.0.0.1:${demo.apiPort}, proxy "app")`);
  await demo.control.close();
  await demo.server.close();
  service.close();
}

if (require.main === module) void main();
