import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { REDIRECT_ERROR_CODES } from '../lib/common/errors';
import * as api from '../lib/index';
import * as middleware from '../middleware/index';

/**
 * The public API is what lib/index.ts and middleware/index.ts name, and docs/api.md
 * documents exactly that; docs/errors.md lists exactly the codes lib/common/errors.ts has.
 */

const ROOT = join(__dirname, '..', '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const sorted = (names: Iterable<string>): string[] => [...names].sort();

/** Names exported by `export { … } from` and `export type { … } from` statements, values and types apart. */
function exportsOf(source: string): { values: Set<string>; types: Set<string> } {
  const values = new Set<string>();
  const types = new Set<string>();
  // A namespace re-export of a curated module (export * as toxics from …) is one named value.
  for (const m of source.matchAll(/export\s+\*\s+as\s+(\w+)\s+from/g)) values.add(m[1] ?? '');
  for (const m of source.matchAll(/export\s+(type\s+)?\{([^}]*)\}\s*from/g)) {
    for (const raw of (m[2] ?? '').split(',')) {
      const item = raw.trim();
      if (item === '') continue;
      const isType = m[1] !== undefined || item.startsWith('type ');
      const name =
        item
          .replace(/^type\s+/, '')
          .split(/\s+as\s+/)
          .pop() ?? '';
      (isType ? types : values).add(name);
    }
  }
  return { values, types };
}

/** The lines of the section of a Markdown page under `## heading`. */
function section(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`no section "${heading}"`);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end).split('\n');
}

/** Backquoted names in the first column of a section's table. */
function namesInTable(lines: string[]): Set<string> {
  const names = new Set<string>();
  for (const line of lines) {
    if (!line.startsWith('| ') || line.startsWith('| ---') || line.startsWith('| name ')) continue;
    const first = line.split(' | ')[0] ?? '';
    for (const m of first.matchAll(/`([A-Za-z_$][\w$]*)`/g)) names.add(m[1] ?? '');
  }
  return names;
}

/** The table row of docs/api.md whose first cell is `name`. */
function rowOf(lines: string[], name: string): string | undefined {
  return lines.find((l) => l.startsWith(`| \`${name}\` |`));
}

test('the entry points name every export: no export * (a named namespace of a curated module is named)', (t) => {
  for (const file of ['lib/index.ts', 'middleware/index.ts'])
    t.notRegex(read(file), /export\s+(type\s+)?\*(?!\s+as\s)/, file);
});

test('the runtime exports are exactly the value names the entry points list', (t) => {
  t.deepEqual(sorted(Object.keys(api)), sorted(exportsOf(read('lib/index.ts')).values));
  t.deepEqual(sorted(Object.keys(middleware)), sorted(exportsOf(read('middleware/index.ts')).values));
});

test('internals are not exported', (t) => {
  const internals = [
    'Connection',
    'RedirectServer',
    'SocketTransport',
    'native',
    'requireNative',
    'errnoOf',
    'runDoctor',
    'formatDoctor',
    'generateRules',
    'formatRules',
    'formatCommand',
    'createAddressMatcher',
    'parseCidr',
    'normaliseAddress',
    'chainFromMark',
    'encodeChainTlv',
    'decodeChainTlv',
    'DEFAULT_CHAIN_TLV_TYPE',
    'DEFAULT_MAX_HEADER_BYTES',
    'REDIRECT_ERROR_CODES',
  ];
  for (const name of internals) t.false(name in api, name);
});

test('docs/api.md lists every name rxredirect exports, and no other', (t) => {
  const { values, types } = exportsOf(read('lib/index.ts'));
  const listed = namesInTable(section(read('docs/api.md'), 'Exported names'));
  t.deepEqual(sorted(listed), sorted([...values, ...types]));
});

test("docs/api.md lists every name 'rxredirect/middleware' exports, and no other", (t) => {
  const { values, types } = exportsOf(read('middleware/index.ts'));
  const listed = namesInTable(section(read('docs/api.md'), '`rxredirect/middleware`'));
  t.deepEqual(sorted(listed), sorted([...values, ...types]));
});

test('docs/api.md has a row for every option, egress option and limit, and each limit shows its default', (t) => {
  const doc = read('docs/api.md').split('\n');
  const options = read('lib/config/options.ts');
  const known = (set: string): string[] => {
    const m = options.match(new RegExp(`const ${set} = new Set\\(\\[([^\\]]*)\\]`));
    return [...(m?.[1] ?? '').matchAll(/'([^']+)'/g)].map((x) => x[1] ?? '');
  };
  const topLevel = known('KNOWN_OPTIONS');
  const egress = known('KNOWN_EGRESS');
  t.true(
    topLevel.includes('resolve') && egress.includes('mark'),
    'lib/config/options.ts still lists its known options',
  );
  for (const key of [...topLevel, ...egress]) t.truthy(rowOf(doc, key), `no row for option ${key}`);
  for (const [key, value] of Object.entries(api.DEFAULT_LIMITS)) {
    const row = rowOf(doc, key) ?? '';
    const shown = value === Number.POSITIVE_INFINITY ? 'Infinity' : String(value);
    t.true(row.includes(`\`${shown}\``), `the ${key} row shows its default ${shown}: ${row}`);
  }
});

test('docs/errors.md lists every error code once, and only codes that exist', (t) => {
  const rows = read('docs/errors.md')
    .split('\n')
    .filter((l) => l.startsWith('| `ERR_'));
  const listed = rows.map((l) => /^\| `(ERR_[A-Z_]+)`/.exec(l)?.[1] ?? '');
  t.deepEqual(sorted(listed), sorted(REDIRECT_ERROR_CODES));
  t.is(new Set(listed).size, listed.length, 'one row per code');
  // Every code named in the docs, the README or the sources is one that exists.
  const known = new Set<string>(REDIRECT_ERROR_CODES);
  const filesIn = (dir: string, ext: string): string[] =>
    readdirSync(join(ROOT, dir))
      .filter((f) => f.endsWith(ext))
      .map((f) => `${dir}/${f}`);
  const files = ['README.md', ...filesIn('docs', '.md'), ...filesIn('lib', '.ts'), ...filesIn('middleware', '.ts')];
  for (const file of files) {
    for (const m of read(file).matchAll(/ERR_REDIRECT_[A-Z_]*[A-Z]/g)) t.true(known.has(m[0]), `${file}: ${m[0]}`);
  }
});

test('every exported error class has its own name, and its stack shows it', (t) => {
  const classes = Object.entries(api).filter(
    ([, v]) => typeof v === 'function' && v.prototype instanceof Error,
  ) as unknown as [string, new (a: string, b: string) => Error][];
  t.deepEqual(sorted(classes.map(([k]) => k)), ['ProxyHeaderError', 'RedirectError']);
  for (const [exported, Class] of classes) {
    const err = new Class('ERR_REDIRECT_INTERNAL', 'probe');
    t.true(err instanceof api.RedirectError, exported);
    t.is(err.name, exported);
    t.true(err.stack?.startsWith(`${exported}: `), err.stack);
  }
});
