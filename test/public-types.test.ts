import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import test from 'ava';

// What a TypeScript user compiles against must need only what npm installs with us: the
// declarations reachable from the package's entry points may import our dependencies and
// Node's modules, never an optional peer (prom-client), or a project without it fails to
// compile under skipLibCheck: false.

const ROOT = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, { types?: string } | string>;
  dependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
};

/** Every bare module a declaration file reachable from `entry` imports, with the file that does. */
function bareImports(entry: string): Map<string, string> {
  const found = new Map<string, string>();
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    // import/export … from 'x' at the start of a line, and inline import('x') types; not comments.
    const specs = [
      ...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+['"]([^'"]+)['"]/gm),
      ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
    ];
    for (const m of specs) {
      const spec = m[1] as string;
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec.replace(/\.js$/, ''));
        queue.push(target.endsWith('.d.ts') ? target : `${target}.d.ts`);
      } else if (!found.has(spec)) found.set(spec, file);
    }
  }
  return found;
}

test('the public declarations import only dependencies and node: modules, never an optional peer', (t) => {
  const allowed = new Set(Object.keys(pkg.dependencies));
  const entries = Object.values(pkg.exports)
    .map((e) => (typeof e === 'string' ? undefined : e.types))
    .filter((e): e is string => e !== undefined);
  t.true(entries.length >= 3, 'the package has its three typed entry points');
  for (const entry of entries) {
    for (const [spec, file] of bareImports(join(ROOT, entry))) {
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string);
      const ok = spec.startsWith('node:') || allowed.has(name) || ['events', 'net', 'stream'].includes(name);
      t.true(ok, `${file.slice(ROOT.length + 1)} imports '${spec}', which npm does not install with rxredirect`);
    }
  }
  t.truthy(pkg.peerDependencies?.['prom-client'], 'prom-client stays an optional peer');
});
