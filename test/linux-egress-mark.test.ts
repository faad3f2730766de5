import { execFile } from 'node:child_process';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { chainFromMark, cooperatingMask } from '../lib/common/marks';
import { markEgress } from '../lib/egress/mark';
import { fdOf, native, requireLinux } from '../lib/platform/addon';
import { createRecord } from '../lib/common/record';
import type { RedirectRecord, ResolvedTarget } from '../lib/common/types';
import { gatedTest } from './helpers/netns';
import { throwsCode } from './helpers/expect';

const run = promisify(execFile);
const linux = process.platform === 'linux';
const privileged = gatedTest(
  test,
  !linux ? 'Linux only' : native.capabilities.netAdmin ? undefined : 'needs CAP_NET_ADMIN (run as root)',
);
const asRoot = gatedTest(
  test,
  linux && process.getuid?.() === 0 ? undefined : 'needs root (to drop CAP_NET_ADMIN and CAP_NET_RAW)',
);

const COOPERATING = { me: 0x1, a: 0x2, b: 0x4 };

function recordWithMark(mark: number): RedirectRecord {
  return createRecord({
    mechanism: 'netfilter',
    source: { address: '192.0.2.1', port: 40000 },
    destination: { address: '198.51.100.10', port: 80 },
    mark,
  });
}

async function listen(t: ExecutionContext, host: string): Promise<ResolvedTarget> {
  const server: Server = createServer((s) => s.on('error', () => {}).end('hi'));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { host, port: (server.address() as AddressInfo).port, family: host.includes(':') ? 'IPv6' : 'IPv4' };
}

function connect(socket: Socket, target: ResolvedTarget): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.connect({ host: target.host, port: target.port, autoSelectFamily: false }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

test('markEgress validates its options synchronously', (t) => {
  for (const bad of [{ mark: 0 }, { mark: -1 }, { mark: 0x1_0000_0000 }, { mark: 1.5 }, { mark: '1' }]) {
    throwsCode(t, () => markEgress(bad as { mark: number }), 'ERR_REDIRECT_INVALID_OPTION', {
      message: /egress\.mark/,
    });
  }
  throwsCode(t, () => markEgress({ mark: 1, cooperating: { a: 0x3 } }), 'ERR_REDIRECT_INVALID_OPTION', {
    message: /single bit/,
  });
  throwsCode(t, () => markEgress({ mark: 1, cooperating: { a: 0x2, b: 0x2 } }), 'ERR_REDIRECT_INVALID_OPTION', {
    message: /same bit as "a"/,
  });
  throwsCode(t, () => markEgress({ mark: 1, cooperating: { 'bad id!': 0x2 } }), 'ERR_REDIRECT_INVALID_OPTION');
});

test('chainFromMark lists cooperating proxies by ascending bit', (t) => {
  t.deepEqual(chainFromMark(0x6 | 0x100, COOPERATING), [
    { id: 'a', via: 'mark' },
    { id: 'b', via: 'mark' },
  ]);
  t.deepEqual(chainFromMark(0, COOPERATING), []);
  t.deepEqual(chainFromMark(undefined, COOPERATING), []);
  t.deepEqual(chainFromMark(0xff, undefined), []);
  t.is(cooperatingMask(COOPERATING), 0x7);
  t.is(cooperatingMask({ top: 0x8000_0000 }), 0x8000_0000);
});

test('createSocket refuses a host name', (t) => {
  const plugin = markEgress({ mark: 1 });
  throwsCode(
    t,
    () => plugin.createSocket?.({ host: 'localhost', port: 80, family: 'IPv4' }, recordWithMark(0)),
    'ERR_REDIRECT_INVALID_OPTION',
  );
});

privileged('check() passes with CAP_NET_ADMIN', async (t) => {
  await t.notThrowsAsync(async () => markEgress({ mark: 0x10 }).check?.());
});

asRoot('check() without CAP_NET_ADMIN/CAP_NET_RAW throws ERR_REDIRECT_PERMISSION naming both remedies', async (t) => {
  const script = `
    const { markEgress } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'egress', 'mark.js'))});
    try { markEgress({ mark: 1 }).check(); console.log(JSON.stringify({ ok: true })); }
    catch (e) { console.log(JSON.stringify({ code: e.code, syscallCode: e.syscallCode, message: e.message })); }`;
  const { stdout } = await run('setpriv', ['--bounding-set', '-net_admin,-net_raw', process.execPath, '-e', script]);
  const out = JSON.parse(stdout) as { code: string; syscallCode: string; message: string };
  t.is(out.code, 'ERR_REDIRECT_PERMISSION');
  t.is(out.syscallCode, 'EPERM');
  t.regex(out.message, /CAP_NET_ADMIN/);
  t.regex(out.message, /--uid-owner/);
});

privileged('the CONNECTED socket carries own mark | inherited cooperating bits (IPv4, IPv6)', async (t) => {
  const plugin = markEgress({ mark: COOPERATING.me, cooperating: COOPERATING });
  const addon = requireLinux('test');
  for (const host of ['127.0.0.1', '::1']) {
    const target = await listen(t, host);
    // 0x4 is cooperating proxy b: kept; 0x100 (e.g. a TPROXY mark) is not ours to pass on.
    const socket = plugin.createSocket?.(target, recordWithMark(0x4 | 0x100));
    if (!socket) return t.fail('no socket');
    t.teardown(() => socket.destroy());
    t.false(socket.connecting);
    const fd = fdOf(socket);
    await connect(socket, target);
    t.is(fdOf(socket), fd, 'connected on the marked fd, not a new one');
    t.is(addon.getMark(fdOf(socket)), 0x5);
    t.is(socket.remotePort, target.port);
  }
});

privileged('the socket survives a loop turn before connect (reading does not start early)', async (t) => {
  const plugin = markEgress({ mark: 0x20 });
  const target = await listen(t, '127.0.0.1');
  const socket = plugin.createSocket?.(target, recordWithMark(0));
  if (!socket) return t.fail('no socket');
  t.teardown(() => socket.destroy());
  const errors: Error[] = [];
  socket.on('error', (e) => errors.push(e));
  // The subject is one whole turn of the loop, poll phase included: the first hop
  // lands after this turn's poll phase, the second after the next one's.
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(errors, []);
  t.false(socket.destroyed);
  const fd = fdOf(socket);
  await connect(socket, target);
  t.is(fdOf(socket), fd);
  t.is(requireLinux('test').getMark(fd), 0x20);
  const data = await new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    socket.on('end', () => resolve(text));
  });
  t.is(data, 'hi');
});
