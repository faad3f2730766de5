/**
 * The shape of a benchmark run's results (results.json), shared by the runner, the
 * report and the chart, so that none of them imports another for its types.
 */
import type { MachineInfo } from './proc';
import type { Measurement, ScenarioName, Settings } from './scenarios';

export type Verdict = 'met' | 'missed' | 'within noise' | 'too few runs' | 'not measured';

export interface Goal {
  goal: string;
  measured: string;
  verdict: Verdict;
}

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
  /** `bench --middleware`: the user's chain (subject 'user'), its short name and the module as given. */
  chain?: { name: string; module: string };
  scenarios: Partial<Record<ScenarioName, Record<string, SubjectSummary>>>;
  goals: Goal[];
  durationSeconds: number;
  /** Hand-written Markdown about this run (--findings). */
  findings?: string;
}
