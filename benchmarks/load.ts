// Cost against load (issue #17): the same relay under 1, 16, 64 and 128 concurrent bulk streams
// and under 1,000 and 10,000 idle connections, with its throughput, peak RSS growth and
// descriptors read at each count, so the report can draw the curve rather than one point.
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { processTree, sleep, treeRssBytes } from './proc';
import type { RunningSubject } from './subjects';

/** The counts of the curve: bulk streams, and idle connections. */
export const BULK_COUNTS = [1, 16, 64, 128] as const;
export const IDLE_COUNTS = [1000, 10000] as const;

export type LoadScenario = `load-${(typeof BULK_COUNTS)[number]}` | `idle-${(typeof IDLE_COUNTS)[number]}`;

export const LOAD_SCENARIOS: readonly LoadScenario[] = [
  ...BULK_COUNTS.map((n) => `load-${n}` as const),
  ...IDLE_COUNTS.map((n) => `idle-${n}` as const),
];

/** The curve a scenario is a point of: which kind, and its count. */
export function curvePoint(name: string): { kind: 'bulk' | 'idle'; count: number } | undefined {
  const m = /^(load|idle)-(\d+)$/.exec(name);
  return m ? { kind: m[1] === 'load' ? 'bulk' : 'idle', count: Number(m[2]) } : undefined;
}

/** Open descriptors of a process and its live descendants (socat's forked children). */
export function treeFds(pid: number): number {
  let n = 0;
  for (const p of processTree(pid)) {
    try {
      n += readdirSync(`/proc/${p}/fd`).length;
    } catch {}
  }
  return n;
}

/** Peak RSS and descriptors of a relay while `work` runs, sampled every 50 ms. */
export async function sampled<T>(
  pid: number | undefined,
  work: () => Promise<T>,
): Promise<{ result: T; rssBefore: number; rssPeak: number; fdsBefore: number; fdsPeak: number }> {
  const rssBefore = pid ? treeRssBytes(pid) : Number.NaN;
  const fdsBefore = pid ? treeFds(pid) : Number.NaN;
  let rssPeak = rssBefore;
  let fdsPeak = fdsBefore;
  const sample = (): void => {
    if (!pid) return;
    rssPeak = Math.max(rssPeak, treeRssBytes(pid));
    fdsPeak = Math.max(fdsPeak, treeFds(pid));
  };
  const timer = setInterval(sample, 50);
  try {
    const result = await work();
    sample();
    return { result, rssBefore, rssPeak, fdsBefore, fdsPeak };
  } finally {
    clearInterval(timer);
  }
}

/** iperf3 with `streams` parallel streams through `port`: bits per second and bytes received. */
export function iperfStreams(
  port: number,
  streams: number,
  length: string[],
  timeoutMs: number,
): Promise<{ bps: number; bytes: number }> {
  const args = ['-c', '127.0.0.1', '-p', String(port), ...length, '-J', '-P', String(streams)];
  const once = (): Promise<{ bps: number; bytes: number }> =>
    new Promise((resolve, reject) => {
      execFile('iperf3', args, { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
        let json: { error?: string; end?: { sum_received?: { bits_per_second?: number; bytes?: number } } } = {};
        try {
          json = JSON.parse(stdout) as typeof json;
        } catch {}
        const bps = json.end?.sum_received?.bits_per_second;
        if (typeof bps === 'number') resolve({ bps, bytes: json.end?.sum_received?.bytes ?? Number.NaN });
        else reject(new Error(`iperf3 -P ${streams}: ${json.error ?? err?.message ?? 'no result'}`));
      });
    });
  // The iperf3 server refuses a test for a moment after the previous one ends.
  return once().catch(() => sleep(1000).then(once));
}

/**
 * Raises a relay's descriptor limit for 10,000 idle connections (two descriptors each, more
 * than the usual 20,000 soft limit allows). Root only; false when it could not.
 */
export function raiseFdLimit(subject: RunningSubject, fds: number): boolean {
  if (!subject.pid) return true;
  try {
    for (const pid of processTree(subject.pid)) {
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${fds}:${fds}`], { stdio: 'ignore' });
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Why `count` idle connections cannot be measured here, or undefined: a relay needs two
 * descriptors per connection, and raising a hard limit takes CAP_SYS_RESOURCE.
 */
export function idleRoomMissing(count: number): string | undefined {
  const needed = 2 * count + 256;
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  if (hard === undefined || hard === 'unlimited' || Number(hard) >= needed) return undefined;
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${needed}:${needed}`], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `a relay needs about ${needed} descriptors and the hard limit here is ${hard} (raising it needs CAP_SYS_RESOURCE)`;
  }
}
