// The report of `rxredirect bench --middleware FILE`: the user's chain against the baselines
// of the same run, with the runs' spread, and none of this repository's goals or sections.
import { type Comparison, chanceApart, compareSpread, MIN_RUNS_FOR_VERDICT } from './goals';
import type { BenchResults, SubjectSummary } from './results';
import {
  findingsSection,
  fmt,
  headline,
  labelOf,
  machineSection,
  methodSection,
  ratio,
  resultsSection,
} from './report-sections';
import { SCENARIO_INFO, type ScenarioName } from './scenarios';

/** A run of a user's chain (`bench --middleware`), which gets its own report. */
export const isUserRun = (r: Pick<BenchResults, 'subjects'>): boolean => r.subjects.some((s) => s.name === 'user');

/** The chain's short name; runs recorded before `chain` existed fall back to its label. */
export const chainName = (r: BenchResults): string =>
  r.chain?.name ?? r.subjects.find((s) => s.name === 'user')?.label ?? 'your chain';

/** Baselines in the order a reader asks about them: the chain's own cost first. */
const BASELINE_ORDER = ['rx', 'plain', 'direct'];

export interface ChainComparison {
  scenario: ScenarioName;
  chain: SubjectSummary;
  against: { subject: string; ratio: number | undefined; comparison: Comparison }[];
}

/** The chain against every other subject of each scenario it ran in. */
export function chainComparisons(r: BenchResults): ChainComparison[] {
  const out: ChainComparison[] = [];
  for (const [scenario, bySubject] of Object.entries(r.scenarios) as [ScenarioName, Record<string, SubjectSummary>][]) {
    const chain = bySubject.user;
    if (!chain) continue;
    const { higherIsBetter } = SCENARIO_INFO[scenario];
    out.push({
      scenario,
      chain,
      against: baselines(r)
        .filter((b) => bySubject[b])
        .map((b) => ({
          subject: b,
          ratio: ratio(chain.median, bySubject[b]?.median),
          comparison: compareSpread(chain, bySubject[b] as SubjectSummary, higherIsBetter),
        })),
    });
  }
  return out;
}

function baselines(r: BenchResults): string[] {
  const present = r.subjects.map((s) => s.name).filter((n) => n !== 'user');
  const rank = (n: string): number => (BASELINE_ORDER.includes(n) ? BASELINE_ORDER.indexOf(n) : BASELINE_ORDER.length);
  return present.sort((a, b) => rank(a) - rank(b));
}

/** One cell: the ratio of medians, and what the spread lets us say about it. */
export function comparisonText(c: { ratio: number | undefined; comparison: Comparison }): string {
  // A consistent difference under 1% would read "1.00× worse": give it the digit that shows it.
  const q = `${c.ratio !== undefined && Math.abs(c.ratio - 1) < 0.01 ? c.ratio.toFixed(3) : fmt(c.ratio)}×`;
  return c.comparison === 'better' || c.comparison === 'worse' ? `**${q} ${c.comparison}**` : `${q} ${c.comparison}`;
}

export function renderUserMarkdown(r: BenchResults, svgName: string): string {
  const name = chainName(r);
  const comparisons = chainComparisons(r);
  const runs = r.settings.runs;
  const columns = baselines(r).filter((b) => comparisons.some((c) => c.against.some((a) => a.subject === b)));
  const lines = [
    ...headline(r, `Benchmark of your chain: \`${name}\``),
    '## Your chain against the baselines',
    '',
    `\`${name}\` is rxredirect (JS path) running the chain ${r.chain ? `exported by \`${r.chain.module}\`` : 'given with `--middleware`'}. Each cell is the ratio of medians (your chain ÷ the baseline, over ${r.settings.runs} run${r.settings.runs === 1 ? '' : 's'} each) and what the runs' spread lets us say: **better** or **worse** only when the min–max ranges of the two do not overlap, otherwise "within noise".${runs >= MIN_RUNS_FOR_VERDICT ? ` Even so, with ${runs} runs each, two subjects that are in truth equal come out apart about once in ${Math.round(1 / chanceApart(runs, runs))} comparisons.` : ''}`,
    '',
  ];
  if (comparisons.length && columns.length) {
    lines.push(
      `| Scenario | ${name}: median (min–max) | ${columns.map((b) => `vs ${labelOf(r, b)}`).join(' | ')} |`,
      `| --- | ---: | ${columns.map(() => '---').join(' | ')} |`,
    );
    for (const c of comparisons) {
      const info = SCENARIO_INFO[c.scenario];
      const cells = columns.map((b) => {
        const a = c.against.find((x) => x.subject === b);
        return a ? comparisonText(a) : '–';
      });
      lines.push(
        `| ${info.title}, ${info.unit} (${info.higherIsBetter ? 'higher' : 'lower'} is better) | ${fmt(c.chain.median)} (${fmt(c.chain.min)}–${fmt(c.chain.max)}) | ${cells.join(' | ')} |`,
      );
    }
    lines.push('');
  } else {
    lines.push('_Nothing to compare: the run had no baseline next to your chain, or your chain did not run._', '');
  }
  const slow = r.scenarios['slow-reader']?.user;
  const peak = slow ? Math.max(...slow.runs.map((m) => Number(m.extra?.peakBuffered ?? Number.NaN))) : Number.NaN;
  if (Number.isFinite(peak)) {
    lines.push(
      `With your chain, rxredirect held at most ${(peak / 1024).toFixed(0)} KiB between the sockets of the slow reader (\`limits.highWaterMark\` is ${r.settings.highWaterMark / 1024} KiB; one read of up to 64 KiB may come on top).`,
      '',
    );
  }
  lines.push(
    ...findingsSection(r),
    `![chart](${svgName})`,
    '',
    ...resultsSection(r, (subject) => labelOf(r, subject)),
    ...machineSection(r),
    ...methodSection(r, [
      '- Your chain must pass bytes through unchanged in length for the throughput figures to mean anything: a chain that drops or delays bytes measures that instead.',
    ]),
  );
  return lines.join('\n');
}
