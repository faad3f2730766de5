import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';

// What `npm pack` would put in the tarball: nothing from the test or build
// trees, and everything the README, the docs and the messages point a user to.
// (test/consumer.test.ts installs the real tarball.)

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const ci = process.env.CI === 'true';

interface PackManifest {
  readonly files: readonly { readonly path: string }[];
}

let packed: Promise<Set<string>> | undefined;
/** Paths in the tarball, from `npm pack --dry-run --json` (no prepare: dist/ is already built). */
function packedFiles(): Promise<Set<string>> {
  packed ??= run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, maxBuffer: 16 << 20 }).then(
    ({ stdout }) => new Set((JSON.parse(stdout) as PackManifest[])[0]!.files.map((f) => f.path)),
  );
  return packed;
}

const text = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/**
 * Paths a text names: relative Markdown link targets (resolved against the
 * file's folder) and, with `bare`, paths under the repository's top-level folders.
 * `<name>` placeholders become wildcards.
 */
function namedPaths(path: string, content: string, bare = true): string[] {
  const found = new Set<string>();
  for (const [, target] of content.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
    if (!/^[a-z]+:/i.test(target!)) found.add(posix.normalize(posix.join(posix.dirname(path), target!)));
  }
  if (!bare) return [...found];
  for (const [name] of content.matchAll(
    /(?<![\w./-])(?:docs|examples|dist|bin|native|prebuilds|lib|middleware|test|scripts|benchmarks|\.ci)\/[\w./<>-]*[\w>]/g,
  )) {
    found.add(name.replace(/\.$/, ''));
  }
  return [...found];
}

function exists(files: Set<string>, path: string): boolean {
  if (!path.includes('<')) return files.has(path) || [...files].some((f) => f.startsWith(`${path}/`));
  const pattern = new RegExp(`^${path.replace(/[.]/g, '\\.').replace(/<[^>]+>/g, '[^/]+')}$`);
  return [...files].some((f) => pattern.test(f));
}

test('nothing from test/, benchmarks/results/, build/ or the sources dist/ was built from', async (t) => {
  const files = await packedFiles();
  const leaks = [...files].filter((f) =>
    /^(test|dist\/test|benchmarks|build|node_modules|lib|middleware|scripts|\.ci)\/|\.tsbuildinfo$|\.log$/.test(f),
  );
  t.deepEqual(leaks, []);
  for (const f of ['LICENSE', 'README.md', 'package.json', 'binding.gyp', 'bin/rxredirect.js', 'native/addon.cc']) {
    t.true(files.has(f), `${f} is in the package`);
  }
});

test('LICENSE is the MIT licence package.json names', (t) => {
  const pkg = JSON.parse(text('package.json')) as { license: string };
  t.is(pkg.license, 'MIT');
  t.regex(text('LICENSE'), /^MIT License\n\nCopyright \(c\) \d{4} rxredirect contributors\n/);
});

test('main, types, bin, exports and typesVersions point into the package', async (t) => {
  const files = await packedFiles();
  const pkg = JSON.parse(text('package.json')) as {
    main: string;
    types: string;
    bin: Record<string, string>;
    exports: Record<string, string | Record<string, string>>;
    typesVersions: Record<string, Record<string, string[]>>;
  };
  const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin)];
  for (const entry of Object.values(pkg.exports))
    targets.push(...(typeof entry === 'string' ? [entry] : Object.values(entry)));
  for (const mapping of Object.values(pkg.typesVersions))
    for (const paths of Object.values(mapping)) targets.push(...paths);
  for (const target of targets) t.true(files.has(posix.normalize(target)), `${target} is in the package`);
  // Each subpath export has a node10 (typesVersions) twin, so TypeScript on node10 resolution finds its types.
  const subpaths = Object.keys(pkg.exports).filter((k) => k !== '.' && k !== './package.json');
  t.deepEqual(Object.keys(pkg.typesVersions['*'] ?? {}).sort(), subpaths.map((k) => k.slice(2)).sort());
});

/** The README without its Development section, which is about the repository and says so. */
function readmeForUsers(): string {
  const readme = text('README.md');
  const dev = readme.indexOf('\n## Development\n');
  if (dev < 0) return readme;
  const next = readme.indexOf('\n## ', dev + 1);
  return readme.slice(0, dev) + (next < 0 ? '' : readme.slice(next));
}

test('every path the README names is in the package', async (t) => {
  const files = await packedFiles();
  t.regex(text('README.md'), /## Development\n\nThese name files of the repository, not of the npm package\./);
  const named = namedPaths('README.md', readmeForUsers());
  t.true(named.length > 10, named.join(' '));
  t.deepEqual(
    named.filter((p) => !exists(files, p)),
    [],
  );
});

test('every docs/ page the messages, typings and docs name is in the package', async (t) => {
  const files = await packedFiles();
  const missing = new Set<string>();
  let named = 0;
  for (const f of files) {
    if (!/\.(js|d\.ts|md)$/.test(f) || f.endsWith('.js.map')) continue;
    const content = text(f);
    for (const [path] of content.matchAll(/\bdocs\/[\w-]+\.md\b/g)) {
      named++;
      if (!files.has(path)) missing.add(`${f}: ${path}`);
    }
    // The docs link each other relatively (their bare paths name repository files for developers).
    if (f.startsWith('docs/')) {
      for (const p of namedPaths(f, content, false)) if (!exists(files, p)) missing.add(`${f}: ${p}`);
    }
  }
  t.true(named > 0);
  t.deepEqual([...missing], []);
  // The remedy when the addon is missing names the install page.
  t.regex(text('dist/lib/platform/addon.js'), /docs\/install\.md/);
});

test('source maps resolve: each shipped .js has its map, with its sources inlined or shipped', async (t) => {
  const files = await packedFiles();
  const scripts = [...files].filter((f) => f.startsWith('dist/') && f.endsWith('.js'));
  t.true(scripts.length > 20);
  const unresolved: string[] = [];
  for (const js of scripts) {
    const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text(js))?.[1];
    const map = url === undefined ? undefined : posix.join(posix.dirname(js), url);
    if (map === undefined || !files.has(map)) {
      unresolved.push(`${js}: map ${map} not shipped`);
      continue;
    }
    const { sources, sourcesContent } = JSON.parse(text(map)) as { sources: string[]; sourcesContent?: string[] };
    sources.forEach((source, i) => {
      const shipped = files.has(posix.join(posix.dirname(map), source));
      if (!shipped && !(typeof sourcesContent?.[i] === 'string' && sourcesContent[i]!.length > 0)) {
        unresolved.push(`${map}: ${source}`);
      }
    });
  }
  t.deepEqual(unresolved, []);
});

test('the prebuilds npm run build:prebuilds made are in the package', async (t) => {
  const files = await packedFiles();
  const expected = [
    'prebuilds/linux-x64/rxredirect.glibc.node',
    'prebuilds/linux-arm64/rxredirect.glibc.node',
    'prebuilds/win32-x64/rxredirect.node',
  ];
  const built = expected.filter((f) => existsSync(join(ROOT, f)));
  // Under CI, .ci/run builds all three before the tests; elsewhere whatever was built.
  if (ci) t.deepEqual(built, expected);
  t.deepEqual([...files].filter((f) => f.startsWith('prebuilds/')).sort(), built.sort());
});
