import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'ava';
import { createRedirectCluster, loadConfigModule } from '../lib/workers/index';
import { serverOptionsFrom } from '../lib/workers/config-module';

const dir = mkdtempSync(join(tmpdir(), 'rxr-workers-config-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const info = { worker: 0, generation: 1 };

test('a config module may be CommonJS or ESM, the options or a factory, as its export or its default', async (t) => {
  const cases: [string, string][] = [
    ['cjs-object.cjs', 'module.exports = { resolve: { host: "127.0.0.1", port: 1 } };'],
    ['cjs-factory.cjs', 'module.exports = ({ worker }) => ({ resolve: { host: "127.0.0.1", port: 1 + worker } });'],
    [
      'cjs-default.cjs',
      'Object.defineProperty(exports, "__esModule", { value: true }); exports.default = { resolve: { host: "127.0.0.1", port: 1 } };',
    ],
    ['esm-default.mjs', 'export default { resolve: { host: "127.0.0.1", port: 1 } };'],
    ['esm-async.mjs', 'export default async () => ({ resolve: { host: "127.0.0.1", port: 1 } });'],
  ];
  for (const [name, text] of cases) {
    const options = await serverOptionsFrom(file(name, text), info);
    t.deepEqual(options.resolve, { host: '127.0.0.1', port: 1 }, name);
  }
  // A file: URL works too.
  const url = pathToFileURL(join(dir, 'esm-default.mjs')).href;
  t.is(typeof (await loadConfigModule(url)), 'object');
});

test('a config module that cannot be imported or exports neither is ERR_REDIRECT_CONFIG_MODULE', async (t) => {
  await t.throwsAsync(loadConfigModule(join(dir, 'missing.cjs')), {
    code: 'ERR_REDIRECT_CONFIG_MODULE',
    message: /cannot import config module/,
  });
  await t.throwsAsync(loadConfigModule(file('syntax.cjs', 'module.exports = {')), {
    code: 'ERR_REDIRECT_CONFIG_MODULE',
  });
  await t.throwsAsync(loadConfigModule(file('number.cjs', 'module.exports = 42;')), {
    code: 'ERR_REDIRECT_CONFIG_MODULE',
    message: /must export the server options/,
  });
  await t.throwsAsync(serverOptionsFrom(file('bad-factory.cjs', 'module.exports = () => 7;'), info), {
    code: 'ERR_REDIRECT_CONFIG_MODULE',
    message: /must return the server options/,
  });
  await t.throwsAsync(loadConfigModule(''), { code: 'ERR_REDIRECT_CONFIG_MODULE' });
});

test('cluster options are checked in the primary', (t) => {
  const base = { module: '/x.js', listen: { port: 0 } };
  const bad: [unknown, RegExp][] = [
    [{ ...base, workers: 0 }, /workers: must be an integer 1–1024/],
    [{ ...base, workers: 1.5 }, /workers/],
    [{ ...base, closeTimeoutMs: -1 }, /closeTimeoutMs/],
    [{ ...base, module: '' }, /module: must be the path/],
    [{ ...base, listen: null }, /listen: must be/],
    [{ ...base, setup: 3 }, /setup/],
    [{ ...base, execArgv: '--x' }, /execArgv/],
    [{ ...base, spare: 'yes' }, /spare: must be a boolean/],
    [{ ...base, worker: 2 }, /worker: unknown option/],
  ];
  for (const [options, message] of bad) {
    t.throws(() => createRedirectCluster(options as never), { code: 'ERR_REDIRECT_INVALID_OPTION', message });
  }
});

test('start() on a bad listen address is a coded error and leaves nothing running', async (t) => {
  const cluster = createRedirectCluster({ module: '/x.js', listen: { host: 'localhost' }, workers: 1 });
  await t.throwsAsync(cluster.start(), { code: 'ERR_REDIRECT_INVALID_OPTION', message: /must be an IP address/ });
  // Failed for good: not half-started.
  await t.throwsAsync(cluster.start(), { code: 'ERR_REDIRECT_SERVER_STATE' });
  await cluster.close();
  const other = createRedirectCluster({ module: '/x.js', listen: { port: 70000 }, workers: 1 });
  await t.throwsAsync(other.start(), { code: 'ERR_REDIRECT_INVALID_OPTION', message: /listen.port/ });
});

test('start() with a config module that fails: ERR_REDIRECT_WORKER_FAILED with the reason, sockets closed', async (t) => {
  const broken = file('throws.cjs', 'module.exports = () => { throw new Error("no upstream configured"); };');
  const cluster = createRedirectCluster({ module: broken, listen: { port: 0 }, workers: 2 });
  const err = await t.throwsAsync(cluster.start(), { code: 'ERR_REDIRECT_WORKER_FAILED' });
  t.regex(err?.message ?? '', /no upstream configured/);
  t.deepEqual(cluster.list(), []);
  await t.throwsAsync(cluster.reload(), { code: 'ERR_REDIRECT_SERVER_STATE' });
});
