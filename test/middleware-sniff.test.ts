import { once } from 'node:events';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { type CloseSummary, splits, testMiddleware } from '../lib/index';
import { SNIFF_KEY, type SniffResult, sniff, sniffed } from '../middleware/index';
import { listenTcp, startRedirect } from './helpers/net';
import { throwsCode } from './helpers/expect';

/**
 * The first bytes a real client sends, captured by a raw TCP listener until
 * `complete` says the message is whole (the client may write it in pieces).
 */
async function capture(
  t: ExecutionContext,
  complete: (bytes: Buffer) => boolean,
  start: (port: number) => { destroy(): void },
): Promise<Buffer> {
  let resolve: (b: Buffer) => void = () => {};
  const got = new Promise<Buffer>((r) => {
    resolve = r;
  });
  const raw = await listenTcp(t, (s: Socket) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      const bytes = Buffer.concat(chunks);
      if (complete(bytes)) resolve(bytes);
    });
  });
  const client = start(raw.port);
  const bytes = await got;
  client.destroy();
  return bytes;
}

function tlsHello(t: ExecutionContext, servername: string): Promise<Buffer> {
  // One TLS record: a 5-byte header whose last two bytes give the body's length.
  const wholeRecord = (b: Buffer): boolean => b.length >= 5 && b.length >= 5 + b.readUInt16BE(3);
  return capture(t, wholeRecord, (port) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername, ALPNProtocols: ['h2', 'http/1.1'] });
    s.on('error', () => {});
    return s;
  });
}

function httpRequest(t: ExecutionContext): Promise<Buffer> {
  // The head, then the 4-byte body ('body'), however Node cuts its writes.
  const withBody = (b: Buffer): boolean => {
    const head = b.indexOf('\r\n\r\n');
    return head >= 0 && b.length >= head + 4 + 4;
  };
  return capture(t, withBody, (port) => {
    const req = request({
      port,
      host: '127.0.0.1',
      path: '/some/path?x=1',
      method: 'POST',
      headers: { host: 'Example.COM:8080' },
    });
    req.on('error', () => {});
    req.end('body');
    return req;
  });
}

test('a real TLS ClientHello: SNI and ALPN, whatever the cut, bytes unchanged', async (t) => {
  const hello = await tlsHello(t, 'api.example.org');
  t.is(hello[0], 0x16);
  for (const pieces of splits(hello)) {
    const r = await testMiddleware(sniff(), { upstream: pieces });
    const found = r.state.get(SNIFF_KEY) as SniffResult;
    t.is(found.protocol, 'tls');
    t.is(found.sni, 'api.example.org');
    t.deepEqual(found.alpn, ['h2', 'http/1.1']);
    t.is(found.stoppedBy, 'parsed');
    t.deepEqual(r.upstreamBytes, hello);
  }
});

test('a real HTTP/1 request: method, path and Host, whatever the cut', async (t) => {
  const req = await httpRequest(t);
  for (const pieces of splits(req)) {
    const r = await testMiddleware(sniff(), { upstream: pieces });
    t.deepEqual(sniffed(r.ctx), {
      protocol: 'http',
      method: 'POST',
      path: '/some/path?x=1',
      host: 'example.com',
      stoppedBy: 'parsed',
    });
    t.deepEqual(r.upstreamBytes, req);
  }
});

test('bounded: gives up at maxBytes, at the timeout, at the end; unknown protocols pass', async (t) => {
  const long = `GET / HTTP/1.1\r\nX: ${'a'.repeat(100)}\r\nHost: late\r\n\r\n`;
  const r1 = await testMiddleware(sniff({ maxBytes: 40 }), { upstream: [long] });
  t.like(sniffed(r1.ctx), { protocol: 'http', method: 'GET', stoppedBy: 'max-bytes' });
  t.is(sniffed(r1.ctx)?.host, undefined);
  t.is(r1.upstreamBytes.toString(), long);

  const r2 = await testMiddleware(sniff({ timeoutMs: 30 }), {
    upstream: ['GET / HTTP/1.1\r\nHost: a.b\r\n'],
    endUpstream: false,
    timeoutMs: 100,
  });
  t.like(sniffed(r2.ctx), { protocol: 'http', host: 'a.b', stoppedBy: 'timeout' });
  t.is(r2.upstreamBytes.toString(), 'GET / HTTP/1.1\r\nHost: a.b\r\n');

  const r3 = await testMiddleware(sniff(), { upstream: ['SSH-2.0-OpenSSH\r\n'] });
  t.like(sniffed(r3.ctx), { protocol: 'unknown' });
  const r4 = await testMiddleware(sniff(), { upstream: [Buffer.from([0x16, 0x03, 0x01, 0x00])] });
  t.like(sniffed(r4.ctx), { protocol: 'tls', stoppedBy: 'end' });
  t.is(r4.upstreamBytes.length, 4);
  const r5 = await testMiddleware(sniff({ timeoutMs: 20 }), { endUpstream: false, timeoutMs: 60, downstream: ['hi'] });
  t.like(sniffed(r5.ctx), { protocol: 'unknown', stoppedBy: 'timeout' });
  t.is(r5.downstreamBytes.toString(), 'hi');
  throwsCode(t, () => sniff({ maxBytes: 0 }), 'ERR_REDIRECT_INVALID_OPTION');
});

test('onSniff deny ends the flow with ERR_REDIRECT_DENIED before any byte is passed on', async (t) => {
  const r = await testMiddleware(sniff({ onSniff: (s) => (s.host === 'evil.test' ? 'deny' : 'allow') }), {
    upstream: ['GET / HTTP/1.1\r\n', 'Host: evil.test\r\n\r\n'],
  });
  t.is(r.error?.code, 'ERR_REDIRECT_DENIED');
  t.is(r.upstream.length, 0);
});

test('real sockets: a TLS client to a denied SNI is reset, an allowed one passes unchanged', async (t) => {
  const received: Buffer[] = [];
  let firstChunk: (chunk: Buffer) => void = () => {};
  const arrived = new Promise<Buffer>((resolve) => {
    firstChunk = resolve;
  });
  const up = await listenTcp(t, (s) =>
    s.on('data', (c: Buffer) => {
      received.push(c);
      firstChunk(c);
    }),
  );
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [sniff({ onSniff: (s) => (s.sni === 'good.test' ? 'allow' : 'deny') })],
  });
  const closed = new Promise<CloseSummary>((r) => server.once('closed', r));
  const bad = tlsConnect({ port, host: '127.0.0.1', servername: 'bad.test' });
  const err = await once(bad, 'error').catch((e: unknown) => [e]);
  t.truthy(err);
  const summary = await closed;
  t.is(summary.error?.code, 'ERR_REDIRECT_DENIED');
  t.is(received.length, 0);

  const good = tlsConnect({ port, host: '127.0.0.1', servername: 'good.test' });
  good.on('error', () => {});
  t.teardown(() => good.destroy());
  t.is((await arrived)[0], 0x16);
});
