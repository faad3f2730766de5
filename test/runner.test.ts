import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { createRedirectServer } from '../lib/index';
import { optionalLinux } from '../lib/platform/addon';
import { InProcessRun } from '../lib/runner/in-process';
import { createRunnerLog } from '../lib/runner/log';
import { serverOptionsFrom } from '../lib/workers/config-module';
import { clientLoop, listenTcp } from './helpers/net';
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
    const runner = startRunner(t, [config, '--listen', '127.0.0.1:0', '--workers', '1', '--close-timeout', '60000']);
    const port = portOf(await runner.line((l) => l.event === 'listening'));

    const first = await open(port);
    t.is(first.tag, 'A');

    // A client loop opening connections throughout the reload: none may be refused or reset.
    const loop = clientLoop(async () => {
      const c = await open(port);
      t.is(await roundTrip(c.socket, 'ping'), 'ping');
      await finish(c.socket);
    });

    writeFileSync(config, `export default { resolve: { host: '127.0.0.1', port: ${b.port} } };\n`);
    runner.child.kill('SIGHUP');
    await runner.line((l) => l.event === 'reload');
    const second = await open(port);
    t.is(second.tag, 'B', 'new connections use the new config');
    // Wait until the loop has run on the new generation too.
    await loop.more(3);
    t.deepEqual(await loop.stop(), [], 'no connection refused or reset during the reload');

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
    t.is(closes.length, loop.count + 2, 'one line per connection');
    t.true(closes.every((l) => l.reason === 'client-end' && l.level === 30 && typeof l.durationMs === 'number'));
    const byId = (gen: number) => closes.filter((l) => l.generation === gen);
    t.true(byId(1).some((l) => l.target === `127.0.0.1:${a.port}` && (l.bytesUp as number) === 'still here'.length));
    t.true(byId(2).some((l) => l.target === `127.0.0.1:${b.port}`));
    t.truthy(runner.lines.find((l) => l.event === 'stopped'));
  },
);

sharedListener(
  '--workers 2: connections reach both workers, SIGHUP reload with none refused, SIGTERM drain, log lines and /metrics agree',
  async (t) => {
    const a = await taggedUpstream(t, 'A');
    const b = await taggedUpstream(t, 'B');
    const dir = tempDir(t);
    const config = join(dir, 'proxy.config.cjs');
    writeFileSync(config, `module.exports = { resolve: { host: '127.0.0.1', port: ${a.port} } };\n`);
    const runner = startRunner(t, [
      config,
      '--listen',
      '127.0.0.1:0',
      '--workers',
      '2',
      '--metrics',
      '127.0.0.1:0',
      '--close-timeout',
      '60000',
    ]);
    const listening = await runner.line((l) => l.event === 'listening');
    t.is(listening.workers, 2);
    const port = portOf(listening);
    const metricsPort = (listening.metrics as { port: number }).port;
    let opened = 0;
    const closes = (): LogLine[] => runner.lines.filter((l) => l.event === 'close');
    const oneConnection = async (): Promise<void> => {
      const c = await open(port);
      opened++;
      t.is(await roundTrip(c.socket, 'ping'), 'ping');
      await finish(c.socket);
    };

    // Spread: the kernel's SO_REUSEPORT hash picks the worker; connect until both have served.
    const seen = (): Set<unknown> => new Set(closes().map((l) => l.worker));
    while (seen().size < 2 && opened < 500) {
      await oneConnection();
      await runner.line(() => closes().length === opened);
    }
    const spread = [0, 1].map((w) => closes().filter((l) => l.worker === w).length);
    t.log(`spread over ${opened} connections: worker 0 ${spread[0]}, worker 1 ${spread[1]}`);
    t.deepEqual([...seen()].sort(), [0, 1], 'both workers served connections');

    // Held over the reload: its worker (generation 1) drains while it is open.
    const held = await open(port);
    opened++;
    t.is(held.tag, 'A');

    // SIGHUP under a client loop: nothing refused or reset.
    const loop = clientLoop(oneConnection);
    writeFileSync(config, `module.exports = { resolve: { host: '127.0.0.1', port: ${b.port} } };\n`);
    runner.child.kill('SIGHUP');
    const reload = await runner.line((l) => l.event === 'reload');
    t.is(reload.generation, 2);
    await loop.more(5);
    t.deepEqual(await loop.stop(), [], 'no connection refused or reset during the reload');
    t.log(`${loop.count} connections in the client loop around the reload`);
    const fresh = await open(port);
    opened++;
    t.is(fresh.tag, 'B', 'the new generation serves the new config');
    t.is(await roundTrip(held.socket, 'still here'), 'still here', 'the old generation drains, not resets');

    // /metrics: counters from the workers' stats(), histograms from the forwarded summaries.
    await runner.line(() => closes().length === opened - 2);
    const text = await scrape(metricsPort);
    const sum = (name: string): number =>
      [...text.matchAll(new RegExp(`^${name}\\{[^}]*worker="\\d+"[^}]*\\} (\\d+)$`, 'gm'))].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    const logged = closes().length;
    t.is(sum('rxredirect_downstream_cx_total'), logged + 2, 'accepted = logged + the 2 open');
    t.is(sum('rxredirect_downstream_cx_active'), 2);
    t.is(sum('rxredirect_downstream_cx_closed_total'), logged);
    t.is(sum('rxredirect_downstream_cx_length_ms_count'), logged);
    for (const w of [0, 1]) {
      const re = new RegExp(
        `^rxredirect_downstream_cx_closed_total\\{reason="client-end",worker="${w}"\\} (\\d+)$`,
        'm',
      );
      const count = closes().filter((l) => l.worker === w).length;
      t.is(Number(re.exec(text)?.[1] ?? 0), count, `worker ${w}: metrics agree with the log lines`);
    }
    t.regex(text, /^process_cpu_user_seconds_total\{worker="primary"\} /m, 'the default process metrics');

    // SIGTERM: both open connections finish, then the process exits 0.
    runner.child.kill('SIGTERM');
    await runner.line((l) => l.event === 'drain');
    t.is(await roundTrip(fresh.socket, 'draining'), 'draining');
    await finish(held.socket);
    await finish(fresh.socket);
    const [code] = await runner.exited;
    t.is(code, 0, runner.stderr());
    t.is(closes().length, opened, 'one line per connection');
    t.true(closes().every((l) => (l.worker === 0 || l.worker === 1) && l.reason === 'client-end'));
    t.true(closes().some((l) => l.generation === 1 && l.bytesUp === 'still here'.length));
    t.true(closes().some((l) => l.generation === 2 && l.target === `127.0.0.1:${b.port}`));
    t.truthy(runner.lines.find((l) => l.event === 'stopped'));
  },
);

sharedListener('--workers 2: a second SIGTERM ends the drain at once, each reset connection logged', async (t) => {
  const a = await taggedUpstream(t, 'A');
  const dir = tempDir(t);
  const config = join(dir, 'proxy.config.cjs');
  writeFileSync(config, `module.exports = { resolve: { host: '127.0.0.1', port: ${a.port} } };\n`);
  const runner = startRunner(t, [config, '--listen', '127.0.0.1:0', '--workers', '2', '--close-timeout', '600000']);
  const port = portOf(await runner.line((l) => l.event === 'listening'));
  const held = await Promise.all([open(port), open(port), open(port)]);
  runner.child.kill('SIGTERM');
  await runner.line((l) => l.event === 'drain');
  t.is(await roundTrip(held[0]?.socket as Socket, 'ok'), 'ok', 'still draining');
  runner.child.kill('SIGTERM');
  const [code] = await runner.exited;
  t.is(code, 0, runner.stderr());
  // The workers' stderr is the runner's: a worker that failed on the second drain would show here.
  t.is(runner.stderr(), '', 'no worker failed');
  t.false(
    runner.lines.some((l) => l.event === 'worker-exit' && l.code !== 0),
    JSON.stringify(runner.lines.filter((l) => l.event === 'worker-exit')),
  );
  await Promise.all(held.map((h) => (h.socket.closed ? undefined : once(h.socket, 'close'))));
  const closes = runner.closes();
  t.is(closes.length, 3, 'one line per connection');
  t.true(
    closes.every((l) => l.reason === 'server-shutdown' && l.level === 40),
    JSON.stringify(closes),
  );
});

test('CommonJS config: a bad reload keeps the running generation; metrics scraped during the run', async (t) => {
  const a = await taggedUpstream(t, 'A');
  const dir = tempDir(t);
  const config = join(dir, 'proxy.config.cjs');
  writeFileSync(config, `module.exports = { resolve: { host: '127.0.0.1', port: ${a.port} } };\n`);
  const runner = startRunner(t, [config, '--listen', '127.0.0.1:0', '--workers', '1', '--metrics', '127.0.0.1:0']);
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

test('without the worker host: one worker in this process, reload to a fresh config, drain', async (t) => {
  const a = await taggedUpstream(t, 'A');
  const b = await taggedUpstream(t, 'B');
  const dir = tempDir(t);
  const config = join(dir, 'proxy.config.cjs');
  writeFileSync(config, `module.exports = { resolve: { host: '127.0.0.1', port: ${a.port} } };\n`);
  const logFile = join(dir, 'log.jsonl');
  const fd = openSync(logFile, 'w');
  // The path `rxredirect run` takes where the worker host cannot run (no addon, not Linux).
  const run = new InProcessRun({ config, listen: { host: '127.0.0.1', port: 0 } }, createRunnerLog({ fd }));
  // Stopped whatever an assertion did (the file stays open for its last writes).
  t.teardown(() => run.drain());
  await run.start();
  const port = run.address?.port ?? 0;
  const first = await open(port);
  t.is(first.tag, 'A');
  writeFileSync(config, `module.exports = { resolve: { host: '127.0.0.1', port: ${b.port} } };\n`);
  await run.reload();
  const second = await open(port);
  t.is(second.tag, 'B', 'the CommonJS config was loaded afresh');
  const drained = run.drain();
  t.is(await roundTrip(first.socket, 'x'), 'x');
  await finish(first.socket);
  await finish(second.socket);
  await drained;
  const read = (): LogLine[] =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogLine);
  // The log writes asynchronously (sonic-boom): wait until the last line is in the file.
  while (!read().some((l) => l.event === 'stopped')) await new Promise((r) => setImmediate(r));
  const lines = read();
  closeSync(fd);
  t.deepEqual(
    lines
      .filter((l) => l.event === 'close')
      .map((l) => [l.worker, l.generation])
      .sort(),
    [
      [0, 1],
      [0, 2],
    ],
  );
  t.deepEqual(
    lines.filter((l) => l.event !== 'close').map((l) => l.event),
    ['listening', 'reload', 'drain', 'stopped'],
  );
});

test('bad usage and a config that does not load are reported with their codes', async (t) => {
  const dir = tempDir(t);
  const missing = startRunner(t, [join(dir, 'nope.js'), '--listen', '127.0.0.1:0']);
  const [code] = await missing.exited;
  t.is(code, 1);
  t.regex(missing.stderr(), /rxredirect run: .*cannot import config module .*nope\.js/);
  const noListen = startRunner(t, [join(dir, 'nope.js')]);
  t.is((await noListen.exited)[0], 2);
  t.regex(noListen.stderr(), /--listen host:port is required/);
  for (const [flag, value, message] of [
    ['--log-sample', '', /--log-sample must be a number from 0 to 1/],
    ['--close-timeout', String(2 ** 31), /--close-timeout must be an integer from 0 to 2147483647/],
  ] as const) {
    const bad = startRunner(t, [join(dir, 'nope.js'), '--listen', '127.0.0.1:0', `${flag}=${value}`]);
    t.is((await bad.exited)[0], 2, flag);
    t.regex(bad.stderr(), message);
  }
});

test('a config may export a function of { worker, generation }', async (t) => {
  const dir = tempDir(t);
  const config = join(dir, 'factory.config.mjs');
  writeFileSync(
    config,
    "export default ({ worker, generation }) => ({ resolve: { host: '127.0.0.1', port: 1000 + generation }, id: 'w' + worker });\n",
  );
  const options = await serverOptionsFrom(config, { worker: 0, generation: 2 }, 5);
  t.deepEqual(options.resolve, { host: '127.0.0.1', port: 1002 });
  t.is(options.id, 'w0');
});

test('the shipped example config loads as a runner config', async (t) => {
  const options = await serverOptionsFrom(join(ROOT, 'examples', 'proxy.config.js'), { worker: 0, generation: 1 });
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
