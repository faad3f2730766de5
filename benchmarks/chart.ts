// The report's chart: hand-written SVG, one block per scenario, a bar per subject (median)
// with a min–max whisker, a legend and a note saying what bars and whiskers are.
import { curvePoint } from './load';
import type { BenchResults, SubjectSummary } from './results';
import { SCENARIO_INFO, type ScenarioName } from './scenarios';

/**
 * One colour per subject, so no two bars of a chart share one. The user's chain is orange,
 * a hue no reference uses; rxredirect's own subjects are shades of magenta and purple,
 * HAProxy greens, the no-relay reference grey.
 */
export const SUBJECT_COLOURS: Readonly<Record<string, string>> = {
  direct: '#9e9e9e',
  plain: '#1976d2',
  rx: '#c2185b',
  'rx-map3': '#f48fb1',
  'rx-zc': '#6a1b9a',
  'haproxy-splice': '#2e7d32',
  haproxy: '#81c784',
  socat: '#8d6e63',
  user: '#ef6c00',
};
const OTHER_COLOUR = '#455a64';

const W = 860;
const LABEL_W = 250;
const BAR_W = 470;
const ROW_H = 18;
/** About what fits in LABEL_W at 12 px sans-serif (DejaVu Sans is the widest common default). */
const LABEL_CHARS = 32;
const CHAR_PX = 7;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A label that fits the label column: cut in the middle, where a name differs least. */
export function fitLabel(label: string, max = LABEL_CHARS): string {
  if (label.length <= max) return label;
  const head = Math.ceil((max - 1) / 2);
  return `${label.slice(0, head)}…${label.slice(label.length - (max - 1 - head))}`;
}

const value = (v: number): string => (!Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(2));

/** Short runs: figures to look at, not to decide on (see docs/benchmarks.md). */
export function isIndicative(r: Pick<BenchResults, 'mode' | 'settings'>): boolean {
  return r.mode !== 'full' || r.settings.runs < 3;
}

export function renderSvg(r: BenchResults, title: string): string {
  const out: string[] = [];
  const label = (name: string): string => r.subjects.find((x) => x.name === name)?.label ?? name;
  const charted = r.subjects.filter((s) =>
    Object.entries(r.scenarios).some(([name, by]) => !curvePoint(name) && by?.[s.name]),
  );

  // Legend: a swatch per subject in the chart, wrapping at the chart's width.
  let x = 10;
  let y = 20;
  for (const s of charted) {
    const text = s.name === 'user' ? `${fitLabel(s.label)} (your chain)` : fitLabel(s.label);
    const width = 18 + text.length * CHAR_PX + 16;
    if (x + width > W - 10 && x > 10) {
      x = 10;
      y += 18;
    }
    out.push(
      `<rect class="swatch" data-subject="${esc(s.name)}" x="${x}" y="${y - 10}" width="12" height="12" fill="${colourOf(s.name)}"/>`,
      `<text x="${x + 18}" y="${y}">${esc(text)}</text>`,
    );
    x += width;
  }
  y += 20;
  const runs = r.settings.runs;
  out.push(
    `<text class="note" x="10" y="${y}" fill="#444">Bar: median of ${runs} run${runs === 1 ? '' : 's'}; whisker: min–max of the runs.${isIndicative(r) ? ` ${r.mode === 'quick' ? 'Quick run' : 'Short run'}: indicative only.` : ''}</text>`,
  );
  y += 30;

  for (const [name, bySubject] of Object.entries(r.scenarios) as [ScenarioName, Record<string, SubjectSummary>][]) {
    if (curvePoint(name)) continue; // drawn as curves (load-report.ts)
    const info = SCENARIO_INFO[name];
    const rows = Object.entries(bySubject);
    const max = Math.max(...rows.map(([, s]) => s.max).filter(Number.isFinite), 1e-9);
    out.push(
      `<text x="10" y="${y}" font-weight="bold">${esc(info.title)} (${esc(info.unit)}, ${info.higherIsBetter ? 'higher' : 'lower'} is better)</text>`,
    );
    y += 8;
    for (const [subject, s] of rows) {
      const w = Number.isFinite(s.median) ? Math.max(0, (s.median / max) * BAR_W) : 0;
      const x0 = LABEL_W + (Number.isFinite(s.min) ? (Math.max(0, s.min) / max) * BAR_W : 0);
      const x1 = LABEL_W + (Number.isFinite(s.max) ? (Math.max(0, s.max) / max) * BAR_W : 0);
      const cy = y + ROW_H / 2;
      out.push(
        `<text x="${LABEL_W - 6}" y="${cy + 4}" text-anchor="end">${esc(fitLabel(label(subject)))}</text>`,
        `<rect class="bar" data-subject="${esc(subject)}" x="${LABEL_W}" y="${y + 2}" width="${w.toFixed(1)}" height="${ROW_H - 4}" fill="${colourOf(subject)}"/>`,
        `<line x1="${x0.toFixed(1)}" y1="${cy}" x2="${x1.toFixed(1)}" y2="${cy}" stroke="#000"/>`,
        `<line x1="${x0.toFixed(1)}" y1="${cy - 4}" x2="${x0.toFixed(1)}" y2="${cy + 4}" stroke="#000"/>`,
        `<line x1="${x1.toFixed(1)}" y1="${cy - 4}" x2="${x1.toFixed(1)}" y2="${cy + 4}" stroke="#000"/>`,
        `<text x="${LABEL_W + BAR_W + 10}" y="${cy + 4}">${value(s.median)}</text>`,
      );
      y += ROW_H;
    }
    y += 26;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${W}" height="${y}" fill="#fff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}

function colourOf(subject: string): string {
  return SUBJECT_COLOURS[subject] ?? OTHER_COLOUR;
}
