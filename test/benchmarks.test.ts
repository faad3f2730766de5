import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { fitLabel } from '../benchmarks/chart';
import { chanceApart, compareSpread, goalVerdict } from '../benchmarks/goals';
import { type BenchOptions, parseBenchArgs, runBench } from '../benchmarks/run';
import { userSubjects } from '../benchmarks/subjects';
import { comparisonText } from '../benchmarks/user-report';
import { benchCommand } from '../benchmarks/cli-command';
import { main } from '../lib/tools/cli';

// The harness end to end on a tiny configuration. Never asserts timings: only that
// every run produced a number and that the JSON, Markdown and SVG are well formed.

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rxredirect-bench-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Each chart element of `cls` ('bar' or 'swatch') by subject: its fill colour. */
function fills(svg: string, cls: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of svg.matchAll(new RegExp(`<rect class="${cls}" data-subject="([^"]+)"[^>]* fill="([^"]+)"`, 'g'))) {
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
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
  // One run cannot tell an effect from noise: no goal is met or missed on it.
  for (const g of results.goals) t.true(['too few runs', 'not measured'].includes(g.verdict), g.goal);
  t.true(md.includes('**Indicative only.**'));
  // The repository's report keeps its own sections and goals.
  t.true(md.includes('\n## Running it\n'));
  t.true(md.includes('| JS path, no middleware ≥ Node pipe() relay (throughput) |'));
  // A colour per subject, each in the legend.
  const bars = fills(svg, 'bar');
  const swatches = fills(svg, 'swatch');
  const colours = ['direct', 'plain', 'rx'].map((s) => bars.get(s)?.[0]);
  t.is(new Set(colours).size, 3, colours.join());
  for (const s of ['direct', 'plain', 'rx']) t.deepEqual(swatches.get(s), [bars.get(s)?.[0]], s);
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
  t.is(await main(['bench', '--scenarios', 'nope'], io, { bench: benchCommand }), 2);
  t.regex(err, /unknown scenario "nope"/);
  t.is(await main(['bench', '--bogus'], io, { bench: benchCommand }), 2);
  t.is(await main(['bench', '--subjects', 'nope', '--runs', '1'], io, { bench: benchCommand }), 2);
  t.regex(err, /unknown subject "nope"/);
});

test("a user's chain gets its own report: short label, own colour, legend, spread, no repository goals", async (t) => {
  const dir = tempDir(t);
  const chain = join(__dirname, 'fixtures', 'bench-chain.js');
  let out = '';
  let err = '';
  const io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } };
  // Quick mode as a user runs it, on the shortest scenario and two subjects.
  const args = ['bench', '--quick', '--middleware', chain, '--subjects', 'rx,user', '--scenarios', 'connrate'];
  t.is(await main([...args, '--generator', 'node', '--out', dir], io, { bench: benchCommand }), 0, err);
  const [reportPath, jsonPath] = out.trim().split('\n') as [string, string];
  const results = JSON.parse(readFileSync(jsonPath, 'utf8'));
  t.is(results.mode, 'quick');
  t.deepEqual(results.chain, { name: 'bench-chain.js', module: chain });
  t.deepEqual(results.goals, []);
  t.is(results.scenarios.connrate.user.runs.length, 3);

  const svg = readFileSync(reportPath.replace(/\.md$/, '.svg'), 'utf8');
  // The chain is labelled by its file's name, never by its path (which the chart cut off).
  t.true(svg.includes('>bench-chain.js</text>'));
  t.false(svg.includes(__dirname));
  // Its own colour, unlike the baseline's, and both in the legend with their colours.
  const bars = fills(svg, 'bar');
  t.truthy(bars.get('user')?.[0]);
  t.truthy(bars.get('rx')?.[0]);
  t.not(bars.get('user')?.[0], bars.get('rx')?.[0]);
  const swatches = fills(svg, 'swatch');
  t.deepEqual(swatches.get('user'), bars.get('user'));
  t.deepEqual(swatches.get('rx'), bars.get('rx'));
  t.true(svg.includes('>bench-chain.js (your chain)</text>'));
  t.true(svg.includes('>rxredirect JS, no middleware</text>'));
  t.regex(svg, /Bar: median of 3 runs; whisker: min–max of the runs\. Quick run: indicative only\./);

  const md = readFileSync(reportPath, 'utf8');
  // Tables name the chain by its short name, and each row has as many cells as its header.
  for (const table of md.split('\n\n').filter((block) => block.startsWith('| '))) {
    const rows = table.split('\n');
    const cells = (row: string): number => row.split(' | ').length;
    for (const row of rows) {
      t.is(cells(row), cells(rows[0]!), row);
      t.false(row.includes(__dirname), row);
    }
  }
  t.true(md.includes('\n## Your chain against the baselines\n'));
  t.true(md.includes('**Indicative only.** A quick run'));
  // The chain's median and spread, and against the baseline a ratio with what the spread allows.
  t.regex(
    md,
    /\| Connection rate [^|]*\| [\d.]+ \([\d.]+–[\d.]+\) \| (\*\*)?[\d.]+× (better|worse|within noise)(\*\*)? \|/,
  );
  t.regex(md, /\n\| bench-chain\.js \| [\d.]+ \| [\d.]+–[\d.]+ \|/);
  // Nothing of this repository's own report.
  for (const heading of ['## Running it', '## Goals', '## Benchmarking your own middleware']) {
    t.false(md.includes(heading), heading);
  }
  for (const goal of ['zero-copy ≥ HAProxy', 'Node pipe() relay (throughput)', 'slow-reader growth', 'not measured']) {
    t.false(md.includes(goal), goal);
  }
  t.false(md.includes('npm run bench'));
  t.regex(err, /bench-chain\.js, connrate: [\d.]+× rxredirect JS, no middleware \((better|worse|within noise)\)/);
});

test('--name names the chain; a name that would break the report is refused', (t) => {
  t.deepEqual(parseBenchArgs(['--middleware', 'chain.js', '--name', 'sniff + tap']), {
    quick: false,
    middleware: 'chain.js',
    name: 'sniff + tap',
  });
  t.is(
    userSubjects('/home/me/proxy/chains/chain.js', 'sniff + tap').find((s) => s.name === 'user')?.label,
    'sniff + tap',
  );
  t.is(userSubjects('/home/me/proxy/chains/chain.js').find((s) => s.name === 'user')?.label, 'chain.js');
  t.throws(() => parseBenchArgs(['--name', 'x']), { message: /--middleware/ });
  for (const bad of ['', ' ', 'a|b', 'a`b', 'a\nb', 'x'.repeat(65)]) {
    t.throws(() => parseBenchArgs(['--middleware', 'c.js', '--name', bad]), { message: /--name/ }, JSON.stringify(bad));
  }
  // A long name is cut in the middle to fit the chart's label column.
  const long = fitLabel('my-very-long-chain-name-for-the-tls-proxy.js');
  t.true(long.length <= 32);
  t.true(long.startsWith('my-very-long') && long.endsWith('proxy.js') && long.includes('…'));
});

test('a verdict is given only when the runs are apart; otherwise within noise', (t) => {
  const runs = (...values: number[]) => ({
    runs: values.map((value) => ({ value })),
    min: Math.min(...values),
    max: Math.max(...values),
  });
  // Effect (ratio of medians 1.1) smaller than the spread: no verdict.
  t.is(goalVerdict(runs(8, 11, 14), runs(9, 10, 12), 1), 'within noise');
  t.is(compareSpread(runs(8, 11, 14), runs(9, 10, 12), true), 'within noise');
  // Every run of one beyond every run of the other.
  t.is(goalVerdict(runs(12, 13, 14), runs(9, 10, 11), 1), 'met');
  t.is(goalVerdict(runs(5, 6, 7), runs(9, 10, 11), 0.9), 'missed');
  t.is(compareSpread(runs(12, 13, 14), runs(9, 10, 11), true), 'better');
  t.is(compareSpread(runs(12, 13, 14), runs(9, 10, 11), false), 'worse');
  // Lower is better (memory): a ≤ 1.2 × b.
  t.is(goalVerdict(runs(10, 11, 11.5), runs(10, 10.5, 11), 1.2, true), 'met');
  t.is(goalVerdict(runs(14, 15, 16), runs(10, 10.5, 11), 1.2, true), 'missed');
  t.is(goalVerdict(runs(12, 13, 14), runs(10, 10.5, 11), 1.2, true), 'within noise');
  // One or two runs have no spread to judge by.
  t.is(goalVerdict(runs(20), runs(10), 1), 'too few runs');
  t.is(compareSpread(runs(20, 21), runs(10, 11), true), 'too few runs');
  t.is(goalVerdict(runs(Number.NaN), runs(10, 11, 12), 1), 'not measured');
  // Equal subjects still come out apart by chance: 2 of the 20 orders of 3 + 3 runs.
  t.is(chanceApart(3, 3), 0.1);
  t.is(Math.round(1 / chanceApart(5, 5)), 126);
  // A consistent but tiny difference shows its size instead of "1.00× worse".
  t.is(comparisonText({ ratio: 1.004, comparison: 'worse' }), '**1.004× worse**');
  t.is(comparisonText({ ratio: 0.57, comparison: 'within noise' }), '0.57× within noise');
});

test('the cost-against-load points and the c=1 latency scenario: a section of tables, a line chart, their goals', async (t) => {
  const dir = tempDir(t);
  const options: BenchOptions = {
    subjects: ['direct', 'plain', 'rx'],
    scenarios: ['load-1', 'load-16', 'idle-1000', 'latency-c1'],
    runs: 1,
    generator: 'node',
    outDir: dir,
    report: join(dir, 'bench.md'),
    settings: { seconds: 0.2, connrateSeconds: 0.2 },
    log: () => {},
  };
  const { jsonPath, reportPath, svgPath } = await runBench(options);
  const results = JSON.parse(readFileSync(jsonPath, 'utf8'));
  for (const subject of ['plain', 'rx']) {
    const bulk = results.scenarios['load-16'][subject].runs[0];
    t.true(Number.isFinite(bulk.value), subject);
    t.true(Number.isFinite(bulk.extra.rssGrowthMiB), subject);
    t.true(bulk.extra.fdsPeak >= 2 * 16, `${subject}: ${bulk.extra.fdsPeak} descriptors for 16 streams`);
    const idle = results.scenarios['idle-1000'][subject].runs[0];
    t.true(idle.extra.fdsPeak >= 2 * 1000, `${subject}: ${idle.extra.fdsPeak} descriptors for 1,000 idle`);
  }
  // Direct has no relay to measure, but a throughput; idle points have no direct subject.
  t.true(Number.isFinite(results.scenarios['load-1'].direct.median));
  t.is(results.scenarios['idle-1000'].direct, undefined);
  t.true(Number.isFinite(results.scenarios['latency-c1'].rx.p50Ms));
  t.true(results.scenarios['load-1'].rx.runs[0].extra.largeReads.maxBytes > 0, 'the relay reports its slab budget');
  const md = readFileSync(reportPath, 'utf8');
  t.true(md.includes('\n## Cost against load\n'));
  t.true(md.includes('![cost against load](bench-load.svg)'));
  t.true(md.includes('### Latency, one request/response connection at a time (c=1), p50'));
  for (const table of md.split('\n\n').filter((block) => block.startsWith('| '))) {
    const rows = table.split('\n');
    for (const row of rows) t.is(row.split(' | ').length, rows[0]!.split(' | ').length, row);
  }
  // The curve points are not bars in the main chart; they are lines in their own.
  t.false(readFileSync(svgPath, 'utf8').includes('Cost against load'));
  const curves = readFileSync(join(dir, 'bench-load.svg'), 'utf8');
  for (const metric of ['throughput', 'rss', 'fds']) {
    t.true(curves.includes(`data-subject="rx" data-metric="${metric}"`), metric);
  }
  const goals = results.goals.map((g: { goal: string }) => g.goal).join('\n');
  t.regex(goals, /RSS growth at 128 bulk streams/);
  t.regex(goals, /added latency at c=1/);
});
