import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';

/**
 * docs/architecture.md and the dependency rule CI enforces (.dependency-cruiser.cjs) say the
 * same thing, every folder of lib/ has a layer, and the check does fail on an upward import.
 */

const ROOT = join(__dirname, '..', '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const run = promisify(execFile);

const layers = (require(join(ROOT, '.dependency-cruiser.cjs')) as { layers: string[][] }).layers;

function documentedLayers(): Map<string, number> {
  const rows = new Map<string, number>();
  for (const line of read('docs/architecture.md').split('\n')) {
    const m = /^\| (\d+) \| `([^`]+?)\/?` \|/.exec(line);
    if (m) rows.set(m[2] as string, Number(m[1]));
  }
  return rows;
}

test('docs/architecture.md gives every folder the layer the check enforces', (t) => {
  const enforced = new Map(layers.flatMap((folders, i) => folders.map((f) => [f, i] as const)));
  t.deepEqual(
    [...documentedLayers()].sort(),
    [...enforced].sort(),
    'the table of docs/architecture.md and LAYERS in .dependency-cruiser.cjs differ',
  );
});

test('every folder of lib/ has a layer', (t) => {
  const folders = readdirSync(join(ROOT, 'lib'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => `lib/${e.name}`);
  const known = new Set(layers.flat());
  t.deepEqual(
    folders.filter((f) => !known.has(f)),
    [],
  );
  t.true(known.has('lib/index.ts'));
});

test('the dependency check fails on an upward import', async (t) => {
  // A probe in the lowest layer importing the highest stage folder must be refused.
  const probe = join(ROOT, 'lib', 'common', `arch-probe-${process.pid}.ts`);
  t.teardown(() => rmSync(probe, { force: true }));
  writeFileSync(
    probe,
    "import type { RedirectServer } from '../server/server';\nexport type Probe = RedirectServer;\n",
  );
  const cruiser = join(ROOT, 'node_modules', '.bin', 'depcruise');
  t.true(existsSync(cruiser), 'dependency-cruiser is a devDependency');
  const error = await t.throwsAsync(
    run(cruiser, [`lib/common/arch-probe-${process.pid}.ts`, '--config', '.dependency-cruiser.cjs'], { cwd: ROOT }),
  );
  t.regex(String((error as { stdout?: string }).stdout), /layer:lib\/common/);
});

test('no file in lib/ is over about 300 lines without a stated reason', (t) => {
  const CAP = 320;
  const over: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(path);
      else if (path.endsWith('.ts')) {
        const lines = read(path).split('\n');
        // A reason is a "// Size:" comment among the first lines.
        if (lines.length > CAP && !lines.slice(0, 5).some((l) => l.startsWith('// Size:')))
          over.push(`${path} (${lines.length})`);
      }
    }
  };
  walk('lib');
  t.deepEqual(over, []);
});
