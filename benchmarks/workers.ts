// Workers: worker processes against worker threads (docs/workers.md says why processes).
// Connection rate (short echo connections) and throughput (bulk download on 64 streams)
// through 1 process, 2 processes and 2 threads, interleaved in rounds; medians and ratios
// against the 1-process baseline measured in the same run.
//   node dist/benchmarks/workers.js [rounds=3] [seconds=3]
import { join } from 'node:path';
import { machineInfo, sleep, treeCpuSeconds, Worker } from './proc';

interface Subject {
  name: string;
  model: 'processes' | 'threads';
  workers: number;
}

const SUBJECTS: Subject[] = [
  { name: '1 process', model: 'processes', workers: 1 },
  { name: '2 processes', model: 'processes', workers: 2 },
  { name: '2 threads', model: 'threads', workers: 2 },
];

const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 3);
const STREAMS = 64;
const CONCURRENCY = 32;

async function withSubject<T>(
  s: Subject,
  upstreamPort: number,
  fn: (port: number, pid: number) => Promise<T>,
): Promise<T> {
  const host = new Worker(join(__dirname, 'workers-host.js'));
  try {
    const { port } = await host.request<{ port: number }>('start', { ...s, upstreamPort, zeroCopy: 'off' });
    return await fn(port, host.pid);
  } finally {
    await host.stop();
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const upstream = new Worker(join(__dirname, 'peer.js'));
  const client = new Worker(join(__dirname, 'peer.js'));
  const echo = await upstream.request<{ port: number }>('listen', { mode: 'echo' });
  const source = await upstream.request<{ port: number }>('listen', { mode: 'source' });
  const results: Record<string, { rate: number[]; gbps: number[]; cpuPerConnUs: number[] }> = {};
  for (let round = 0; round < rounds; round++) {
    for (const s of SUBJECTS) {
      const r = results[s.name] ?? { rate: [], gbps: [], cpuPerConnUs: [] };
      results[s.name] = r;
      await withSubject(s, echo.port, async (port, pid) => {
        await sleep(200);
        const cpu0 = treeCpuSeconds(pid);
        const c = await client.request<{ completed: number; errors: number; seconds: number }>('connrate', {
          port,
          concurrency: CONCURRENCY,
          seconds,
          size: 1024,
        });
        const cpu = treeCpuSeconds(pid) - cpu0;
        r.rate.push(c.completed / c.seconds);
        r.cpuPerConnUs.push((cpu / Math.max(1, c.completed)) * 1e6);
      });
      await withSubject(s, source.port, async (port) => {
        await sleep(200);
        const t = await client.request<{ bytes: number; seconds: number }>('throughput', {
          port,
          direction: 'down',
          streams: STREAMS,
          seconds,
        });
        r.gbps.push((t.bytes * 8) / t.seconds / 1e9);
      });
    }
  }
  await client.stop();
  await upstream.stop();
  const base = results['1 process'];
  const m = machineInfo();
  console.log(
    `workers benchmark: ${rounds} rounds × ${seconds} s, ${m.cpus} CPUs (${m.cpuModel}), load ${m.loadAverage.join(' ')}, Node ${process.version}`,
  );
  // Ratios are paired by round (the subjects of a round ran one after the other), then the median
  // taken: on a shared machine the load drifts between rounds more than between subjects.
  const paired = (a: number[], b: number[]): number => median(a.map((v, i) => v / (b[i] ?? Number.NaN)));
  console.log(
    '| subject | connections/s (median; runs) | ×1 process (paired) | relay CPU µs/conn | download Gbit/s, 64 streams (median; runs) | ×1 process (paired) |',
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const s of SUBJECTS) {
    const r = results[s.name];
    if (!r || !base) continue;
    console.log(
      `| ${s.name} | ${median(r.rate).toFixed(0)} (${r.rate.map((v) => v.toFixed(0)).join(', ')}) | ${paired(r.rate, base.rate).toFixed(2)} | ${median(r.cpuPerConnUs).toFixed(0)} | ${median(r.gbps).toFixed(2)} (${r.gbps.map((v) => v.toFixed(2)).join(', ')}) | ${paired(r.gbps, base.gbps).toFixed(2)} |`,
    );
  }
  const p = results['2 processes'];
  const t = results['2 threads'];
  if (p && t) {
    console.log(
      `2 processes ÷ 2 threads, paired by round: connections/s ${paired(p.rate, t.rate).toFixed(2)}, CPU per connection ${paired(p.cpuPerConnUs, t.cpuPerConnUs).toFixed(2)}, throughput ${paired(p.gbps, t.gbps).toFixed(2)}`,
    );
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
