import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { createRedirectServer } from '../lib/index';
import { optionalLinux } from '../lib/platform/addon';
import { loadServerOptions } from '../lib/runner/config';
import { listenTcp } from './helpers/net';
import { type LogLine, startRunner } from './helpers/runner-process';
import { gatedTest } from './helpers/netns';

/** `rxredirect run` (docs/runner.md) as a user runs it: a child process, a config file, signals. */

const ROOT = join(__dirname, '..', '..');

/** An upstream that answers each connection with its tag, then echoes. */
async function taggedUpstream(t: ExecutionContext, tag: string) {
  return listenTcp(t, (s) => {
    s.write(tag);
    s.pipe(s);
  });
}

/** Connects, reads the tag the upstream sent first. */
async function open(port: number): Promise<{ socket: Socket; tag: string }> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  const [data] = (await once(socket, 'data')) as [Buffer];
  return { socket, tag: data.toString() };
}

/** Sends `text`, resolves with what comes back (same length). */
async function roundTrip(socket: Socket, text: string): Promise<string> {
  socket.write(text);
  let got = '';
  while (got.length < text.length) got += ((await once(socket, 'data')) as [Buffer])[0].toString();
  return got;
}

async function finish(socket: Socket): Promise<void> {
  socket.end();
  socket.resume();
  await once(socket, 'close');
}

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rxredirect-runner-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const portOf = (l: LogLine): number => (l.address as { port: number }).port;

// Without the addon there is no dupFd: a reload unbinds the address for a moment (docs/runner.md).
const sharedListener = gatedTest(
  test,
  optionalLinux() === undefined ? 'a reload without refusals needs the addon (dupFd), Linux' : undefined,
);

sharedListener(
  'ESM config: serves, reloads on SIGHUP with no connection refused, drains on SIGTERM, one JSON line per connection',
  async (t) => {
    const a = await taggedUpstream(t, 'A');
    const b = await taggedUpstream(t, 'B');
    const dir = tempDir(t);
    const config = join(dir, 'proxy.config.mjs');
    writeFileSync(config, `export default { resolve: { host: '127.0.0.1', port: ${a.port} } };\n`);
    const runner = startRunner(t, [config, '--listen', '127.0.0.1:0', '--close-timeout', '60000']);
    const port = portOf(await runner.line((l) => l.event === 'listening'));

    const first = await open(port);
    t.is(first.tag, 'A');

    // A client loop opening connections throughout the reload: none may be refused or reset.
    let stop = false;
    let loopCount = 0;
    const failures: string[] = [];
    const loop = (async () => {
      while (!stop) {
        try {
          const c = await open(port);
          t.is(await roundTrip(c.socket, 'ping'), 'ping');
          await finish(c.socket);
          loopCount++;
        } catch (err) {
          failures.push(String(err));
        }
      }
    })();

    writeFileSync(config, `export default { resolve: { host: '127.0.0.1', port: ${b.port} } };\n`);
    runner.child.kill('SIGHUP');
    await runner.line((l) => l.event === 'reload');
    const second = await open(port);
    t.is(second.tag, 'B', 'new connections use the new config');
    // Wait until the loop has run on the new generation too.
    const before = loopCount;
    while (loopCount < before + 3) await new Promise((r) => setImmediate(r));
    stop = true;
    await loop;
    t.deepEqual(failures, [], 'no connection refused or reset during the reload');

    // The connection from before the reload still works on the old generation.
    t.is(await roundTrip(first.socket, 'still here'), 'still here');

    // Drain: the listener goes, open connections finish, then the process exits 0.
    runner.child.kill('SIGTERM');
    await runner.line((l) => l.event === 'drain');
    t.is(await roundTrip(second.socket, 'draining'), 'draining');
    await finish(first.socket);
    await finish(second.socket);
    const [code] = await runner.exited;
    t.is(code, 0, runner.stderr());

    const closes = runner.lines.filter((l) => l.event === 'close');
    t.is(closes.length, loopCount + 2, 'one line per connection');
    t.true(closes.every((l) => l.reason === 'client-end' && l.level === 30 && typeof l.durationMs === 'number'));
    const byId = (gen: number) => closes.filter((l) => l.generation === gen);
    t.true(byId(1).some((l) => l.target === `127.0.0.1:${a.port}` && (l.bytesUp as number) === 'still here'.length));
    t.true(byId(2).some((l) => l.target === `127.0.0.1:${b.port}`));
    t.truthy(runner.lines.find((l) => l.event === 'stopped'));
  },
);

test('CommonJS config: a bad reload keeps the running generation; metrics scraped during the run', async (t) => {
  const a = await taggedUpstream(t, 'A');
  const dir = tempDir(t);
  const config = join(dir, 'proxy.config.cjs');
  writeFileSync(config, `module.exports = { resolve: { host: '127.0.0.1', port: ${a.port} } };\n`);
  const runner = startRunner(t, [config, '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0']);
  const listening = await runner.line((l) => l.event === 'listening');
  const port = portOf(listening);
  const metricsPort = (listening.metrics as { port: number }).port;

  for (let i = 0; i < 3; i++) {
    const c = await open(port);
    await finish(c.socket);
  }
  await runner.line(() => runner.lines.filter((l) => l.event === 'close').length === 3);
  const held = await open(port);
  const text = await scrape(metricsPort);
  t.regex(text, /^rxredirect_downstream_cx_total\{worker="0"\} 4$/m);
  t.regex(text, /^rxredirect_downstream_cx_active\{worker="0"\} 1$/m);
  t.regex(text, /^rxredirect_downstream_cx_closed_total\{reason="client-end",worker="0"\} 3$/m);
  t.regex(text, /^rxredirect_downstream_cx_length_ms_count\{worker="0"\} 3$/m);

  writeFileSync(config, 'module.exports = { resolve: ;\n');
  runner.child.kill('SIGHUP');
  const failed = await runner.line((l) => l.event === 'reload-failed');
  t.is(failed.code, 'ERR_REDIRECT_CONFIG_MODULE');
  writeFileSync(config, 'module.exports = { nothing: 1 };\n');
  runner.child.kill('SIGHUP');
  await runner.line(() => runner.lines.filter((l) => l.event === 'reload-failed').length === 2);
  const after = await open(port);
  t.is(after.tag, 'A', 'the running generation still serves');
  await finish(after.socket);
  await finish(held.socket);

  runner.child.kill('SIGTERM');
  const [code] = await runner.exited;
  t.is(code, 0, runner.stderr());
  t.is(runner.lines.filter((l) => l.event === 'close').length, 5);
});

test('bad usage and a config that does not load are reported with their codes', async (t) => {
  const dir = tempDir(t);
  const missing = startRunner(t, [join(dir, 'nope.js'), '--listen', '127.0.0.1:0']);
  const [code] = await missing.exited;
  t.is(code, 1);
  t.regex(missing.stderr(), /rxredirect run: cannot load the config .*nope\.js/);
  const noListen = startRunner(t, [join(dir, 'nope.js')]);
  t.is((await noListen.exited)[0], 2);
  t.regex(noListen.stderr(), /--listen host:port is required/);
});

test('a config may export a function of { worker, generation }', async (t) => {
  const dir = tempDir(t);
  const config = join(dir, 'factory.config.mjs');
  writeFileSync(
    config,
    "export default ({ worker, generation }) => ({ resolve: { host: '127.0.0.1', port: 1000 + generation }, id: 'w' + worker });\n",
  );
  const options = await loadServerOptions(config, 5, 2);
  t.deepEqual(options.resolve, { host: '127.0.0.1', port: 1002 });
  t.is(options.id, 'w0');
});

test('the shipped example config loads as a runner config', async (t) => {
  const options = await loadServerOptions(join(ROOT, 'examples', 'proxy.config.js'), 1);
  t.is(options.resolve, 'auto');
  t.is(options.middleware?.length, 1);
  t.notThrows(() => createRedirectServer(options));
});

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}
