import { MIN_RUNS_FOR_VERDICT } from './goals';
import { findingsSection, headline, machineSection, methodSection, resultsSection } from './report-sections';
import type { BenchResults, SubjectSummary, Verdict } from './results';
import type { Measurement } from './scenarios';
import { loadSection } from './load-report';
import { chainName, isUserRun, renderUserMarkdown } from './user-report';

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function summarise(runs: Measurement[]): SubjectSummary {
  const values = runs.map((r) => r.value);
  const finite = values.filter((x) => Number.isFinite(x));
  const s: SubjectSummary = {
    runs,
    median: median(values),
    min: finite.length ? Math.min(...finite) : Number.NaN,
    max: finite.length ? Math.max(...finite) : Number.NaN,
  };
  const cpu = median(runs.map((r) => r.cpuPercent ?? Number.NaN));
  const rss = median(runs.map((r) => r.rssBytes ?? Number.NaN));
  if (Number.isFinite(cpu)) s.cpuPercentMedian = cpu;
  if (Number.isFinite(rss)) s.rssMedian = rss;
  const p50 = median(runs.map((r) => Number(r.extra?.p50Ms ?? Number.NaN)));
  const p99 = median(runs.map((r) => Number(r.extra?.p99Ms ?? Number.NaN)));
  if (Number.isFinite(p50)) s.p50Ms = p50;
  if (Number.isFinite(p99)) s.p99Ms = p99;
  return s;
}

const VERDICT_TEXT: Record<Verdict, string> = {
  met: 'yes',
  missed: '**no**',
  'within noise': 'within noise',
  'too few runs': 'too few runs',
  'not measured': 'not measured',
};

export function chartTitle(r: BenchResults): string {
  return isUserRun(r)
    ? `rxredirect bench: ${chainName(r)} against the baselines`
    : 'rxredirect benchmarks: each subject against the plain Node relay and direct';
}

export function renderMarkdown(r: BenchResults, svgName: string): string {
  if (isUserRun(r)) return renderUserMarkdown(r, svgName);
  return [
    ...headline(r, 'Benchmarks'),
    ...machineSection(r),
    '## Goals',
    '',
    '| Goal | Measured (ratio of medians) | Met |',
    '| --- | --- | --- |',
    ...r.goals.map((g) => `| ${g.goal} | ${g.measured} | ${VERDICT_TEXT[g.verdict]} |`),
    '',
    `A goal is met or missed only when it holds for every pair of runs, or for none; otherwise the runs' spread is wider than the effect and the goal is "within noise" (fewer than ${MIN_RUNS_FOR_VERDICT} runs: no verdict).`,
    '',
    ...findingsSection(r),
    `![chart](${svgName})`,
    '',
    ...resultsSection(r, (subject) => subject),
    ...loadSection(r, loadSvgName(svgName)),
    ...methodSection(r),
    '## Running it',
    '',
    '```sh',
    'npm run bench                 # every scenario, 5 runs each (about 40 minutes), then the fault toxics (docs/faults.md)',
    'npm run bench -- --quick      # under 2 minutes with all 8 subjects: shorter runs, fewer idle connections',
    'npm run bench -- --report docs/benchmarks.md --findings benchmarks/findings.md   # regenerate this page',
    'npm run bench -- --subjects plain,rx --scenarios bulk-up,connrate --runs 3',
    'npm run bench -- --subjects plain,rx,rx-zc --scenarios load-1,load-64,load-128 --baseline ../before/dist/lib',
    '```',
    '',
    'Results go to `benchmarks/results/` (gitignored): `bench-<date>.json` with every run, plus `report.md` and `report.svg` unless `--report` names another place. `--generator node` forces the Node load generator when iperf3 is installed.',
    '',
    '## Benchmarking your own middleware',
    '',
    '```sh',
    'npx rxredirect bench --middleware ./my-chain.js [--quick] [--name NAME]',
    '```',
    '',
    "`./my-chain.js` exports `middleware: Middleware[]` (or a default export: an array or one middleware). The same scenarios run against direct, the Node `pipe()` relay and rxredirect with no middleware, and the report (in `./benchmarks/results/` of the current directory) shows your chain, under its file name or `--name`, against each of them: the medians, their min–max spread, and whether a difference is larger than the spread. It has none of the goals above, which are this repository's. Your chain must pass bytes through unchanged in length for the throughput figures to mean anything (a chain that drops or delays bytes measures that instead).",
    '',
  ].join('\n');
}

/** The cost-against-load chart beside the main one: report.svg → report-load.svg. */
export function loadSvgName(svgName: string): string {
  return svgName.replace(/(\.svg)?$/, '-load.svg');
}
