import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as tcpConnect, type Server } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { tap } from 'rxjs';
import { type Middleware, testMiddleware } from '../lib/index';
import { type SniffOptions, sniff, sniffed } from '../middleware/index';
import { collect, dialRaw, listenTcp, nextClose, sha256, startRedirect } from './helpers/net';
import { captureClientHello, selfSignedCert } from './helpers/tls';
import { throwsCode } from './helpers/expect';

const LOOP = '127.0.0.1';
const GOOD = 'good.test';
const onlyGood: SniffOptions['onSniff'] = (s) => (s.sni === GOOD ? 'allow' : 'deny');

/** Counts the TCP connections a real server accepted (TLS servers count before any handshake). */
function countConnections(server: Server): () => Promise<number> {
  let count = 0;
  server.on('connection', () => {
    count++;
  });
  // Accepts are in arrival order: once a probe of our own was accepted, every connection the
  // proxy completed before it was too. The probe itself is not counted.
  return async () => {
    const seen = once(server, 'connection');
    const probe = tcpConnect({ port: (server.address() as { port: number }).port, host: LOOP });
    probe.on('error', () => {});
    await seen;
    probe.destroy();
    return count - 1;
  };
}

/** A TLS echo server for GOOD, on loopback port 0. */
async function tlsEcho(
  t: ExecutionContext,
): Promise<{ port: number; cert: Buffer; connections: () => Promise<number> }> {
  const { key, cert } = selfSignedCert(GOOD);
  const server = createTlsServer({ key, cert, allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  const connections = countConnections(server);
  server.listen(0, LOOP);
  await once(server, 'listening');
  t.teardown(() => server.close());
  return { port: (server.address() as { port: number }).port, cert, connections };
}

test('harness: with a policy, sniff holds the connect until it allows; without one, or opted out, it does not', async (t) => {
  const hello = await captureClientHello(t, GOOD);
  const allowed = await testMiddleware(sniff({ onSniff: onlyGood }), { upstream: [hello] });
  t.is(allowed.connect, 'released');
  t.deepEqual(allowed.upstreamBytes, hello);
  const denied = await testMiddleware(sniff({ onSniff: () => 'deny' }), { upstream: [hello] });
  t.is(denied.connect, 'pending');
  t.is(denied.error?.code, 'ERR_REDIRECT_DENIED');
  t.is((await testMiddleware(sniff(), { upstream: [hello] })).connect, 'at-accept');
  t.is(
    (await testMiddleware(sniff({ onSniff: onlyGood, deferConnect: false }), { upstream: [hello] })).connect,
    'at-accept',
  );
  // A client that sends nothing: decided at the timeout, then released.
  const silent = await testMiddleware(sniff({ onSniff: () => 'allow', timeoutMs: 20 }), {
    endUpstream: false,
    timeoutMs: 80,
  });
  t.is(silent.connect, 'released');
  throwsCode(t, () => sniff({ deferConnect: 'yes' as never }), 'ERR_REDIRECT_INVALID_OPTION');
});

test('a denied SNI never reaches the destination: no upstream connection, the client is reset', async (t) => {
  const up = await tlsEcho(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: LOOP, port: up.port },
    middleware: [sniff({ onSniff: onlyGood })],
  });
  const closed = nextClose(server);
  const bad = tlsConnect({ port, host: LOOP, servername: 'bad.test', ca: up.cert });
  const [err] = (await once(bad, 'error').catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
  // The proxy sent nothing before its RST, so a plain socket reports the reset as one.
  t.is(err.code, 'ECONNRESET');
  const summary = await closed;
  t.is(await up.connections(), 0, 'the destination saw no connection');
  t.is(summary.reason, 'middleware-error');
  t.is(summary.error?.code, 'ERR_REDIRECT_DENIED');
  t.is(summary.target, undefined, 'no target was ever dialled');
  t.is(summary.downstream.bytesRead, 0);
});

test('an allowed SNI connects after the verdict and the TLS session carries bytes intact both ways', async (t) => {
  const up = await tlsEcho(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: LOOP, port: up.port },
    middleware: [sniff({ onSniff: onlyGood })],
  });
  const conn = new Promise<string | undefined>((resolve) =>
    server.once('connection', (c) => c.once('close', () => resolve(c.summary?.reason))),
  );
  const good: TLSSocket = tlsConnect({ port, host: LOOP, servername: GOOD, ca: up.cert });
  good.on('error', () => {});
  await once(good, 'secureConnect');
  const payload = randomBytes(2 * 1024 * 1024);
  const echoed = collect(good);
  good.end(payload);
  const back = await echoed;
  t.is(back.error, undefined);
  t.is(back.bytes, payload.length);
  t.is(back.sha256, sha256(payload));
  t.true(['client-end', 'upstream-end'].includes((await conn) ?? ''));
  t.is(await up.connections(), 1);
});

/** Defers the connect as well, and releases it once `bytes` went past it: the core's queue fills first. */
function holdFor(bytes: number): Middleware {
  return (ctx) => {
    const release = ctx.deferConnect();
    let seen = 0;
    return {
      upstream: tap((chunk: Buffer) => {
        seen += chunk.length;
        if (seen >= bytes) release();
      }),
    };
  };
}

for (const held of [false, true]) {
  test(`bytes read before and after the verdict reach the destination in order${held ? ', through a full queue' : ''}`, async (t) => {
    const hello = await captureClientHello(t, GOOD);
    const hash = createHash('sha256');
    let received = 0;
    let accepted = 0;
    const up = await listenTcp(t, (s) => {
      accepted++;
      s.on('data', (c: Buffer) => {
        received += c.length;
        hash.update(c);
      });
      s.on('end', () => s.end());
    });
    const highWaterMark = 64 * 1024;
    let result: string | undefined;
    const { server, port } = await startRedirect(t, {
      resolve: { host: LOOP, port: up.port },
      middleware: [
        sniff({
          onSniff: (r, ctx) => {
            result = sniffed(ctx)?.sni ?? r.sni;
            return onlyGood(r, ctx);
          },
        }),
        ...(held ? [holdFor(highWaterMark)] : []),
      ],
      limits: { highWaterMark },
    });
    const closed = nextClose(server);
    const client = dialRaw(port);
    const got = collect(client);
    // The ClientHello cut in two, then 4 MiB at once: all of it is read before the connect.
    const body = randomBytes(4 * 1024 * 1024);
    client.write(hello.subarray(0, 7));
    client.write(hello.subarray(7));
    client.end(body);
    const summary = await closed;
    await got;
    const sent = Buffer.concat([hello, body]);
    t.is(result, GOOD);
    t.is(summary.reason, 'client-end');
    t.is(received, sent.length);
    t.is(hash.digest('hex'), sha256(sent));
    t.is(summary.upstream.bytesWritten, sent.length);
    t.is(accepted, 1);
    if (held) {
      // Reading stopped at the mark while the connect was held, and the queue stayed bounded.
      t.true(summary.upstream.pauses >= 1);
      t.true(summary.upstream.peakBuffered < highWaterMark + 1024 * 1024, String(summary.upstream.peakBuffered));
    }
  });
}

test('deferConnect: false connects at accept: a denied flow then does reach its destination', async (t) => {
  const up = await tlsEcho(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: LOOP, port: up.port },
    middleware: [sniff({ onSniff: onlyGood, deferConnect: false })],
  });
  const closed = nextClose(server);
  const bad = tlsConnect({ port, host: LOOP, servername: 'bad.test', ca: up.cert });
  bad.on('error', () => {});
  const summary = await closed;
  t.is(summary.error?.code, 'ERR_REDIRECT_DENIED');
  t.is(await up.connections(), 1);
});
