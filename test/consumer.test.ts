import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { type ConsumerKind, type ConsumerProject, type ProxyReport, writeConsumer } from './helpers/consumer-projects';
import { gatedTest } from './helpers/netns';
import { onPath } from './helpers/wine';

// The package as a user gets it: `npm pack` with the prebuilds (.ci/run runs
// `npm run build:prebuilds` first), installed from the tarball into four fresh
// projects with no compiler on PATH, type-checked, and run end to end on
// loopback. Then one project rebuilds the addon from source on purpose.

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const PREBUILD = join('prebuilds', 'linux-x64', 'rxredirect.glibc.node');
const TOOLCHAIN = ['g++', 'c++', 'gcc', 'cc', 'clang', 'make', 'python3', 'python'];
const npmCli = onPath('npm') === undefined ? undefined : realpathSync(onPath('npm')!);

const reason =
  process.platform !== 'linux' || process.arch !== 'x64'
    ? 'linux-x64 only (the prebuild this machine can run)'
    : !existsSync(join(ROOT, PREBUILD))
      ? `no ${PREBUILD}: run \`npm run build:prebuilds\``
      : npmCli === undefined
        ? 'npm not found'
        : undefined;
// One project at a time: the installs, tsc and the compile are CPU-heavy, and the other test
// file running beside this one has timing-sensitive tests.
const consumerTest: (title: string, impl: (t: ExecutionContext) => Promise<void>) => void =
  reason === undefined ? (title, impl) => test.serial(title, impl) : gatedTest(test, reason);

const scratch = mkdtempSync(join(tmpdir(), 'rxredirect-consumers-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

/** The environment of a user's shell: no npm lifecycle variables from our own `npm test`, no node-gyp hints. */
function userEnv(path: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm_|INIT_CWD$|NODE_OPTIONS$|NODE_PATH$|PREBUILDS_ONLY$|RXREDIRECT_)/i.test(key)) env[key] = value;
  }
  env.PATH = path;
  return env;
}

/** A PATH holding only `node` and `sh` (npm runs scripts with it): no compiler, make or python to find. */
function nodeOnlyPath(): string {
  const bin = join(scratch, 'bin');
  if (!existsSync(bin)) {
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
  }
  return bin;
}

let tarball: Promise<string> | undefined;
/** `npm pack` of the built package (dist/ and prebuilds/ as they are; no prepare). */
function packOnce(): Promise<string> {
  tarball ??= run(process.execPath, [npmCli!, 'pack', '--ignore-scripts', '--json', '--pack-destination', scratch], {
    cwd: ROOT,
    env: userEnv(process.env.PATH ?? ''),
    maxBuffer: 16 << 20,
  }).then(({ stdout }) => join(scratch, (JSON.parse(stdout) as { filename: string }[])[0]!.filename));
  return tarball;
}

async function npm(t: ExecutionContext, cwd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const started = performance.now();
  const { stdout } = await run(process.execPath, [npmCli!, ...args], { cwd, env, timeout: 240_000 }).catch(
    (err: { message: string; stdout?: string; stderr?: string; signal?: string }) => {
      throw new Error(
        `npm ${args.join(' ')} in ${cwd}: ${err.message} ${err.signal ?? ''}\n${err.stdout ?? ''}${err.stderr ?? ''}`,
      );
    },
  );
  t.log(`npm ${args[0]}: ${stdout.trim().split('\n').pop()} (${Math.round(performance.now() - started)} ms)`);
  return stdout;
}

/** A fresh project of `kind` with the tarball installed, no compiler reachable. */
async function installed(t: ExecutionContext, kind: ConsumerKind): Promise<ConsumerProject> {
  const project = writeConsumer(scratch, kind, join(ROOT, 'node_modules', '@types'));
  const path = nodeOnlyPath();
  for (const tool of TOOLCHAIN) t.is(onPathOf(path, tool), undefined, `${tool} must not be on the install PATH`);
  // Dependencies (rxjs, node-gyp-build, …) come from npm's cache when it has them.
  await npm(
    t,
    project.dir,
    ['install', await packOnce(), '--prefer-offline', '--no-audit', '--no-fund'],
    userEnv(path),
  );
  const pkg = join(project.dir, 'node_modules', 'rxredirect');
  t.true(existsSync(join(pkg, PREBUILD)), 'the prebuild was unpacked');
  t.false(existsSync(join(pkg, 'build')), 'nothing was compiled: no build/ in the installed package');
  return project;
}

function onPathOf(path: string, name: string): string | undefined {
  return path
    .split(delimiter)
    .map((dir) => join(dir, name))
    .find((file) => existsSync(file));
}

async function typecheck(t: ExecutionContext, project: ConsumerProject): Promise<void> {
  if (project.tsconfig === undefined) return;
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const started = performance.now();
  await run(process.execPath, [tsc, '-p', project.tsconfig], { cwd: project.dir, timeout: 180_000 }).catch(
    (err: { stdout?: string; message: string }) => {
      throw new Error(`tsc -p ${project.tsconfig}: ${err.stdout ?? err.message}`);
    },
  );
  t.log(`tsc: ${Math.round(performance.now() - started)} ms`);
}

/** Runs the project's proxy with the user's PATH (node only) and returns its report. */
async function runProxy(t: ExecutionContext, project: ConsumerProject): Promise<ProxyReport> {
  const { stdout } = await run(process.execPath, [project.main], {
    cwd: project.dir,
    env: userEnv(nodeOnlyPath()),
    timeout: 60_000,
  });
  const report = JSON.parse(stdout.trim().split('\n').pop()!) as ProxyReport;
  t.log(JSON.stringify(report));
  // 'ping ping' went up through replace (both occurrences) and came back from the echo upstream.
  t.is(report.reply, 'PONG PONG');
  t.is(report.reason, 'client-end');
  t.is(report.tapped, 'PONG PONG'.length * 2, 'tap saw both directions');
  t.true(report.addon, 'the addon loaded');
  return report;
}

const installedAddon = (project: ConsumerProject, file: string) =>
  join(realpathSync(join(project.dir, 'node_modules', 'rxredirect')), file);

for (const kind of ['esm-ts', 'cjs-ts', 'esm-js'] as const) {
  consumerTest(`${kind}: installs from the tarball without a compiler, type-checks and proxies`, async (t) => {
    const project = await installed(t, kind);
    await typecheck(t, project);
    const report = await runProxy(t, project);
    t.deepEqual(report.loaded, [installedAddon(project, PREBUILD)]);
  });
}

let cjsJs: ConsumerProject | undefined;
consumerTest('cjs-js: installs from the tarball without a compiler and proxies', async (t) => {
  const project = await installed(t, 'cjs-js');
  t.deepEqual((await runProxy(t, project)).loaded, [installedAddon(project, PREBUILD)]);
  cjsJs = project;
});

// Serial, so it runs after the test above, in the project that test installed.
consumerTest(
  'npm rebuild --build-from-source compiles the addon where a prebuild matches, and the build wins',
  async (t) => {
    if (cjsJs === undefined) {
      t.fail('no cjs-js project: its install failed (see the test above)');
      return;
    }
    // With a toolchain and Node's headers (no downloads), the source build still works.
    const env = userEnv(process.env.PATH ?? '');
    if (existsSync('/usr/include/node/node_api.h')) env.npm_config_nodedir = '/usr';
    await npm(t, cjsJs.dir, ['rebuild', 'rxredirect', '--build-from-source'], env);
    const built = join('build', 'Release', 'rxredirect.node');
    t.true(existsSync(join(cjsJs.dir, 'node_modules', 'rxredirect', built)));
    t.deepEqual((await runProxy(t, cjsJs)).loaded, [installedAddon(cjsJs, built)]);
  },
);
