import { execFile } from 'node:child_process';
import { type AddressInfo, createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import type { RedirectError } from '../lib/common/errors';
import { fdOf, native, requireLinux } from '../lib/platform/addon';
import { autoResolver } from '../lib/capture/auto';
import { netfilterResolver } from '../lib/capture/netfilter';
import { tproxyResolver } from '../lib/capture/tproxy';
import type { Endpoint } from '../lib/common/types';
import type { Resolver } from '../lib/capture/types';
import { gatedTest } from './helpers/netns';

const run = promisify(execFile);
const linux = process.platform === 'linux';
const onLinux = gatedTest(test, linux ? undefined : 'Linux only');
const privileged = gatedTest(
  test,
  !linux ? 'Linux only' : native.capabilities.netAdmin ? undefined : 'needs CAP_NET_ADMIN (run as root)',
);

interface Accepted {
  server: Server;
  socket: Socket;
  client: Socket;
  listen: Endpoint;
}

/** A listener on `host` and one accepted, paused connection from a plain client. */
async function accepted(t: ExecutionContext, host: string): Promise<Accepted> {
  let resolveSocket!: (s: Socket) => void;
  const socketPromise = new Promise<Socket>((resolve) => {
    resolveSocket = resolve;
  });
  const server = createServer({ pauseOnConnect: true }, (s) => resolveSocket(s));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address() as AddressInfo;
  const client = createConnection(address.port, host === '::' || host === '0.0.0.0' ? '127.0.0.1' : host);
  client.on('error', () => {});
  t.teardown(() => client.destroy());
  const socket = await socketPromise;
  t.teardown(() => socket.destroy());
  return {
    server,
    socket,
    client,
    listen: { address: address.address, port: address.port, family: address.family === 'IPv6' ? 'IPv6' : 'IPv4' },
  };
}

// resolve() may answer synchronously; the tests want a promise either way.
async function resolveWith(resolver: Resolver, a: Accepted, listen: Endpoint | undefined = a.listen) {
  return resolver.resolve({ socket: a.socket, listenAddress: listen, signal: new AbortController().signal });
}

onLinux('netfilter: a direct connection is refused as not redirected', async (t) => {
  const a = await accepted(t, '127.0.0.1');
  const err = (await t.throwsAsync(resolveWith(netfilterResolver(), a))) as RedirectError;
  t.is(err.code, 'ERR_REDIRECT_NOT_REDIRECTED');
  t.regex(err.message, /notRedirected/);
});

onLinux('netfilter: notRedirected { host, port } sends a direct flow to the fallback', async (t) => {
  const a = await accepted(t, '::');
  const fallback = { host: '127.0.0.1', port: 9 };
  const result = await resolveWith(netfilterResolver({ notRedirected: fallback }), a, undefined);
  t.deepEqual(result.target, fallback);
  t.is(result.record.mechanism, 'netfilter');
  // The v4-mapped client of a dual-stack listener is reported as plain IPv4.
  t.deepEqual(result.record.source, { address: '127.0.0.1', port: a.client.localPort, family: 'IPv4' });
  t.deepEqual(result.record.destination, { address: '127.0.0.1', port: a.listen.port, family: 'IPv4' });
  t.is(result.record.mark, 0);
  t.deepEqual(result.record.chain, []);
  t.true(Object.isFrozen(result.record));
});

onLinux('tproxy: the local address is the destination unless it is the listener itself', async (t) => {
  const a = await accepted(t, '127.0.0.1');
  const err = (await t.throwsAsync(resolveWith(tproxyResolver({ transparent: false }), a))) as RedirectError;
  t.is(err.code, 'ERR_REDIRECT_NOT_REDIRECTED');
  // Seen from a listener on another port, this flow was steered to us: its local address is the destination.
  const elsewhere: Endpoint = { address: '0.0.0.0', port: a.listen.port + 1, family: 'IPv4' };
  const result = await resolveWith(tproxyResolver({ transparent: false }), a, elsewhere);
  t.is(result.record.mechanism, 'tproxy');
  t.deepEqual(result.record.destination, { address: '127.0.0.1', port: a.listen.port, family: 'IPv4' });
  t.is(result.target, undefined);
});

onLinux('auto: direct flows are not redirected; a foreign local endpoint is tproxy', async (t) => {
  const a = await accepted(t, '::1');
  const err = (await t.throwsAsync(resolveWith(autoResolver(), a))) as RedirectError;
  t.is(err.code, 'ERR_REDIRECT_NOT_REDIRECTED');
  const elsewhere: Endpoint = { address: '::', port: a.listen.port + 1, family: 'IPv6' };
  const result = await resolveWith(autoResolver(), a, elsewhere);
  t.is(result.record.mechanism, 'tproxy');
  t.deepEqual(result.record.destination, { address: '::1', port: a.listen.port, family: 'IPv6' });
});

test('resolver options are checked at once', (t) => {
  const cases: Array<() => unknown> = [
    () => netfilterResolver({ notRedirected: { host: '', port: 1 } }),
    () => netfilterResolver({ notRedirected: { host: '127.0.0.1', port: 0 } }),
    () => netfilterResolver({ cooperating: { a: 0x3 } }),
    () => netfilterResolver({ id: 'me', cooperating: { a: 0x1 } }),
    () => tproxyResolver({ transparent: 'yes' as unknown as boolean }),
  ];
  for (const make of cases) {
    t.is((t.throws(make) as RedirectError).code, 'ERR_REDIRECT_INVALID_OPTION');
  }
});

privileged('tproxy: prepareListener makes the listener transparent', async (t) => {
  const a = await accepted(t, '::');
  await tproxyResolver().prepareListener?.(a.server);
  t.true(requireLinux('test').isTransparent(fdOf(a.server)));
});

test('tproxy resolves without the addon when the listener is already transparent', async (t) => {
  const script = `
    const net = require('node:net');
    const { tproxyResolver } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'capture', 'tproxy.js'))});
    const server = net.createServer({ pauseOnConnect: true }, async (socket) => {
      const listenAddress = { address: '0.0.0.0', port: server.address().port + 1, family: 'IPv4' };
      const { record } = await tproxyResolver({ transparent: false })
        .resolve({ socket, listenAddress, signal: new AbortController().signal });
      console.log(JSON.stringify(record));
      socket.destroy(); client.destroy(); server.close();
    });
    let client;
    server.listen(0, '127.0.0.1', () => {
      client = net.connect(server.address().port, '127.0.0.1').on('error', () => {});
    });`;
  const { stdout } = await run(process.execPath, ['-e', script], { env: { ...process.env, RXREDIRECT_NATIVE: '0' } });
  const record = JSON.parse(stdout) as { mechanism: string; mark?: number; destination: Endpoint };
  t.is(record.mechanism, 'tproxy');
  t.is(record.mark, undefined);
  t.is(record.destination.address, '127.0.0.1');
});

const asRoot = gatedTest(
  test,
  linux && process.getuid?.() === 0 ? undefined : 'needs root (to drop CAP_NET_ADMIN and CAP_NET_RAW)',
);

asRoot('tproxy without CAP_NET_ADMIN: listen() fails with a remedy that fits TPROXY (no owner match)', async (t) => {
  const script = `
    const { createRedirectServer } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'index.js'))});
    const server = createRedirectServer({ resolve: 'tproxy' });
    server.listen({ host: '127.0.0.1', port: 0 }).then(
      () => { console.log(JSON.stringify({ ok: true })); return server.close(); },
      (e) => console.log(JSON.stringify({ code: e.code, syscallCode: e.syscallCode, message: e.message })),
    );`;
  const { stdout } = await run('setpriv', ['--bounding-set', '-net_admin,-net_raw', process.execPath, '-e', script]);
  const out = JSON.parse(stdout) as { code: string; syscallCode: string; message: string };
  t.is(out.code, 'ERR_REDIRECT_PERMISSION');
  t.is(out.syscallCode, 'EPERM');
  t.regex(out.message, /IP_TRANSPARENT/);
  t.regex(out.message, /CAP_NET_ADMIN/);
  t.regex(out.message, /listen\(\{ fd \}\) with transparent: false/);
  t.notRegex(out.message, /owner/, 'an owner match cannot skip TPROXY (PREROUTING has no owner)');
});
