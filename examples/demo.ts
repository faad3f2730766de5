// `npm start`: a self-contained tour, no root needed. A local upstream, a
// redirect server with two middlewares, and a client driven through it.
import { createServer, connect, type AddressInfo } from 'node:net';
import { map } from 'rxjs';
import { type CloseSummary, createRedirectServer, type Middleware } from '../lib/index';

/** Upper-cases what the client sends on its way to the upstream. */
const shout: Middleware = () => ({
  upstream: map((chunk: Buffer) => Buffer.from(chunk.toString('utf8').toUpperCase())),
});

/** Tags every reply with the proxy id and the original destination from the record. */
const stamp: Middleware = (ctx) => ({
  downstream: map((chunk: Buffer) =>
    Buffer.concat([
      Buffer.from(`[${ctx.proxyId} → ${ctx.record.destination.address}:${ctx.record.destination.port}] `),
      chunk,
    ]),
  ),
});

async function main(): Promise<void> {
  // The "real" destination: a tiny echo service.
  const upstream = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d) => s.write(`echo: ${d.toString()}`));
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as AddressInfo).port;

  // Without root there is no iptables REDIRECT, so the record comes from a
  // static resolver; with root use resolve: 'netfilter' or 'tproxy' (see docs/linux.md).
  const server = createRedirectServer({
    id: 'demo-proxy',
    resolve: { host: '127.0.0.1', port: upstreamPort },
    middleware: [shout, stamp],
    limits: { idleTimeoutMs: 5_000 },
  });
  server.on('connection', (conn) => {
    console.log(`connection #${conn.id} record:`, JSON.stringify(conn.record));
    conn.on('close', (summary: CloseSummary) => {
      console.log(`connection #${summary.id} closed:`, {
        reason: summary.reason,
        path: summary.path,
        upstream: { read: summary.upstream.bytesRead, written: summary.upstream.bytesWritten },
        downstream: { read: summary.downstream.bytesRead, written: summary.downstream.bytesWritten },
        durationMs: Math.round(summary.durationMs),
      });
    });
  });
  const address = await server.listen({ port: 0, host: '127.0.0.1' });
  console.log(`redirect server listening on ${address.address}:${address.port}, upstream on 127.0.0.1:${upstreamPort}`);

  for (const message of ['hello, proxy', 'bytes in, bytes out']) {
    const reply = await new Promise<string>((resolve, reject) => {
      const client = connect({ port: address.port, host: '127.0.0.1', allowHalfOpen: true });
      const chunks: Buffer[] = [];
      client.on('data', (c: Buffer) => chunks.push(c));
      client.on('end', () => resolve(Buffer.concat(chunks).toString()));
      client.on('error', reject);
      client.end(message);
    });
    console.log(`client sent ${JSON.stringify(message)} and got ${JSON.stringify(reply)}`);
  }
  await new Promise((r) => setTimeout(r, 50));
  console.log('server stats:', JSON.stringify(server.stats()));
  await server.close();
  upstream.close();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
