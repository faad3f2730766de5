import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type BenchOptions, parseBenchArgs, runBench } from '../benchmarks/run';
import { main } from '../lib/cli';

// The harness end to end on a tiny configuration. Never asserts timings: only that
// every run produced a number and that the JSON, Markdown and SVG are well formed.

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rxredirect-bench-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a tiny run writes well-formed JSON, Markdown and SVG', async (t) => {
  const dir = tempDir(t);
  const lines: string[] = [];
  const options: BenchOptions = {
    subjects: ['direct', 'plain', 'rx'],
    scenarios: ['bulk-up', 'idle-rss'],
    runs: 1,
    generator: 'node',
    outDir: dir,
    report: join(dir, 'out', 'bench.md'),
    settings: { seconds: 0.2, idleConnections: 20 },
    log: (line) => lines.push(line),
  };
  const { jsonPath, reportPath, svgPath } = await runBench(options);

  const results = JSON.parse(readFileSync(jsonPath, 'utf8'));
  t.is(results.version, 1);
  t.is(results.generator, 'node');
  t.true(results.machine.cpus > 0);
  for (const subject of ['direct', 'plain', 'rx']) {
    const s = results.scenarios['bulk-up'][subject];
    t.is(s.runs.length, 1, subject);
    t.true(Number.isFinite(s.median), subject);
    t.true(s.min <= s.median && s.median <= s.max, subject);
  }
  // Memory scenarios have no direct subject (nothing to measure) and report per connection.
  t.is(results.scenarios['idle-rss'].direct, undefined);
  t.true(Number.isFinite(results.scenarios['idle-rss'].plain.median));
  // The figure before the Node relays collected their garbage is kept too.
  for (const subject of ['plain', 'rx']) {
    t.true(Number.isFinite(results.scenarios['idle-rss'][subject].runs[0].extra.kibPerConnectionBeforeGc), subject);
  }
  t.true(Array.isArray(results.goals) && results.goals.length >= 6);
  for (const g of results.goals) t.true(typeof g.goal === 'string' && typeof g.measured === 'string');

  const md = readFileSync(reportPath, 'utf8');
  t.true(md.startsWith('# Benchmarks\n'));
  for (const heading of ['## Machine', '## Goals', '## Results', '## Method', '## Benchmarking your own middleware']) {
    t.true(md.includes(`\n${heading}\n`), heading);
  }
  t.true(md.includes('Node pipe() relay'));
  t.true(md.includes('![chart](bench.svg)'));
  // Every table row has as many cells as its header.
  for (const table of md.split('\n\n').filter((block) => block.startsWith('| '))) {
    const rows = table.split('\n');
    const cells = (row: string): number => row.split(' | ').length;
    for (const row of rows) t.is(cells(row), cells(rows[0]!), row);
  }

  const svg = readFileSync(svgPath, 'utf8');
  t.true(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  t.true(svg.trimEnd().endsWith('</svg>'));
  t.false(/NaN|undefined/.test(svg));
  t.true(
    lines.some((l) => l.includes('run 1/1 plain')),
    'progress is printed',
  );

  // --render: the same results re-rendered with hand-written findings, without measuring.
  const findings = join(dir, 'findings.md');
  writeFileSync(findings, 'The plain relay was **slower** here.\n');
  const again = await runBench({ render: jsonPath, findings, report: join(dir, 'again.md'), log: () => {} });
  const rendered = readFileSync(again.reportPath, 'utf8');
  t.true(rendered.includes('\n## Findings\n'));
  t.true(rendered.includes('The plain relay was **slower** here.'));
  t.true(rendered.indexOf('## Findings') > rendered.indexOf('## Goals'));
  t.true(rendered.indexOf('## Findings') < rendered.indexOf('## Results'));
  // The measurements are the same run's.
  t.is(rendered.split('## Results')[1], md.split('## Results')[1]);
  await t.throwsAsync(runBench({ render: findings, log: () => {} }));
  writeFileSync(join(dir, 'other.json'), '{"version": 2}');
  await t.throwsAsync(runBench({ render: join(dir, 'other.json'), log: () => {} }), {
    message: /not a results file/,
  });
});

test('bench arguments are checked before anything runs', async (t) => {
  t.deepEqual(parseBenchArgs(['--quick', '--runs', '3', '--scenarios', 'bulk-up,connrate']), {
    quick: true,
    runs: 3,
    scenarios: ['bulk-up', 'connrate'],
  });
  t.throws(() => parseBenchArgs(['--runs', '0']), { message: /--runs/ });
  t.throws(() => parseBenchArgs(['--generator', 'wrk']), { message: /--generator/ });
  let err = '';
  const io = { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) } };
  t.is(await main(['bench', '--scenarios', 'nope'], io), 2);
  t.regex(err, /unknown scenario "nope"/);
  t.is(await main(['bench', '--bogus'], io), 2);
  t.is(await main(['bench', '--subjects', 'nope', '--runs', '1'], io), 2);
  t.regex(err, /unknown subject "nope"/);
});
