import { execFile } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, Socket, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { RedirectError } from '../lib/common/errors';
import { fdOf, type LinuxAddon, native, requireLinux, requireNative } from '../lib/platform/addon';
import { gatedTest } from './helpers/netns';

const run = promisify(execFile);
const linux = process.platform === 'linux';
const addon = (): LinuxAddon => requireLinux('native tests');
const privileged = gatedTest(
  test,
  !linux ? 'Linux only' : native.capabilities.netAdmin ? undefined : 'needs CAP_NET_ADMIN (run as root)',
);
const onLinux = gatedTest(test, linux ? undefined : 'Linux only');

async function listen(t: ExecutionContext, host: string, onSocket?: (s: Socket) => void): Promise<Server> {
  const server = createServer({ pauseOnConnect: true }, (s) => (onSocket ? onSocket(s) : s.destroy()));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

/** Accepts one connection to `host` and hands both ends over. */
async function pair(t: ExecutionContext, host: string): Promise<{ accepted: Socket; client: Socket }> {
  let resolveAccepted!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => {
    resolveAccepted = resolve;
  });
  const server = await listen(t, host, (s) => resolveAccepted(s));
  const client = createConnection(portOf(server), host);
  client.on('error', () => {});
  t.teardown(() => client.destroy());
  const s = await accepted;
  t.teardown(() => s.destroy());
  return { accepted: s, client };
}

test('the addon loads and reports its version', (t) => {
  t.true(native.available, `addon not loaded: ${native.loadError?.message}`);
  t.is(native.loadError, undefined);
  t.is(requireNative('test').version(), '0.1.0');
});

onLinux('capabilities agree with /proc/self/status', (t) => {
  const caps = native.capabilities;
  t.is(caps.source, 'addon');
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  t.is(caps.netAdmin, ((BigInt(`0x${capEff}`) >> 12n) & 1n) === 1n);
  t.true(caps.splice);
});

onLinux('localAddress and peerAddress match what Node reports (IPv4 and IPv6)', async (t) => {
  for (const host of ['127.0.0.1', '::1']) {
    const { accepted } = await pair(t, host);
    const fd = fdOf(accepted);
    t.deepEqual(addon().localAddress(fd), {
      address: accepted.localAddress,
      port: accepted.localPort,
      family: host === '::1' ? 'IPv6' : 'IPv4',
    });
    t.deepEqual(addon().peerAddress(fd), {
      address: accepted.remoteAddress,
      port: accepted.remotePort,
      family: host === '::1' ? 'IPv6' : 'IPv4',
    });
  }
});

onLinux('a failed system call is an Error with errno name, errno and syscall', (t) => {
  const err = t.throws(() => addon().getMark(1 << 20)) as NodeJS.ErrnoException;
  t.is(err.code, 'EBADF');
  t.is(err.errno, -9);
  t.is(err.syscall, 'getsockopt');
});

onLinux('originalDestination of a direct connection is untracked or its own address', async (t) => {
  const { accepted } = await pair(t, '127.0.0.1');
  try {
    const dst = addon().originalDestination(fdOf(accepted));
    t.deepEqual(dst, { address: '127.0.0.1', port: accepted.localPort, family: 'IPv4' });
  } catch (err) {
    t.true(['ENOENT', 'ENOPROTOOPT'].includes((err as NodeJS.ErrnoException).code ?? ''), String(err));
  }
});

onLinux('bad arguments throw TypeError before any system call', (t) => {
  t.throws(() => addon().getMark(-1), { instanceOf: TypeError });
  t.throws(() => addon().createMarkedSocket(5 as 4, 1), { instanceOf: TypeError });
  t.throws(() => addon().createMarkedSocket(4, 1, { address: 'not-an-ip' }), { instanceOf: TypeError });
});

privileged('a marked socket keeps its mark through Node: read back from the CONNECTED fd', async (t) => {
  for (const [family, host] of [
    [4, '127.0.0.1'],
    [6, '::1'],
  ] as const) {
    const server = await listen(t, host);
    const fd = addon().createMarkedSocket(family, 0x5a);
    const socket = new Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
    t.teardown(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect({ host, port: portOf(server), autoSelectFamily: false }, resolve);
    });
    t.is(fdOf(socket), fd, 'Node kept our fd');
    t.is(addon().getMark(fdOf(socket)), 0x5a);
  }
});

privileged('createMarkedSocket binds with IP_BIND_ADDRESS_NO_PORT', async (t) => {
  const server = await listen(t, '127.0.0.1');
  const fd = addon().createMarkedSocket(4, 1, { address: '127.0.0.2', noPort: true });
  t.is(addon().localAddress(fd).address, '127.0.0.2');
  t.is(addon().localAddress(fd).port, 0, 'no port reserved before connect');
  const socket = new Socket({ fd, allowHalfOpen: true });
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.connect({ host: '127.0.0.1', port: portOf(server), autoSelectFamily: false }, resolve);
  });
  t.is(socket.localAddress, '127.0.0.2');
  t.not(socket.localPort, 0);
});

privileged('setTransparent makes a listener transparent (IPv4 and dual-stack)', async (t) => {
  for (const host of ['127.0.0.1', '::']) {
    const server = await listen(t, host);
    const fd = fdOf(server);
    t.false(addon().isTransparent(fd));
    addon().setTransparent(fd);
    t.true(addon().isTransparent(fd));
  }
});

onLinux('a marked socket fd is close-on-exec and non-blocking', (t) => {
  if (!native.capabilities.netAdmin) {
    const err = t.throws(() => addon().createMarkedSocket(4, 1)) as NodeJS.ErrnoException;
    t.is(err.code, 'EPERM');
    return;
  }
  const fd = addon().createMarkedSocket(4, 1);
  const flags = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  closeSync(fd);
  const octal = /^flags:\s*([0-7]+)$/m.exec(flags)?.[1] ?? '0';
  const value = Number.parseInt(octal, 8);
  t.truthy(value & 0o2000000, 'O_CLOEXEC');
  t.truthy(value & 0o4000, 'O_NONBLOCK');
});

test('RXREDIRECT_NATIVE=0 turns the addon off; requireNative names the remedy', async (t) => {
  const script = `
    const { native, requireNative } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'platform', 'addon.js'))});
    let error;
    try { requireNative('the test feature'); } catch (e) { error = { code: e.code, message: e.message }; }
    console.log(JSON.stringify({ available: native.available, loadError: native.loadError && native.loadError.message,
      capabilities: native.capabilities, error }));`;
  const { stdout } = await run(process.execPath, ['-e', script], { env: { ...process.env, RXREDIRECT_NATIVE: '0' } });
  const out = JSON.parse(stdout) as {
    available: boolean;
    loadError: string;
    capabilities: { source: string; netAdmin: boolean };
    error: { code: string; message: string };
  };
  t.false(out.available);
  t.regex(out.loadError, /RXREDIRECT_NATIVE=0/);
  t.is(out.error.code, 'ERR_REDIRECT_ADDON_UNAVAILABLE');
  t.regex(out.error.message, /the test feature needs the rxredirect native addon/);
  t.regex(out.error.message, /npm rebuild rxredirect/);
  if (linux) t.is(out.capabilities.source, 'procfs');
  t.is(out.capabilities.netAdmin, native.capabilities.netAdmin);
});

test('fdOf refuses a socket without a descriptor', (t) => {
  const err = t.throws(() => fdOf(new Socket())) as RedirectError;
  t.true(err instanceof RedirectError);
  t.is(err.code, 'ERR_REDIRECT_NATIVE');
});
