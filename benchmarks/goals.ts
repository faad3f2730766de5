// Verdicts that respect the runs' spread: a goal is met or missed, and one subject is ahead
// of another, only when the min–max ranges of the runs say so; otherwise "within noise".
import type { BenchResults, Goal, SubjectSummary, Verdict } from './results';
import type { ScenarioName } from './scenarios';

/** Below this many runs a min–max range says nothing about the spread. */
export const MIN_RUNS_FOR_VERDICT = 3;

type Spread = Pick<SubjectSummary, 'runs' | 'min' | 'max'>;

const enoughRuns = (...s: Spread[]): boolean => s.every((x) => x.runs.length >= MIN_RUNS_FOR_VERDICT);

/**
 * Whether `a ≥ factor × b` (`a ≤ factor × b` when `lower`) holds for every pair of runs
 * (met), for none (missed), or only for some: then the spread is wider than the effect.
 */
export function goalVerdict(a: Spread, b: Spread, factor: number, lower = false): Verdict {
  if (![a.min, a.max, b.min, b.max].every(Number.isFinite)) return 'not measured';
  if (!enoughRuns(a, b)) return 'too few runs';
  if (lower) {
    if (a.max <= factor * b.min) return 'met';
    if (a.min > factor * b.max) return 'missed';
  } else {
    if (a.min >= factor * b.max) return 'met';
    if (a.max < factor * b.min) return 'missed';
  }
  return 'within noise';
}

/**
 * How often two subjects that are in truth equal still come out with their ranges apart:
 * 2 of the C(m + n, n) equally likely orders of their runs (1 in 10 for 3 runs each, 1 in 126 for 5).
 */
export function chanceApart(m: number, n: number): number {
  let orders = 1;
  for (let i = 1; i <= n; i++) orders = (orders * (m + i)) / i;
  return 2 / orders;
}

export type Comparison = 'better' | 'worse' | 'within noise' | 'too few runs' | 'not measured';

/** `a` against `b`: better or worse only when their min–max ranges do not overlap. */
export function compareSpread(a: Spread, b: Spread, higherIsBetter: boolean): Comparison {
  if (![a.min, a.max, b.min, b.max].every(Number.isFinite)) return 'not measured';
  if (!enoughRuns(a, b)) return 'too few runs';
  if (a.min > b.max) return higherIsBetter ? 'better' : 'worse';
  if (a.max < b.min) return higherIsBetter ? 'worse' : 'better';
  return 'within noise';
}

const ratio = (a: number, b: number): number | undefined =>
  Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : undefined;

const fmt = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(2);

/**
 * This repository's goals (docs/benchmarks.md). They say how rxredirect compares with the
 * references; a run of a user's chain (`bench --middleware`) gets none of them.
 */
export function evaluateGoals(r: Pick<BenchResults, 'scenarios' | 'settings' | 'subjects'>): Goal[] {
  if (r.subjects.some((s) => s.name === 'user')) return [];
  const goals: Goal[] = [];
  const compare = (
    goal: string,
    scenarios: ScenarioName[],
    a: string,
    b: string,
    factor: number,
    lower = false,
  ): void => {
    const parts: string[] = [];
    const verdicts: Verdict[] = [];
    for (const name of scenarios) {
      const sa = r.scenarios[name]?.[a];
      const sb = r.scenarios[name]?.[b];
      const q = sa && sb ? ratio(sa.median, sb.median) : undefined;
      if (!sa || !sb || q === undefined) continue;
      const v = goalVerdict(sa, sb, factor, lower);
      verdicts.push(v);
      parts.push(`${name}: ${q.toFixed(2)}×${v === 'met' || v === 'missed' ? '' : ` (${v})`}`);
    }
    // Missed anywhere is missed; met only when met everywhere it was measured.
    const verdict: Verdict = !verdicts.length
      ? 'not measured'
      : verdicts.includes('missed')
        ? 'missed'
        : verdicts.every((v) => v === 'met')
          ? 'met'
          : verdicts.includes('within noise')
            ? 'within noise'
            : 'too few runs';
    goals.push({ goal, measured: parts.length ? parts.join(', ') : 'not measured', verdict });
  };
  const bulk: ScenarioName[] = ['bulk-up', 'bulk-down', 'streams-64'];
  compare('zero-copy ≥ HAProxy with splice (throughput)', bulk, 'rx-zc', 'haproxy-splice', 1);
  compare('JS path, no middleware ≥ Node pipe() relay (throughput)', bulk, 'rx', 'plain', 1);
  compare('3 pass-through operators ≥ 0.9 × JS no middleware (throughput)', bulk, 'rx-map3', 'rx', 0.9);
  compare('connection rate ≥ 0.9 × Node pipe() relay', ['connrate'], 'rx', 'plain', 0.9);
  compare('RSS per idle connection ≤ 1.2 × Node pipe() relay', ['idle-rss'], 'rx', 'plain', 1.2, true);
  // Issue #17: splicing only bulk directions keeps the default config's per-connection cost at the JS path's.
  compare("default config (zeroCopy 'auto') connection rate ≥ JS path", ['connrate'], 'rx-zc', 'rx', 1);
  compare("default config added latency at c=1 ≤ Node pipe() relay's (p50)", ['latency-c1'], 'rx-zc', 'plain', 1, true);
  loadGoal(r, goals);

  // Bounded: the relay never held more than the high-water mark plus one read (64 KiB) in
  // one direction (its own peakBuffered), and its RSS grew no more than twice the plain
  // relay's plus twice the mark (RSS over a few seconds is mostly garbage not yet collected).
  const slow = r.scenarios['slow-reader'];
  const hwm = r.settings.highWaterMark;
  const rx = slow?.rx;
  if (rx) {
    const peak = Math.max(...rx.runs.map((m) => Number(m.extra?.peakBuffered ?? Number.NaN)));
    const plainGrowth = slow?.plain?.median;
    const limitMiB = 2 * Math.max(0, plainGrowth ?? 0) + (2 * hwm) / 1048576;
    const bufferedOk = Number.isFinite(peak) ? peak <= hwm + 65536 : undefined;
    const rssOk = rx.median <= limitMiB;
    goals.push({
      goal: `slow-reader growth bounded by highWaterMark (${hwm / 1024} KiB)`,
      measured: `peakBuffered ${Number.isFinite(peak) ? `${(peak / 1024).toFixed(0)} KiB` : 'n/a'} (limit ${hwm / 1024 + 64} KiB); RSS growth ${fmt(rx.median)} MiB vs plain relay ${fmt(plainGrowth)} MiB (limit ${fmt(limitMiB)} MiB)`,
      verdict: (bufferedOk ?? true) && rssOk ? 'met' : 'missed',
    });
  } else
    goals.push({
      goal: 'slow-reader growth bounded by highWaterMark',
      measured: 'not measured',
      verdict: 'not measured',
    });
  return goals;
}

/** Issue #17: the JS path's memory at 128 bulk streams stays near the plain relay's (the slab budget). */
function loadGoal(r: Pick<BenchResults, 'scenarios'>, goals: Goal[]): void {
  const point = r.scenarios['load-128'];
  const spread = (subject: string): (Spread & { median: number }) | undefined => {
    const runs = point?.[subject]?.runs;
    const growth = runs?.map((m) => Number(m.extra?.rssGrowthMiB ?? Number.NaN)).filter(Number.isFinite) ?? [];
    if (!runs || growth.length === 0) return undefined;
    const sorted = [...growth].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    const median =
      sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
    return { runs, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, median };
  };
  const rx = spread('rx');
  const plain = spread('plain');
  const goal = 'JS path RSS growth at 128 bulk streams ≤ 1.5 × Node pipe() relay';
  if (!rx || !plain) {
    goals.push({ goal, measured: 'not measured', verdict: 'not measured' });
    return;
  }
  goals.push({
    goal,
    measured: `load-128: ${(rx.median / plain.median).toFixed(2)}× (${fmt(rx.median)} vs ${fmt(plain.median)} MiB)`,
    verdict: goalVerdict(rx, plain, 1.5, true),
  });
}
