import { once } from 'node:events';
import { request } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { createInspector } from '../examples/inspector';
import { createHttpRouter } from '../examples/http-router';
import { createSniAllowlist, isAllowed } from '../examples/sni-allowlist';
import type { CloseSummary, RedirectServer } from '../lib/index';
import { collect, dial, echoUpstream, listenTcp, readAtLeast } from './helpers/net';

async function start(t: ExecutionContext, server: RedirectServer): Promise<number> {
  const address = await server.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close({ timeoutMs: 0 }));
  return address.port;
}

const nextClose = (s: RedirectServer) => new Promise<CloseSummary>((r) => s.once('closed', r));

test('http-router example: routes one request by Host', async (t) => {
  const backend = await listenTcp(t, (s) => {
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
  });
  const fallback = await listenTcp(t, (s) => s.destroy());
  const lines: string[] = [];
  const server = createHttpRouter({
    routes: { 'app.test': { host: '127.0.0.1', port: backend.port } },
    fallback: { host: '127.0.0.1', port: fallback.port },
    log: (l) => lines.push(l),
  });
  const port = await start(t, server);
  const closed = nextClose(server);
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: '/x', headers: { host: 'app.test' } }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => {
        b += c;
      });
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
    req.end();
  });
  t.is(body, 'ok');
  await closed;
  t.regex(lines.join('\n'), /GET app\.test\/x/);
});

test('sni-allowlist example: an allowed name reaches the target, another is reset and never dialled', async (t) => {
  t.true(isAllowed('a.example.org', ['*.example.org']));
  t.false(isAllowed('example.org.evil', ['*.example.org']));
  const received: Buffer[] = [];
  const peers: number[] = [];
  let firstChunk: (chunk: Buffer) => void = () => {};
  const arrived = new Promise<Buffer>((resolve) => {
    firstChunk = resolve;
  });
  const target = await listenTcp(t, (s) => {
    peers.push(s.remotePort ?? 0);
    s.on('data', (c: Buffer) => {
      received.push(c);
      firstChunk(c);
    });
  });
  const server = createSniAllowlist({ allow: ['good.test'], target: { host: '127.0.0.1', port: target.port } });
  const port = await start(t, server);
  const closed = nextClose(server);
  const bad = tlsConnect({ port, host: '127.0.0.1', servername: 'bad.test' });
  await once(bad, 'error').catch(() => {});
  t.is((await closed).error?.code, 'ERR_REDIRECT_DENIED');
  // Accepts come in order: once this probe is accepted, any connection the proxy made was too.
  const probe = await dial(target.port);
  const probePort = probe.localPort;
  while (!peers.includes(probePort ?? -1)) await once(target.server, 'connection');
  probe.destroy();
  t.deepEqual(peers, [probePort], 'only the probe: the denied flow never reached the target');
  t.is(received.length, 0);
  const good = tlsConnect({ port, host: '127.0.0.1', servername: 'good.test' });
  good.on('error', () => {});
  t.teardown(() => good.destroy());
  t.is((await arrived)[0], 0x16);
});

test('inspector example: blocks a pattern, logs and passes the rest', async (t) => {
  const up = await echoUpstream(t);
  const lines: string[] = [];
  const server = createInspector({
    target: { host: '127.0.0.1', port: up.port },
    block: ['DROP TABLE'],
    log: (l) => lines.push(l),
  });
  const port = await start(t, server);
  let closed = nextClose(server);
  const ok = await dial(port);
  const okGot = collect(ok);
  ok.end('SELECT 1');
  t.is((await okGot).data?.toString(), 'SELECT 1');
  t.is((await closed).reason, 'client-end');
  closed = nextClose(server);
  const evil = await dial(port);
  const evilGot = collect(evil);
  // The pattern is cut across two chunks: the second write waits until the
  // proxy has read the first (part of it is echoed back).
  const firstRead = readAtLeast(evil, 1);
  evil.write('SELECT 1; DROP ');
  await firstRead;
  evil.write('TABLE users');
  await evilGot;
  t.is((await closed).error?.code, 'ERR_REDIRECT_DENIED');
  t.regex(lines.join('\n'), /blocked: "DROP TABLE"/);
  t.regex(lines.join('\n'), /upstream 127\.0\.0\.1:\d+ 8 bytes/);
});
