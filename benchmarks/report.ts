import type { MachineInfo } from './proc';
import { SCENARIO_INFO, type Measurement, type ScenarioName, type Settings } from './scenarios';

export interface SubjectSummary {
  runs: Measurement[];
  median: number;
  min: number;
  max: number;
  cpuPercentMedian?: number;
  rssMedian?: number;
  /** connrate: median of the runs' p50 and p99 latencies, ms. */
  p50Ms?: number;
  p99Ms?: number;
}

export interface BenchResults {
  version: 1;
  date: string;
  mode: 'quick' | 'full' | 'custom';
  command: string;
  note: string | undefined;
  machine: MachineInfo;
  tools: Record<string, string | undefined>;
  generator: 'iperf3' | 'node';
  settings: Settings & { runs: number; highWaterMark: number };
  subjects: { name: string; label: string; status: 'ok' | 'unavailable'; reason?: string }[];
  scenarios: Partial<Record<ScenarioName, Record<string, SubjectSummary>>>;
  goals: Goal[];
  durationSeconds: number;
  /** Hand-written Markdown about this run (--findings). */
  findings?: string;
}

export interface Goal {
  goal: string;
  measured: string;
  met: boolean | undefined;
}

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

const fmt = (v: number | undefined, digits = 2): string =>
  v === undefined || !Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(digits);

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : undefined;
}

/** The issue's goals, each stated whether or not it was met (undefined: not measured in this run). */
export function evaluateGoals(r: Pick<BenchResults, 'scenarios' | 'settings'>): Goal[] {
  const med = (scenario: ScenarioName, subject: string): number | undefined => r.scenarios[scenario]?.[subject]?.median;
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
    let met: boolean | undefined;
    for (const s of scenarios) {
      const q = ratio(med(s, a), med(s, b));
      if (q === undefined) continue;
      parts.push(`${s}: ${q.toFixed(2)}×`);
      const ok = lower ? q <= factor : q >= factor;
      met = (met ?? true) && ok;
    }
    goals.push({ goal, measured: parts.length ? parts.join(', ') : 'not measured', met });
  };
  const bulk: ScenarioName[] = ['bulk-up', 'bulk-down', 'streams-64'];
  compare('zero-copy ≥ HAProxy with splice (throughput)', bulk, 'rx-zc', 'haproxy-splice', 1);
  compare('JS path, no middleware ≥ Node pipe() relay (throughput)', bulk, 'rx', 'plain', 1);
  compare('3 pass-through operators ≥ 0.9 × JS no middleware (throughput)', bulk, 'rx-map3', 'rx', 0.9);
  compare('connection rate ≥ 0.9 × Node pipe() relay', ['connrate'], 'rx', 'plain', 0.9);
  compare('RSS per idle connection ≤ 1.2 × Node pipe() relay', ['idle-rss'], 'rx', 'plain', 1.2, true);
  if (Object.values(r.scenarios).some((s) => s?.user)) {
    compare('your chain ≥ 0.9 × rxredirect with no middleware', [...bulk, 'connrate'], 'user', 'rx', 0.9);
    compare('your chain: RSS per idle connection ≤ 1.2 × Node pipe() relay', ['idle-rss'], 'user', 'plain', 1.2, true);
  }

  // Bounded: the relay never held more than the high-water mark plus one read (64 KiB) in
  // one direction (its own peakBuffered), and its RSS grew no more than twice the plain
  // relay's plus twice the mark (RSS over a few seconds is mostly garbage not yet collected).
  const slow = r.scenarios['slow-reader'];
  const hwm = r.settings.highWaterMark;
  const rx = slow?.rx ?? slow?.user;
  if (rx) {
    const peak = Math.max(...rx.runs.map((m) => Number(m.extra?.peakBuffered ?? Number.NaN)));
    const plainGrowth = slow?.plain?.median;
    const limitMiB = 2 * Math.max(0, plainGrowth ?? 0) + (2 * hwm) / 1048576;
    const bufferedOk = Number.isFinite(peak) ? peak <= hwm + 65536 : undefined;
    const rssOk = rx.median <= limitMiB;
    goals.push({
      goal: `slow-reader growth bounded by highWaterMark (${hwm / 1024} KiB)`,
      measured: `peakBuffered ${Number.isFinite(peak) ? `${(peak / 1024).toFixed(0)} KiB` : 'n/a'} (limit ${hwm / 1024 + 64} KiB); RSS growth ${fmt(rx.median)} MiB vs plain relay ${fmt(plainGrowth)} MiB (limit ${fmt(limitMiB)} MiB)`,
      met: bufferedOk === undefined ? rssOk : bufferedOk && rssOk,
    });
  } else goals.push({ goal: 'slow-reader growth bounded by highWaterMark', measured: 'not measured', met: undefined });
  return goals;
}

/** Close reasons of a normal end (the slow-reader run resets the reader on purpose). */
const GRACEFUL = new Set(['client-end', 'upstream-end', 'upstream-reset', 'client-reset']);

const mib = (b: number): string => `${(b / 1048576).toFixed(0)} MiB`;

export function renderMarkdown(r: BenchResults, svgName: string): string {
  const m = r.machine;
  const loaded = m.loadAverage[0] !== undefined && m.loadAverage[0] > m.cpus * 0.25;
  const lines: string[] = [
    '# Benchmarks',
    '',
    `Generated by \`${r.command}\` on ${r.date} in **${r.mode} mode** (${r.settings.runs} runs per subject, ${r.durationSeconds.toFixed(0)} s in all).`,
    '',
  ];
  if (loaded || r.note) {
    lines.push(
      `> **Measured under load.** ${r.note ?? ''} Load average at the start: ${m.loadAverage.map((l) => l.toFixed(2)).join(' ')} on ${m.cpus} CPUs. Absolute figures are disturbed; compare subjects of the same run (they were interleaved run by run), not runs across machines.`,
      '',
    );
  }
  lines.push(
    '## Machine',
    '',
    `- CPUs: ${m.cpus} × ${m.cpuModel}`,
    `- Memory: ${mib(m.memoryBytes)}`,
    `- Kernel: Linux ${m.kernel}`,
    `- Node: ${m.node}`,
    `- Tools: ${Object.entries(r.tools)
      .map(([k, v]) => `${k} ${v ?? 'not installed'}`)
      .join(', ')}`,
    `- Load generator: ${r.generator === 'iperf3' ? 'iperf3 (`-J`, client and server as child processes; control connection through the relay too) for throughput' : 'Node generator (benchmarks/peer.ts, 1 MiB writes and reads) for throughput'}; Node generator (benchmarks/peer.ts, its own process) for connection rate and memory`,
    '',
    '## Goals',
    '',
    '| Goal | Measured (ratio of medians) | Met |',
    '| --- | --- | --- |',
    ...r.goals.map(
      (g) => `| ${g.goal} | ${g.measured} | ${g.met === undefined ? 'not measured' : g.met ? 'yes' : '**no**'} |`,
    ),
    '',
  );
  if (r.findings?.trim()) {
    lines.push(
      '## Findings',
      '',
      '_Written by hand about this run (`--findings`); the figures they rest on are in the tables below or named where they come from._',
      '',
      r.findings.trim(),
      '',
    );
  }
  lines.push(`![chart](${svgName})`, '', '## Results', '');
  for (const [name, bySubject] of Object.entries(r.scenarios) as [ScenarioName, Record<string, SubjectSummary>][]) {
    const info = SCENARIO_INFO[name];
    const plain = bySubject.plain?.median;
    const direct = bySubject.direct?.median;
    const latency = name === 'connrate';
    lines.push(
      `### ${info.title}`,
      '',
      `| Subject | median ${info.unit} | min–max | × plain relay | × direct | relay CPU % | relay RSS${latency ? ' | p50 ms | p99 ms | added p50/p99 ms' : ''} |`,
      `| --- | ---: | ---: | ---: | ---: | ---: | ---:${latency ? ' | ---: | ---: | ---:' : ''} |`,
    );
    for (const [subject, s] of Object.entries(bySubject)) {
      const label = r.subjects.find((x) => x.name === subject)?.label ?? subject;
      const row = [
        label,
        fmt(s.median),
        `${fmt(s.min)}–${fmt(s.max)}`,
        fmt(ratio(s.median, plain)),
        fmt(ratio(s.median, direct)),
        fmt(s.cpuPercentMedian, 0),
        s.rssMedian === undefined ? '–' : mib(s.rssMedian),
      ];
      if (latency) {
        const d = bySubject.direct;
        row.push(
          fmt(s.p50Ms),
          fmt(s.p99Ms),
          d?.p50Ms !== undefined && s.p50Ms !== undefined && d.p99Ms !== undefined && s.p99Ms !== undefined
            ? `${fmt(s.p50Ms - d.p50Ms)} / ${fmt(s.p99Ms - d.p99Ms)}`
            : '–',
        );
      }
      lines.push(`| ${row.join(' | ')} |`);
    }
    lines.push('');
    for (const [subject, s] of Object.entries(bySubject)) {
      const faults: Record<string, number> = {};
      let clientErrors = 0;
      for (const run of s.runs) {
        clientErrors += Number(run.extra?.errors ?? run.extra?.clientErrors ?? 0);
        const reasons = (run.extra?.reasons ?? {}) as Record<string, number>;
        for (const [reason, n] of Object.entries(reasons)) {
          if (!GRACEFUL.has(reason)) faults[reason] = (faults[reason] ?? 0) + n;
        }
      }
      const paths = s.runs.at(-1)?.extra?.paths as Record<string, number> | undefined;
      if (paths && Object.keys(paths).length && subject !== 'plain') {
        const carried = Object.entries(paths)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ');
        lines.push(`- **${subject}**: connections by data path (last run, cumulative): ${carried}.`);
      }
      const list = Object.entries(faults).map(([k, n]) => `${n} ${k}`);
      if (clientErrors) list.push(`${clientErrors} failed on the client side`);
      if (list.length)
        lines.push(`- **${subject}**: connections that did not complete over all runs: ${list.join(', ')}.`);
    }
    if (lines[lines.length - 1] !== '') lines.push('');
  }
  const skipped = r.subjects.filter((s) => s.status === 'unavailable');
  if (skipped.length) {
    lines.push('Not run here: ', ...skipped.map((s) => `- ${s.label}: ${s.reason ?? ''}`), '');
  }
  const st = r.settings;
  lines.push(
    '## Method',
    '',
    `- Throughput: ${st.generator !== 'iperf3' ? `${st.seconds} s` : st.iperfBytes !== undefined ? `iperf3 -n ${st.iperfBytes / 1048576} MiB (×2 for 64 streams)` : `iperf3 -t ${Math.max(1, Math.round(st.seconds))}`} per run; 64-stream runs use \`-P 64\`; server → client uses \`-R\`.`,
    `- Connection rate: ${st.concurrency} concurrent clients, each connects, sends ${st.requestBytes} bytes, waits for the echo, ends, and starts again after close; ${st.connrateSeconds} s per run, after one unrecorded warm-up pass over every subject. Latency is connect → echo received; "added" is against direct.`,
    `- Idle RSS: ${st.idleConnections} connections opened through the relay and held idle; (VmRSS after − before) / connections, fresh relay process per run. "Before" and "after" are read once the Node relays (plain and rxredirect alike) have run a full garbage collection, so the garbage of the accept burst is not counted as memory per connection; the figure before it is in the JSON (\`kibPerConnectionBeforeGc\`).`,
    `- Slow reader: one connection written as fast as possible for ${st.slowSeconds} s to a peer reading ${(st.slowRateBytes / 1048576).toFixed(0)} MiB/s; peak VmRSS − VmRSS before. rxredirect reports its own peakBuffered (bytes held between the sockets), to compare with \`limits.highWaterMark\` = ${st.highWaterMark / 1024} KiB.`,
    '- Every subject runs in its own process; CPU is utime+stime (+ reaped children, for socat) from /proc/<pid>/stat over the run, in % of one core; RSS is VmRSS at the end of the run (for socat, plus the proportional set size, Pss, of its live forked children). Subjects are interleaved within each run so background load spreads over all of them. HAProxy runs with `nbthread 1`, like the single-threaded Node relays.',
    '- Ratios are of medians. Ratios on a 2-core machine include the load generator competing with the relay for CPU.',
    '',
    '## Running it',
    '',
    '```sh',
    'npm run bench                 # every scenario, 5 runs each (about 20 minutes)',
    'npm run bench -- --quick      # under 2 minutes with all 8 subjects: shorter runs, fewer idle connections',
    'npm run bench -- --quick --report docs/benchmarks.md   # regenerate this page',
    'npm run bench -- --subjects plain,rx --scenarios bulk-up,connrate --runs 3',
    '```',
    '',
    'Results go to `benchmarks/results/` (gitignored): `bench-<date>.json` with every run, plus `report.md` and `report.svg` unless `--report` names another place. `--generator node` forces the Node load generator when iperf3 is installed.',
    '',
    '## Benchmarking your own middleware',
    '',
    '```sh',
    'npx rxredirect bench --middleware ./my-chain.js [--quick]',
    '```',
    '',
    '`./my-chain.js` exports `middleware: Middleware[]` (or a default export: an array or one middleware). The same scenarios run against direct, the Node `pipe()` relay, rxredirect with no middleware and rxredirect with your chain, and the report (in `./benchmarks/results/` of the current directory) gives your chain as a ratio of each. Your chain must pass bytes through unchanged in length for the throughput figures to mean anything (a chain that drops or delays bytes measures that instead).',
    '',
  );
  return lines.join('\n');
}
