// `npm run bench` / `rxredirect bench`: every subject through every scenario, side by side.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_LIMITS } from '../lib/index';
import { loadMiddleware } from './chain';
import { curvePoint, idleRoomMissing, raiseFdLimit } from './load';
import { hasLoadPoints, renderLoadSvg } from './load-report';
import { machineInfo } from './proc';
import { renderSvg } from './chart';
import { FAULTS_QUICK, runFaultsBench } from './faults';
import { evaluateGoals } from './goals';
import { chartTitle, loadSvgName, renderMarkdown, summarise } from './report';
import type { BenchResults, SubjectSummary } from './results';
import { labelOf } from './report-sections';
import { chainComparisons, chainName, isUserRun } from './user-report';
import {
  measure,
  Peers,
  SCENARIO_INFO,
  SCENARIOS,
  type Measurement,
  type ScenarioName,
  scenarioTarget,
  type Settings,
} from './scenarios';
import {
  ALL_SUBJECTS,
  type RunningSubject,
  type SubjectSpec,
  startSubject,
  toolVersion,
  userSubjects,
  which,
  withBaseline,
} from './subjects';

export interface BenchOptions {
  quick?: boolean;
  runs?: number;
  /** Subject names (see ALL_SUBJECTS); default all. */
  subjects?: string[];
  scenarios?: ScenarioName[];
  /** A user's chain module: runs it against the references instead of the built-in subjects. */
  middleware?: string;
  /** Another build's dist/lib: every rxredirect subject also runs from it (before/after in one run). */
  baseline?: string;
  /** The chain's name in the report (default: the module's file name). */
  name?: string;
  generator?: 'auto' | 'iperf3' | 'node';
  /** Directory for the JSON (and the report unless `report` is given). */
  outDir?: string;
  /** Where to write the Markdown report; the SVG goes next to it. */
  report?: string;
  /** Overrides of the mode's settings (tests use tiny ones). */
  settings?: Partial<Settings>;
  /** A sentence for the report, e.g. "other builds were running". */
  note?: string;
  /** A Markdown file of hand-written findings, shown after the goals. */
  findings?: string;
  /** Re-render the report of an earlier run from its JSON instead of measuring. */
  render?: string;
  command?: string;
  log?: (line: string) => void;
}

export const BENCH_USAGE = `rxredirect bench [--quick] [--middleware FILE] [options]

  --quick               short runs (under 2 minutes with every subject) instead of the full set
  --middleware FILE     benchmark your chain: FILE exports \`middleware: Middleware[]\` or a default
  --name NAME           your chain's name in the report (default: FILE's name, e.g. chain.js)
  --runs N              runs per subject (default 3 quick, 5 full; at least 3 for min–max)
  --subjects A,B        subjects to run (${ALL_SUBJECTS.map((s) => s.name).join(', ')})
  --scenarios A,B       scenarios to run (${SCENARIOS.join(', ')})
  --generator G         auto (iperf3 when installed), iperf3 or node
  --out DIR             results directory (default ./benchmarks/results)
  --report FILE         write the Markdown report there (SVG next to it) instead of DIR/report.md
  --note TEXT           a sentence for the report (e.g. what else was running)
  --findings FILE       Markdown written by hand about the results, shown after the goals
  --render RESULTS.json write the report of an earlier run (with --report, --findings) without measuring
  --baseline DIR        also run every rxredirect subject from another build's dist/lib (name-base)`;

// Quick: throughput dominates (3 scenarios × 3 runs × subjects), so iperf3 moves a fixed
// amount (-n; 512 MiB is 0.2–0.6 s here) instead of its shortest timed run (1 s).
const QUICK: Omit<Settings, 'generator'> = {
  seconds: 1,
  iperfBytes: 512 * 1024 * 1024,
  connrateSeconds: 0.5,
  concurrency: 50,
  requestBytes: 64,
  idleConnections: 500,
  slowSeconds: 0.5,
  slowRateBytes: 5 * 1024 * 1024,
};
const FULL: Omit<Settings, 'generator'> = {
  seconds: 5,
  connrateSeconds: 5,
  concurrency: 50,
  requestBytes: 64,
  idleConnections: 5000,
  slowSeconds: 5,
  slowRateBytes: 5 * 1024 * 1024,
};

/** Parses `bench` arguments; throws (ERR_PARSE_ARGS_… or a plain Error) on bad usage. */
export function parseBenchArgs(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      quick: { type: 'boolean' },
      middleware: { type: 'string' },
      name: { type: 'string' },
      runs: { type: 'string' },
      subjects: { type: 'string' },
      scenarios: { type: 'string' },
      generator: { type: 'string' },
      out: { type: 'string' },
      report: { type: 'string' },
      note: { type: 'string' },
      findings: { type: 'string' },
      render: { type: 'string' },
      baseline: { type: 'string' },
    },
  });
  const options: BenchOptions = { quick: values.quick ?? false };
  if (values.middleware !== undefined) options.middleware = values.middleware;
  if (values.name !== undefined) {
    if (values.middleware === undefined) throw new Error('--name names a --middleware chain');
    // It goes into a chart label, a Markdown table and a code span.
    if (!/^[^\p{Cc}`|]{1,64}$/u.test(values.name) || !values.name.trim()) {
      throw new Error('--name must be 1 to 64 printable characters, without ` or |');
    }
    options.name = values.name;
  }
  if (values.runs !== undefined) {
    const runs = Number(values.runs);
    if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got "${values.runs}"`);
    options.runs = runs;
  }
  if (values.subjects !== undefined) {
    const known = values.middleware !== undefined ? ['direct', 'plain', 'rx', 'user'] : ALL_SUBJECTS.map((s) => s.name);
    options.subjects = values.subjects.split(',');
    for (const name of options.subjects) {
      if (!known.includes(name)) throw new Error(`unknown subject "${name}" (known: ${known.join(', ')})`);
    }
  }
  if (values.scenarios !== undefined) {
    const list = values.scenarios.split(',');
    for (const s of list) {
      if (!SCENARIOS.includes(s as ScenarioName))
        throw new Error(`unknown scenario "${s}" (known: ${SCENARIOS.join(', ')})`);
    }
    options.scenarios = list as ScenarioName[];
  }
  if (values.generator !== undefined) {
    if (!['auto', 'iperf3', 'node'].includes(values.generator))
      throw new Error('--generator must be auto, iperf3 or node');
    options.generator = values.generator as BenchOptions['generator'];
  }
  if (values.out !== undefined) options.outDir = values.out;
  if (values.report !== undefined) options.report = values.report;
  if (values.note !== undefined) options.note = values.note;
  if (values.findings !== undefined) options.findings = values.findings;
  if (values.render !== undefined) options.render = values.render;
  if (values.baseline !== undefined) options.baseline = values.baseline;
  return options;
}

function chooseSubjects(options: BenchOptions): SubjectSpec[] {
  if (options.middleware !== undefined) {
    loadMiddleware(options.middleware); // fail now, not in every child
    const list = userSubjects(resolve(options.middleware), options.name);
    return options.subjects ? list.filter((s) => options.subjects?.includes(s.name)) : list;
  }
  if (!options.subjects) return [...ALL_SUBJECTS];
  for (const name of options.subjects) {
    if (!ALL_SUBJECTS.some((s) => s.name === name)) {
      throw new Error(`unknown subject "${name}" (known: ${ALL_SUBJECTS.map((s) => s.name).join(', ')})`);
    }
  }
  return ALL_SUBJECTS.filter((s) => options.subjects?.includes(s.name));
}

export async function runBench(
  options: BenchOptions = {},
): Promise<{ results: BenchResults; jsonPath: string; reportPath: string; svgPath: string }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (options.render !== undefined) return renderOnly(options, log);
  const started = Date.now();
  const generator =
    options.generator === 'node' ? 'node' : options.generator === 'iperf3' || which('iperf3') ? 'iperf3' : 'node';
  if (generator === 'iperf3' && !which('iperf3')) throw new Error('--generator iperf3: iperf3 is not installed');
  const settings: Settings = { ...(options.quick ? QUICK : FULL), generator, ...options.settings };
  const runs = options.runs ?? (options.quick ? 3 : 5);
  const scenarios = options.scenarios ?? [...SCENARIOS];
  const chosen = chooseSubjects(options);
  const specs = options.baseline !== undefined ? withBaseline(chosen, resolve(options.baseline)) : chosen;
  const highWaterMark = DEFAULT_LIMITS.highWaterMark;
  const machine = machineInfo();
  const results: BenchResults = {
    version: 1,
    date: new Date().toISOString(),
    mode: options.settings ? 'custom' : options.quick ? 'quick' : 'full',
    command:
      options.command ??
      `node ${process.argv
        .slice(1)
        .map((a) => a.replace(`${process.cwd()}/`, ''))
        .map((a) => (/[\s"'$]/.test(a) ? `'${a.replace(/'/g, `'\\''`)}'` : a))
        .join(' ')}`,
    note: options.note,
    machine,
    tools: { haproxy: toolVersion('haproxy'), socat: toolVersion('socat'), iperf3: toolVersion('iperf3') },
    generator,
    settings: { ...settings, runs, highWaterMark },
    subjects: specs.map((s) => ({ name: s.name, label: s.label, status: 'ok' })),
    ...(options.middleware !== undefined
      ? { chain: { name: options.name ?? basename(options.middleware), module: options.middleware } }
      : {}),
    scenarios: {},
    goals: [],
    durationSeconds: 0,
  };
  const unavailable = (name: string, reason: string): void => {
    const entry = results.subjects.find((s) => s.name === name);
    if (entry && entry.status === 'ok') {
      entry.status = 'unavailable';
      entry.reason = reason;
      log(`  ${name}: not available (${reason})`);
    }
  };
  log(
    `rxredirect bench: ${results.mode} mode, ${runs} runs, generator ${generator}, load average ${machine.loadAverage.join(' ')} on ${machine.cpus} CPUs`,
  );
  let iperfPort = 5201 + (process.pid % 1000);

  for (const scenario of scenarios) {
    const info = SCENARIO_INFO[scenario];
    // Quick mode runs the cost-against-load points once (10,000 idle connections not at all,
    // unless asked for by name); full mode runs every scenario `runs` times.
    const quickRuns = options.scenarios?.includes(scenario) ? Math.max(1, info.quickRuns ?? runs) : info.quickRuns;
    const scenarioRuns = options.runs ?? (options.quick ? (quickRuns ?? runs) : runs);
    if (scenarioRuns === 0) {
      log(`${scenario}: full mode only (skipped)`);
      continue;
    }
    const point = curvePoint(scenario);
    const noRoom = point?.kind === 'idle' ? idleRoomMissing(point.count) : undefined;
    if (noRoom !== undefined) {
      log(`${scenario}: skipped: ${noRoom}`);
      continue;
    }
    log(`${scenario}: ${info.title}`);
    const peers = new Peers();
    const runsBySubject = new Map<string, Measurement[]>();
    try {
      const target = await scenarioTarget(scenario, peers, settings, iperfPort++);
      const eligible = specs.filter(
        (s) =>
          !(info.memory && s.kind === 'direct') &&
          // socat forks a process per connection (10,000 would measure the machine); HAProxy
          // runs with maxconn 7000.
          !(point?.kind === 'idle' && point.count > 1000 && (s.kind === 'socat' || s.kind === 'haproxy')) &&
          results.subjects.find((x) => x.name === s.name)?.status === 'ok',
      );
      const start = async (spec: SubjectSpec): Promise<RunningSubject | undefined> => {
        let r: Awaited<ReturnType<typeof startSubject>>;
        try {
          r = await startSubject(spec, target, { highWaterMark });
        } catch (err) {
          r = { unavailable: `failed to start: ${(err as Error).message}` };
        }
        if ('unavailable' in r) {
          unavailable(spec.name, r.unavailable);
          return undefined;
        }
        // Two descriptors per idle connection: past the usual soft limit at 10,000.
        if (point?.kind === 'idle' && !raiseFdLimit(r, 4 * point.count + 1024)) {
          log(`  ${spec.name}: could not raise its descriptor limit (not root?)`);
        }
        return r;
      };
      // Throughput and rate: one process per subject for the whole scenario; memory and the
      // cost-against-load points: a fresh one per run.
      const fresh = info.memory || info.fresh === true;
      const running = new Map<string, RunningSubject>();
      if (!fresh) {
        for (const spec of eligible) {
          const r = await start(spec);
          if (r) running.set(spec.name, r);
        }
      }
      try {
        // Connection rate: one unrecorded pass first, so neither the generator nor a
        // relay is measured while its JIT is still cold (the first pass ran ~half speed).
        if (scenario === 'connrate' || scenario === 'latency-c1') {
          for (const spec of eligible) {
            const subject = running.get(spec.name);
            if (!subject) continue;
            try {
              await measure(scenario, subject, peers, settings);
            } catch {
              // a failing subject shows in the recorded runs
            }
          }
          log('  warm-up pass done (not recorded)');
        }
        for (let run = 1; run <= scenarioRuns; run++) {
          for (const spec of eligible) {
            let subject = running.get(spec.name);
            const own = fresh ? await start(spec) : undefined;
            if (fresh) subject = own;
            if (!subject) continue;
            try {
              const m = await measure(scenario, subject, peers, settings);
              const list = runsBySubject.get(spec.name) ?? [];
              list.push(m);
              runsBySubject.set(spec.name, list);
              const extra =
                scenario === 'connrate' || scenario === 'latency-c1'
                  ? ` p50 ${m.extra?.p50Ms !== undefined ? Number(m.extra.p50Ms).toFixed(2) : '?'} ms p99 ${m.extra?.p99Ms !== undefined ? Number(m.extra.p99Ms).toFixed(2) : '?'} ms`
                  : '';
              const cpu = m.cpuPercent !== undefined ? `, relay CPU ${m.cpuPercent.toFixed(0)}%` : '';
              const cost =
                m.extra?.fdsPeak !== undefined
                  ? `, RSS +${Number(m.extra.rssGrowthMiB ?? m.value).toFixed(1)} MiB, fds ${String(m.extra.fdsPeak)}`
                  : '';
              log(
                `  run ${run}/${scenarioRuns} ${spec.name.padEnd(15)} ${m.value.toFixed(2)} ${info.unit}${extra}${cpu}${cost}`,
              );
            } catch (err) {
              log(`  run ${run}/${scenarioRuns} ${spec.name.padEnd(15)} failed: ${(err as Error).message}`);
            } finally {
              if (own) await own.stop();
            }
          }
        }
      } finally {
        for (const r of running.values()) await r.stop();
      }
    } finally {
      await peers.stop();
    }
    const summary: Record<string, SubjectSummary> = {};
    for (const spec of specs) {
      const list = runsBySubject.get(spec.name);
      if (list?.length) summary[spec.name] = summarise(list);
    }
    results.scenarios[scenario] = summary;
  }

  results.goals = evaluateGoals(results);
  results.durationSeconds = (Date.now() - started) / 1000;
  if (options.findings !== undefined) results.findings = readFileSync(options.findings, 'utf8');
  const outDir = resolve(options.outDir ?? join(process.cwd(), 'benchmarks', 'results'));
  mkdirSync(outDir, { recursive: true });
  const jsonPath = join(outDir, `bench-${results.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  return writeReport(results, jsonPath, options, outDir, log);
}

function writeReport(
  results: BenchResults,
  jsonPath: string,
  options: BenchOptions,
  outDir: string,
  log: (line: string) => void,
): { results: BenchResults; jsonPath: string; reportPath: string; svgPath: string } {
  const reportPath = resolve(options.report ?? join(outDir, 'report.md'));
  const svgPath = `${reportPath.replace(/\.md$/, '')}.svg`;
  mkdirSync(dirname(reportPath), { recursive: true });
  writeFileSync(svgPath, renderSvg(results, chartTitle(results)));
  if (hasLoadPoints(results)) writeFileSync(loadSvgName(svgPath), renderLoadSvg(results));
  writeFileSync(reportPath, renderMarkdown(results, basename(svgPath)));
  log(`results: ${jsonPath}\nreport:  ${reportPath} (chart ${svgPath})`);
  for (const g of results.goals) log(`goal ${g.verdict === 'missed' ? 'MISSED' : g.verdict}: ${g.goal}: ${g.measured}`);
  if (isUserRun(results)) {
    for (const c of chainComparisons(results)) {
      const parts = c.against.map(
        (a) => `${a.ratio?.toFixed(2) ?? '–'}× ${labelOf(results, a.subject)} (${a.comparison})`,
      );
      log(`${chainName(results)}, ${c.scenario}: ${parts.join(', ')}`);
    }
  }
  return { results, jsonPath, reportPath, svgPath };
}

/** --render: the report of an earlier run, from its JSON (findings replaced when given). */
function renderOnly(
  options: BenchOptions,
  log: (line: string) => void,
): { results: BenchResults; jsonPath: string; reportPath: string; svgPath: string } {
  const jsonPath = resolve(options.render as string);
  const results = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchResults;
  if (results?.version !== 1 || typeof results.scenarios !== 'object') {
    throw new Error(`${jsonPath} is not a results file of this harness`);
  }
  if (options.findings !== undefined) results.findings = readFileSync(options.findings, 'utf8');
  // Files of earlier versions labelled a user's chain with its module's path.
  const user = results.subjects.find((s) => s.name === 'user');
  if (user && !results.chain) {
    const module = user.label.replace(/^rxredirect with /, '');
    results.chain = { name: basename(module), module };
    user.label = results.chain.name;
  }
  // Verdicts are derived from the runs: files of earlier versions get today's rules.
  results.goals = evaluateGoals(results);
  return writeReport(results, jsonPath, options, dirname(jsonPath), log);
}

if (require.main === module) {
  let options: BenchOptions;
  try {
    options = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\nusage: ${BENCH_USAGE}\n`);
    process.exit(2);
  }
  // Every scenario (no --scenarios) also measures the fault toxics' own costs (docs/faults.md).
  const withFaults =
    options.scenarios === undefined && options.middleware === undefined && options.render === undefined;
  runBench(options)
    .then(async () => {
      if (!withFaults) return;
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      const { reportPath } = await runFaultsBench(
        FAULTS_QUICK,
        resolve(options.outDir ?? join('benchmarks', 'results')),
        log,
      );
      process.stdout.write(`${reportPath}\n`);
    })
    .then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
        process.exit(1);
      },
    );
}
