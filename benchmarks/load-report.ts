// The cost-against-load part of the report: tables and a line chart of throughput, peak RSS
// growth and descriptors against the number of bulk streams, and the idle points.
import { SUBJECT_COLOURS } from './chart';
import { BULK_COUNTS, curvePoint, IDLE_COUNTS } from './load';
import type { BenchResults } from './results';
import type { ScenarioName } from './scenarios';

type Metric = 'throughput' | 'rss' | 'fds' | 'cpu';

function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length === 0
    ? Number.NaN
    : v.length % 2
      ? (v[mid] as number)
      : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

const METRICS: Record<Metric, { title: string; unit: string }> = {
  throughput: { title: 'Throughput', unit: 'Gbit/s' },
  rss: { title: 'Peak RSS growth', unit: 'MiB' },
  fds: { title: 'Peak descriptors', unit: 'fds' },
  cpu: { title: 'Relay CPU per GiB moved', unit: 's' },
};

/** Whether this run measured any point of the curve. */
export function hasLoadPoints(r: BenchResults): boolean {
  return Object.keys(r.scenarios).some((name) => curvePoint(name) !== undefined);
}

/** Median of one metric for one subject at one point; undefined when not measured. */
function pointValue(r: BenchResults, scenario: string, subject: string, metric: Metric): number | undefined {
  const s = r.scenarios[scenario as ScenarioName]?.[subject];
  if (!s) return undefined;
  const idle = curvePoint(scenario)?.kind === 'idle';
  const pick = (m: (typeof s.runs)[number]): number =>
    metric === 'throughput'
      ? idle
        ? Number.NaN
        : m.value
      : metric === 'rss'
        ? idle
          ? m.value
          : Number(m.extra?.rssGrowthMiB ?? Number.NaN)
        : metric === 'fds'
          ? Number(m.extra?.fdsPeak ?? Number.NaN)
          : Number(m.extra?.cpuSecondsPerGiB ?? Number.NaN);
  const v = median(s.runs.map(pick));
  return Number.isFinite(v) ? v : undefined;
}

/** Subjects with at least one point, in the run's order. */
function curveSubjects(r: BenchResults): string[] {
  return r.subjects
    .map((s) => s.name)
    .filter((name) => Object.entries(r.scenarios).some(([sc, by]) => curvePoint(sc) && by?.[name]));
}

const cell = (v: number | undefined, base: number | undefined): string => {
  if (v === undefined) return '–';
  const text = v >= 100 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2);
  return base !== undefined && base > 0 ? `${text} (${(v / base).toFixed(2)}×)` : text;
};

export function loadSection(r: BenchResults, svgName: string): string[] {
  if (!hasLoadPoints(r)) return [];
  const label = (name: string): string => r.subjects.find((s) => s.name === name)?.label ?? name;
  const subjects = curveSubjects(r);
  const lines = [
    '## Cost against load',
    '',
    'The same relay under 1, 16, 64 and 128 concurrent bulk streams (iperf3 `-P N`, client → server) and under 1,000 and 10,000 idle connections, a fresh relay process for every run. Medians; in brackets the ratio to the Node `pipe()` relay at the same point.',
    '',
    `![cost against load](${svgName})`,
    '',
  ];
  const table = (title: string, points: string[], metric: Metric, head: (p: string) => string): void => {
    const present = points.filter((p) => r.scenarios[p as ScenarioName]);
    if (!present.length) return;
    lines.push(
      `### ${title}`,
      '',
      `| Subject | ${present.map(head).join(' | ')} |`,
      `| --- |${present.map(() => ' ---: |').join('')}`,
    );
    for (const s of subjects) {
      const row = present.map((p) => cell(pointValue(r, p, s, metric), pointValue(r, p, 'plain', metric)));
      if (row.every((c) => c === '–')) continue;
      lines.push(`| ${label(s)} | ${row.join(' | ')} |`);
    }
    lines.push('');
  };
  const bulk = BULK_COUNTS.map((n) => `load-${n}`);
  const idle = IDLE_COUNTS.map((n) => `idle-${n}`);
  const streams = (p: string): string => `${curvePoint(p)?.count} stream${curvePoint(p)?.count === 1 ? '' : 's'}`;
  const conns = (p: string): string => `${curvePoint(p)?.count.toLocaleString('en')} idle`;
  table('Throughput, Gbit/s', bulk, 'throughput', streams);
  table('Relay CPU seconds per GiB moved (steadier than Gbit/s on a loaded machine)', bulk, 'cpu', streams);
  table('Peak RSS growth while the streams run, MiB (peak VmRSS − VmRSS before)', bulk, 'rss', streams);
  table('Peak descriptors of the relay process (tree) while the streams run', bulk, 'fds', streams);
  table('Idle connections: RSS growth, MiB (after a full GC in the Node relays)', idle, 'rss', conns);
  table('Idle connections: descriptors of the relay process (tree)', idle, 'fds', conns);
  return lines;
}

const PANEL_W = 280;
const PANEL_H = 200;
const PAD = { left: 48, right: 12, top: 28, bottom: 30 };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Three panels (throughput, peak RSS growth, descriptors) against the number of bulk streams. */
export function renderLoadSvg(r: BenchResults): string {
  const subjects = curveSubjects(r);
  const points = BULK_COUNTS.filter((n) => r.scenarios[`load-${n}` as ScenarioName]);
  const out: string[] = [];
  const legendH = 20 * Math.ceil(subjects.length / 3) + 10;
  const width = 3 * PANEL_W + 20;
  const height = PANEL_H + legendH + 40;
  (['throughput', 'rss', 'fds'] as Metric[]).forEach((metric, i) => {
    const x0 = 10 + i * PANEL_W;
    const y0 = 30;
    const plotW = PANEL_W - PAD.left - PAD.right;
    const plotH = PANEL_H - PAD.top - PAD.bottom;
    const values = subjects.flatMap((s) => points.map((n) => pointValue(r, `load-${n}`, s, metric) ?? Number.NaN));
    const max = Math.max(1e-9, ...values.filter(Number.isFinite));
    const px = (k: number): number =>
      x0 + PAD.left + (points.length > 1 ? (k / (points.length - 1)) * plotW : plotW / 2);
    const py = (v: number): number => y0 + PAD.top + plotH - (v / max) * plotH;
    out.push(
      `<text x="${x0 + PAD.left}" y="${y0 + 14}" font-weight="bold">${esc(`${METRICS[metric].title} (${METRICS[metric].unit})`)}</text>`,
      `<line x1="${x0 + PAD.left}" y1="${y0 + PAD.top}" x2="${x0 + PAD.left}" y2="${y0 + PAD.top + plotH}" stroke="#000"/>`,
      `<line x1="${x0 + PAD.left}" y1="${y0 + PAD.top + plotH}" x2="${x0 + PAD.left + plotW}" y2="${y0 + PAD.top + plotH}" stroke="#000"/>`,
      `<text x="${x0 + PAD.left - 4}" y="${y0 + PAD.top + 4}" text-anchor="end">${max >= 100 ? max.toFixed(0) : max.toFixed(1)}</text>`,
      `<text x="${x0 + PAD.left - 4}" y="${y0 + PAD.top + plotH}" text-anchor="end">0</text>`,
    );
    points.forEach((n, k) => {
      out.push(`<text x="${px(k)}" y="${y0 + PAD.top + plotH + 16}" text-anchor="middle">${n}</text>`);
    });
    for (const s of subjects) {
      const pts = points
        .map((n, k) => [k, pointValue(r, `load-${n}`, s, metric)] as const)
        .filter((p): p is readonly [number, number] => p[1] !== undefined);
      if (!pts.length) continue;
      const base = s.replace(/-base$/, '');
      const colour = SUBJECT_COLOURS[base] ?? '#455a64';
      const dash = base !== s ? ' stroke-dasharray="5 3"' : '';
      out.push(
        `<polyline class="curve" data-subject="${esc(s)}" data-metric="${metric}" fill="none" stroke="${colour}" stroke-width="2"${dash} points="${pts.map(([k, v]) => `${px(k).toFixed(1)},${py(v).toFixed(1)}`).join(' ')}"/>`,
        ...pts.map(([k, v]) => `<circle cx="${px(k).toFixed(1)}" cy="${py(v).toFixed(1)}" r="2.5" fill="${colour}"/>`),
      );
    }
  });
  const label = (name: string): string => r.subjects.find((s) => s.name === name)?.label ?? name;
  subjects.forEach((s, i) => {
    const x = 10 + (i % 3) * PANEL_W;
    const y = PANEL_H + 50 + Math.floor(i / 3) * 20;
    const base = s.replace(/-base$/, '');
    const dash = base !== s ? ' stroke-dasharray="5 3"' : '';
    out.push(
      `<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${SUBJECT_COLOURS[base] ?? '#455a64'}" stroke-width="2"${dash}/>`,
      `<text x="${x + 28}" y="${y}">${esc(label(s))}</text>`,
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    '<title>rxredirect: cost against load (bulk streams)</title>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="18" font-size="13">Cost against load: x = concurrent bulk streams (client → server); medians of the runs</text>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}
