import { once } from 'node:events';
import { request } from 'node:http';
import test from 'ava';
import { map } from 'rxjs';
import { type Middleware, testMiddleware } from '../lib/index';
import { route, sniff, sniffed } from '../middleware/index';
import { collect, dial, dialRaw, listenTcp, nextClose, startRedirect } from './helpers/net';

test('harness: route defers the connect and releases it with the chosen target', async (t) => {
  const m = [sniff(), route((ctx) => (sniffed(ctx)?.host === 'a.test' ? { host: '10.0.0.1', port: 81 } : undefined))];
  const r = await testMiddleware(m, { upstream: ['GET / HTTP/1.1\r\nHo', 'st: a.test\r\n\r\n'] });
  t.is(r.connect, 'released');
  t.deepEqual(r.target, { host: '10.0.0.1', port: 81 });
  t.is(r.upstreamBytes.toString(), 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const other = await testMiddleware(m, { upstream: ['GET / HTTP/1.1\r\nHost: b.test\r\n\r\n'] });
  t.is(other.connect, 'released');
  t.is(other.target, undefined);
  const silent = await testMiddleware(
    route(() => undefined, { waitMs: 20 }),
    { endUpstream: false, timeoutMs: 60 },
  );
  t.is(silent.connect, 'released');
  const never = await testMiddleware(
    route(() => new Promise(() => {})),
    { upstream: ['x'] },
  );
  t.is(never.connect, 'pending');
  const none = await testMiddleware([], {});
  t.is(none.connect, 'at-accept');
  const late: Middleware = (ctx) => ({
    upstream: (s) => {
      ctx.deferConnect();
      return s;
    },
  });
  t.is((await testMiddleware(late, { upstream: ['x'] })).error?.code, 'ERR_REDIRECT_DEFER_CONNECT');
  const bad = await testMiddleware(
    route(() => {
      throw new Error('no route');
    }),
    { upstream: ['x'] },
  );
  t.is(bad.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
});

test('real sockets: HTTP requests are routed by Host to different upstreams', async (t) => {
  const upstreamFor = (name: string) =>
    listenTcp(t, (s) => {
      s.once('data', () =>
        s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${name.length}\r\nConnection: close\r\n\r\n${name}`),
      );
    });
  const a = await upstreamFor('alpha');
  const b = await upstreamFor('bravo');
  const fallback = await upstreamFor('fallback');
  const backends = new Map([
    ['alpha.test', { host: '127.0.0.1', port: a.port }],
    ['bravo.test', { host: '127.0.0.1', port: b.port }],
  ]);
  const { port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: fallback.port },
    middleware: [sniff(), route((ctx) => backends.get(sniffed(ctx)?.host ?? ''))],
  });
  const get = (host: string) =>
    new Promise<string>((resolve, reject) => {
      const req = request({ port, host: '127.0.0.1', path: '/', headers: { host, connection: 'close' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
  t.is(await get('alpha.test'), 'alpha');
  t.is(await get('bravo.test:8080'), 'bravo');
  t.is(await get('unknown.test'), 'fallback');
});

test('real sockets: a routed target that refuses gives upstream-refused', async (t) => {
  const closedPort = await (async () => {
    const l = await listenTcp(t, () => {});
    const p = l.port;
    l.server.close();
    await once(l.server, 'close');
    return p;
  })();
  const fallback = await listenTcp(t, () => {});
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: fallback.port },
    middleware: [route(() => ({ host: '127.0.0.1', port: closedPort }))],
  });
  const closed = nextClose(server);
  const client = await dial(port);
  const got = collect(client);
  client.write('hello');
  const summary = await closed;
  t.is(summary.reason, 'upstream-refused');
  t.is(summary.error?.code, 'ERR_REDIRECT_UPSTREAM_REFUSED');
  t.deepEqual(summary.target, { host: '127.0.0.1', port: closedPort });
  await got;
});

test('real sockets: a target never chosen gives connect-timeout; nothing is connected', async (t) => {
  let accepted = 0;
  const fallback = await listenTcp(t, () => {
    accepted++;
  });
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: fallback.port },
    middleware: [route(() => new Promise(() => {}))],
    // The deadline is armed as reading starts; 'hello' is in the socket's queue
    // by then (written with the SYN's answer), so it is read at the next turn
    // of the loop: only a loop blocked for the whole deadline could miss it.
    limits: { connectTimeoutMs: 1000 },
  });
  const closed = nextClose(server);
  const client = dialRaw(port);
  const got = collect(client);
  client.write('hello');
  const summary = await closed;
  t.is(summary.reason, 'connect-timeout');
  t.is(summary.error?.code, 'ERR_REDIRECT_CONNECT_TIMEOUT');
  t.is(accepted, 0);
  t.is(summary.upstream.bytesRead, 5);
  await got;
});

test('real sockets: bytes sent while deferred are held by flow control and delivered in order', async (t) => {
  const received: Buffer[] = [];
  let ended = false;
  const up = await listenTcp(t, (s) => {
    s.on('data', (c: Buffer) => received.push(c));
    s.on('end', () => {
      ended = true;
      s.end();
    });
  });
  let choose: (v: { host: string; port: number }) => void = () => {};
  const chosen = new Promise<{ host: string; port: number }>((r) => {
    choose = r;
  });
  // Counts what the proxy read while the connect is deferred: once it holds more
  // as much as the high-water mark, flow control has stopped reading.
  const HWM = 64 * 1024;
  let held = 0;
  let overMark: () => void = () => {};
  const pastHighWater = new Promise<void>((resolve) => {
    overMark = resolve;
  });
  const counter: Middleware = () => ({
    upstream: map((c: Buffer) => {
      held += c.length;
      if (held >= HWM) overMark();
      return c;
    }),
  });
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: 1 },
    middleware: [counter, route(() => chosen)],
    limits: { highWaterMark: HWM },
  });
  const closed = nextClose(server);
  const client = await dial(port);
  const total = 4 * 1024 * 1024;
  const payload = Buffer.alloc(total);
  for (let i = 0; i < total; i++) payload[i] = i % 251;
  client.write(payload);
  client.end();
  await pastHighWater;
  choose({ host: '127.0.0.1', port: up.port });
  const summary = await closed;
  t.true(ended);
  t.true(Buffer.concat(received).equals(payload));
  t.is(summary.upstream.bytesWritten, total);
  t.true(summary.upstream.pauses >= 1);
  t.true(summary.upstream.peakBuffered < 64 * 1024 + 256 * 1024, String(summary.upstream.peakBuffered));
});
