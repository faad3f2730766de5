import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { curvePoint, iperfStreams, LOAD_SCENARIOS, type LoadScenario, sampled, treeFds } from './load';
import { sleep, treeCpuSeconds as cpuSeconds, treeRssBytes as rssBytes, Worker } from './proc';
import type { RunningSubject } from './subjects';

export type ScenarioName =
  | 'bulk-up'
  | 'bulk-down'
  | 'streams-64'
  | 'connrate'
  | 'latency-c1'
  | 'idle-rss'
  | 'slow-reader'
  | LoadScenario;

export const SCENARIOS: readonly ScenarioName[] = [
  'bulk-up',
  'bulk-down',
  'streams-64',
  'connrate',
  'latency-c1',
  'idle-rss',
  'slow-reader',
  ...LOAD_SCENARIOS,
];

export interface ScenarioInfo {
  readonly title: string;
  readonly unit: string;
  /** Whether more is better (throughput) or worse (memory). */
  readonly higherIsBetter: boolean;
  /** Memory scenarios get a fresh relay process per run and have no direct subject. */
  readonly memory: boolean;
  /** A fresh relay process per run, direct included (the cost-against-load points). */
  readonly fresh?: boolean;
  /** Runs in quick mode (default: the mode's); 0 leaves the scenario to full mode. */
  readonly quickRuns?: number;
}

const loadInfo = (name: LoadScenario): ScenarioInfo => {
  const { kind, count } = curvePoint(name) as { kind: 'bulk' | 'idle'; count: number };
  return kind === 'bulk'
    ? {
        title: `Cost against load: ${count} concurrent bulk stream${count === 1 ? '' : 's'} client → server`,
        unit: 'Gbit/s',
        higherIsBetter: true,
        memory: false,
        fresh: true,
        quickRuns: 1,
      }
    : {
        title: `Cost against load: ${count.toLocaleString('en')} idle connections`,
        unit: 'MiB RSS',
        higherIsBetter: false,
        memory: true,
        quickRuns: count > 1000 ? 0 : 1,
      };
};

export const SCENARIO_INFO: Record<ScenarioName, ScenarioInfo> = {
  'bulk-up': {
    title: 'Bulk throughput, 1 stream client → server',
    unit: 'Gbit/s',
    higherIsBetter: true,
    memory: false,
  },
  'bulk-down': {
    title: 'Bulk throughput, 1 stream server → client',
    unit: 'Gbit/s',
    higherIsBetter: true,
    memory: false,
  },
  'streams-64': {
    title: 'Aggregate throughput, 64 streams client → server',
    unit: 'Gbit/s',
    higherIsBetter: true,
    memory: false,
  },
  connrate: {
    title: 'Connection rate (request/response, fixed concurrency)',
    unit: 'conn/s',
    higherIsBetter: true,
    memory: false,
  },
  'latency-c1': {
    title: 'Latency, one request/response connection at a time (c=1), p50',
    unit: 'ms',
    higherIsBetter: false,
    memory: false,
  },
  'idle-rss': { title: 'RSS per idle relayed connection', unit: 'KiB/conn', higherIsBetter: false, memory: true },
  'slow-reader': { title: 'RSS growth, fast sender → slow reader', unit: 'MiB', higherIsBetter: false, memory: true },
  ...(Object.fromEntries(LOAD_SCENARIOS.map((n) => [n, loadInfo(n)])) as Record<LoadScenario, ScenarioInfo>),
};

export interface Settings {
  /** Seconds per throughput run (iperf3 rounds up to whole seconds). */
  seconds: number;
  /**
   * With iperf3: bytes per throughput run (`-n`, all streams together) instead of
   * `seconds`; 64-stream runs move twice as much. Quick mode: iperf3 counts
   * only whole seconds, and a fixed amount ends sooner on the fast subjects.
   */
  iperfBytes?: number;
  connrateSeconds: number;
  concurrency: number;
  requestBytes: number;
  idleConnections: number;
  slowSeconds: number;
  slowRateBytes: number;
  generator: 'iperf3' | 'node';
}

export interface Measurement {
  value: number;
  /** CPU the relay used, in % of one core over the run. */
  cpuPercent?: number;
  rssBytes?: number;
  extra?: Record<string, unknown>;
}

/** The peers a scenario needs, started once per scenario and shared by every subject. */
export class Peers {
  readonly server = new Worker(join(__dirname, 'peer.js'));
  readonly client = new Worker(join(__dirname, 'peer.js'));
  private iperf: ChildProcess | undefined;
  iperfPort = 0;

  async listen(mode: string, rate = 0): Promise<number> {
    return (await this.server.request<{ port: number }>('listen', { mode, rate })).port;
  }

  /**
   * Opens `count` idle connections to `port` and waits until the relay has opened its side to
   * the server peer for every one, or stopped making progress for `patience` polls 100 ms apart
   * (a relay may refuse some), at most `maxPolls`. Returns what the client opened and its errors.
   */
  async holdIdle(
    port: number,
    count: number,
    wait: { patience: number; maxPolls: number; timeoutMs?: number },
  ): Promise<{ opened: number; errors: number }> {
    const held = await this.client.request<{ opened: number; errors: number }>('hold', { port, count }, wait.timeoutMs);
    let last = -1;
    for (let i = 0, still = 0; i < wait.maxPolls && still < wait.patience; i++) {
      const c = await this.server.request<{ accepted: number }>('count');
      if (c.accepted >= held.opened) break;
      still = c.accepted === last ? still + 1 : 0;
      last = c.accepted;
      await sleep(100);
    }
    return held;
  }

  async startIperf(port: number): Promise<void> {
    this.iperfPort = port;
    this.iperf = spawn('iperf3', ['-s', '-p', String(port), '-B', '127.0.0.1'], { stdio: 'ignore' });
    await sleep(300);
  }

  async stop(): Promise<void> {
    this.iperf?.kill('SIGTERM');
    await Promise.all([this.server.stop(), this.client.stop()]);
  }
}

/** What a scenario points its subjects at. */
export async function scenarioTarget(
  name: ScenarioName,
  peers: Peers,
  settings: Settings,
  iperfPort: number,
): Promise<number> {
  const point = curvePoint(name);
  const throughput = SCENARIO_INFO[name].title.includes('throughput') || point?.kind === 'bulk';
  if (throughput && settings.generator === 'iperf3') {
    if (!peers.iperfPort) await peers.startIperf(iperfPort);
    return peers.iperfPort;
  }
  switch (name) {
    case 'bulk-up':
    case 'streams-64':
      return peers.listen('sink');
    case 'bulk-down':
      return peers.listen('source');
    case 'connrate':
    case 'latency-c1':
      return peers.listen('echo');
    case 'idle-rss':
      return peers.listen('hold');
    case 'slow-reader':
      return peers.listen('slow', settings.slowRateBytes);
  }
  return peers.listen(point?.kind === 'bulk' ? 'sink' : 'hold');
}

function iperf3(args: string[], timeoutMs: number): Promise<{ bitsPerSecond: number; retransmits?: number }> {
  return new Promise((resolve, reject) => {
    execFile('iperf3', args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      let json: { error?: string; end?: { sum_received?: { bits_per_second?: number } } } = {};
      try {
        json = JSON.parse(stdout) as typeof json;
      } catch {}
      const bps = json.end?.sum_received?.bits_per_second;
      if (typeof bps === 'number') resolve({ bitsPerSecond: bps });
      else reject(new Error(`iperf3 ${args.join(' ')}: ${json.error ?? err?.message ?? 'no result'}`));
    });
  });
}

/** Runs one measurement of one scenario against one subject. */
export async function measure(
  name: ScenarioName,
  subject: RunningSubject,
  peers: Peers,
  settings: Settings,
): Promise<Measurement> {
  const pid = subject.pid;
  const cpu0 = pid ? cpuSeconds(pid) : Number.NaN;
  const t0 = process.hrtime.bigint();
  const cpu = (): number | undefined => {
    if (!pid) return undefined;
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    return ((cpuSeconds(pid) - cpu0) / wall) * 100;
  };
  const rss = (): number | undefined => (pid ? rssBytes(pid) : undefined);
  const done = (value: number, extra?: Record<string, unknown>): Measurement => {
    const m: Measurement = { value };
    const c = cpu();
    const r = rss();
    if (c !== undefined) m.cpuPercent = c;
    if (r !== undefined) m.rssBytes = r;
    if (extra) m.extra = extra;
    return m;
  };

  if (name === 'bulk-up' || name === 'bulk-down' || name === 'streams-64') {
    const streams = name === 'streams-64' ? 64 : 1;
    if (settings.generator === 'iperf3') {
      const seconds = Math.max(1, Math.round(settings.seconds));
      const amount = settings.iperfBytes !== undefined ? settings.iperfBytes * (streams > 1 ? 2 : 1) : undefined;
      const length = amount !== undefined ? ['-n', String(amount)] : ['-t', String(seconds)];
      const args = ['-c', '127.0.0.1', '-p', String(subject.port), ...length, '-J', '-P', String(streams)];
      if (name === 'bulk-down') args.push('-R');
      let result: { bitsPerSecond: number };
      try {
        result = await iperf3(args, seconds * 1000 + 30_000);
      } catch {
        // The iperf3 server refuses a test for a moment after the previous one ends.
        await sleep(1000);
        result = await iperf3(args, seconds * 1000 + 30_000);
      }
      return done(result.bitsPerSecond / 1e9, await subject.stats());
    }
    const direction = name === 'bulk-down' ? 'down' : 'up';
    await peers.server.request('reset');
    const r = await peers.client.request<{ bytes: number; seconds: number }>('throughput', {
      port: subject.port,
      direction,
      streams,
      seconds: settings.seconds,
    });
    let bytes = r.bytes;
    if (direction === 'up') {
      await sleep(100);
      bytes = (await peers.server.request<{ received: number }>('count')).received;
    }
    return done((bytes * 8) / r.seconds / 1e9, await subject.stats());
  }

  const point = curvePoint(name);
  if (point) return measurePoint(point, subject, peers, settings);

  if (name === 'connrate' || name === 'latency-c1') {
    const r = await peers.client.request<{
      completed: number;
      errors: number;
      seconds: number;
      p50: number;
      p99: number;
    }>('connrate', {
      port: subject.port,
      concurrency: name === 'latency-c1' ? 1 : settings.concurrency,
      seconds: settings.connrateSeconds,
      size: settings.requestBytes,
    });
    const relayStats = await subject.stats();
    const extra = { p50Ms: r.p50, p99Ms: r.p99, errors: r.errors, connections: r.completed, ...relayStats };
    return done(name === 'latency-c1' ? r.p50 : r.completed / r.seconds, extra);
  }

  if (name === 'idle-rss') {
    if (!pid) throw new Error('idle-rss needs a relay process');
    await peers.server.request('reset');
    await subject.collectGarbage?.();
    await sleep(300);
    const before = rssBytes(pid);
    const n = settings.idleConnections;
    const held = await peers.holdIdle(subject.port, n, { patience: 5, maxPolls: 200 });
    await sleep(500);
    // Memory per idle connection is what stays: the Node relays (plain and rxredirect
    // alike) first collect the garbage their accept burst left; HAProxy and socat have
    // none to collect. The figure before that collection is kept in the JSON.
    const beforeGc = rssBytes(pid);
    if (subject.collectGarbage) {
      await subject.collectGarbage();
      await sleep(200);
    }
    const after = rssBytes(pid);
    const accepted = (await peers.server.request<{ accepted: number }>('count')).accepted;
    const relayStats = await subject.stats();
    // Per connection actually relayed: a relay that refuses some (e.g. a false loop
    // detection) must not look cheaper for it. The peer also saw the start-up probe.
    const relayed = Math.min(held.opened, accepted);
    const m = done((after - before) / Math.max(1, relayed) / 1024, {
      kibPerConnectionBeforeGc: (beforeGc - before) / Math.max(1, relayed) / 1024,
      connections: held.opened,
      relayed,
      upstreamAccepted: accepted,
      rssBefore: before,
      rssAfter: after,
      clientErrors: held.errors,
      ...relayStats,
    });
    await peers.client.request('release');
    await peers.server.request('release');
    return m;
  }

  // slow-reader: sample the relay's RSS while one connection is flooded.
  if (!pid) throw new Error('slow-reader needs a relay process');
  await sleep(300);
  const before = rssBytes(pid);
  let peak = before;
  const sampler = setInterval(() => {
    const r = rssBytes(pid);
    if (r > peak) peak = r;
  }, 50);
  const samples: number[] = [];
  const trace = setInterval(() => samples.push(rssBytes(pid)), 250);
  let flood: { written: number };
  try {
    flood = await peers.client.request<{ written: number }>('flood', {
      port: subject.port,
      seconds: settings.slowSeconds,
    });
  } finally {
    clearInterval(sampler);
    clearInterval(trace);
  }
  // Destroying the slow reader's side ends the relayed connection at once, so its
  // summary (peakBuffered) is in the relay's stats.
  await peers.server.request('release');
  await sleep(300);
  const stats = await subject.stats();
  return done((peak - before) / 1024 / 1024, {
    rssBefore: before,
    rssPeak: peak,
    senderWroteBytes: flood.written,
    readerRateBytesPerSecond: settings.slowRateBytes,
    rssTraceMiB: samples.map((s) => Math.round(((s - before) / 1024 / 1024) * 10) / 10),
    ...stats,
  });
}

/**
 * One point of the cost-against-load curve, in a fresh relay process: bulk streams (throughput;
 * peak RSS growth and descriptors while they run) or idle connections (RSS growth once open).
 */
async function measurePoint(
  point: { kind: 'bulk' | 'idle'; count: number },
  subject: RunningSubject,
  peers: Peers,
  settings: Settings,
): Promise<Measurement> {
  const pid = subject.pid;
  await subject.collectGarbage?.();
  await sleep(200);
  if (point.kind === 'bulk') {
    const n = point.count;
    const cpu0 = pid ? cpuSeconds(pid) : Number.NaN;
    const t0 = process.hrtime.bigint();
    const run = sampled(pid, async () => {
      if (settings.generator === 'iperf3') {
        const seconds = Math.max(1, Math.round(settings.seconds));
        // Quick mode: a fixed amount, doubled for many streams as in streams-64.
        const length =
          settings.iperfBytes !== undefined
            ? ['-n', String(settings.iperfBytes * (n > 1 ? 2 : 1))]
            : ['-t', String(seconds)];
        return iperfStreams(subject.port, n, length, seconds * 1000 + 60_000);
      }
      await peers.server.request('reset');
      const r = await peers.client.request<{ seconds: number }>('throughput', {
        port: subject.port,
        direction: 'up',
        streams: n,
        seconds: settings.seconds,
      });
      await sleep(100);
      const received = (await peers.server.request<{ received: number }>('count')).received;
      return { bps: (received * 8) / r.seconds, bytes: received };
    });
    const s = await run;
    // CPU per byte moved holds up on a loaded machine, where Gbit/s swings with the neighbours.
    const cpu = pid ? cpuSeconds(pid) - cpu0 : Number.NaN;
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const stats = await subject.stats();
    const m: Measurement = {
      value: s.result.bps / 1e9,
      extra: {
        streams: n,
        cpuSecondsPerGiB: cpu / (s.result.bytes / 1073741824),
        rssBefore: s.rssBefore,
        rssPeak: s.rssPeak,
        rssGrowthMiB: (s.rssPeak - s.rssBefore) / 1048576,
        fdsBefore: s.fdsBefore,
        fdsPeak: s.fdsPeak,
        ...stats,
      },
    };
    if (pid) {
      m.rssBytes = s.rssPeak;
      m.cpuPercent = (cpu / wall) * 100;
    }
    return m;
  }
  if (!pid) throw new Error('idle connections need a relay process');
  await peers.server.request('reset');
  const before = rssBytes(pid);
  const fdsBefore = treeFds(pid);
  const held = await peers.holdIdle(subject.port, point.count, { patience: 10, maxPolls: 600, timeoutMs: 300_000 });
  await sleep(300);
  await subject.collectGarbage?.();
  await sleep(200);
  const after = rssBytes(pid);
  const fds = treeFds(pid);
  const accepted = (await peers.server.request<{ accepted: number }>('count')).accepted;
  const stats = await subject.stats();
  await peers.client.request('release');
  await peers.server.request('release');
  return {
    value: (after - before) / 1048576,
    rssBytes: after,
    extra: {
      connections: held.opened,
      relayed: Math.min(held.opened, accepted),
      clientErrors: held.errors,
      rssBefore: before,
      rssAfter: after,
      fdsBefore,
      fdsPeak: fds,
      ...stats,
    },
  };
}
