// The fault toxics' own costs (docs/faults.md, "Performance"): what the latency toxic adds to a
// round trip and costs in CPU at 0 and 10 ms, and how closely the bandwidth toxic keeps its rate.
// `npm run bench:faults` (part of `npm run bench`); a Toxiproxy binary is in neither Debian's
// packages nor the npm registry, so it is not measured beside it.
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { cpuSeconds, machineInfo, Worker } from './proc';
import type { RelayConfig } from './relay-child';

export interface FaultsBenchSettings {
  /** Ping-pong round trips per latency measurement. */
  roundTrips: number;
  /** Bytes moved per CPU measurement. */
  bulkBytes: number;
  /** How long each bandwidth measurement runs, s. */
  bandwidthSeconds: number;
  /** Bandwidth toxic rates to check, KB/s. */
  rates: number[];
}

export const FAULTS_QUICK: FaultsBenchSettings = {
  roundTrips: 200,
  bulkBytes: 256 << 20,
  bandwidthSeconds: 2,
  rates: [1000, 10000],
};

export interface FaultsResults {
  version: 1;
  date: string;
  machine: ReturnType<typeof machineInfo>;
  settings: FaultsBenchSettings;
  /** Median round trip (64-byte ping-pong) per chain, ms; added = minus the chain without toxics. */
  latency: Record<string, { medianRttMs: number; p90RttMs: number; addedMs: number }>;
  /** Bulk transfer downstream through each chain: relay CPU per GiB and throughput. */
  cpu: Record<string, { cpuSecondsPerGiB: number; mbPerSecond: number }>;
  bandwidth: { rateKBps: number; measuredKBps: number; ratio: number }[];
  toxiproxy: string;
}

/** A relay in its own process, so its CPU can be read from /proc. */
async function startRelay(chain: string, target: number): Promise<{ worker: Worker; port: number }> {
  process.env.RXREDIRECT_FAULT_CHAIN = chain;
  const config: RelayConfig = {
    kind: 'rx',
    target: { host: '127.0.0.1', port: target },
    middleware: join(__dirname, 'fault-chain.js'),
  };
  const worker = new Worker(join(__dirname, 'relay-child.js'), [JSON.stringify(config)]);
  const { port } = await worker.request<{ port: number }>('start');
  return { worker, port };
}

async function listen(handler: (s: Socket) => void): Promise<Server> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

const portOf = (s: Server): number => (s.address() as AddressInfo).port;

async function dial(port: number): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1', noDelay: true });
  await once(s, 'connect');
  return s;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function roundTrips(port: number, n: number): Promise<number[]> {
  const s = await dial(port);
  const msg = Buffer.alloc(64, 1);
  const times: number[] = [];
  // The first round trips warm the JIT and the sockets up: not counted.
  for (let i = -20; i < n; i++) {
    const started = performance.now();
    s.write(msg);
    let got = 0;
    while (got < msg.length) got += ((await once(s, 'data')) as [Buffer])[0].length;
    if (i >= 0) times.push(performance.now() - started);
  }
  s.destroy();
  return times.sort((a, b) => a - b);
}

/** The upstream sends `bytes` to each client; resolves with the client's time to read them all. */
async function bulkDown(port: number, bytes: number): Promise<number> {
  const s = await dial(port);
  const started = performance.now();
  let got = 0;
  s.on('data', (c: Buffer) => {
    got += c.length;
  });
  await once(s, 'end');
  s.destroy();
  if (got !== bytes) throw new Error(`read ${got} of ${bytes} bytes`);
  return (performance.now() - started) / 1000;
}

function sender(bytes: number): (s: Socket) => void {
  const block = Buffer.alloc(64 * 1024, 7);
  return (s) => {
    s.on('error', () => {});
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(block.length, left);
        left -= n;
        if (!s.write(n === block.length ? block : block.subarray(0, n))) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    pump();
  };
}

export async function runFaultsBench(
  settings: FaultsBenchSettings = FAULTS_QUICK,
  outDir = resolve('benchmarks', 'results'),
  log: (line: string) => void = () => {},
): Promise<{ jsonPath: string; reportPath: string; results: FaultsResults }> {
  const echo = await listen((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  const results: FaultsResults = {
    version: 1,
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings,
    latency: {},
    cpu: {},
    bandwidth: [],
    toxiproxy: 'not measured: no toxiproxy binary in Debian packages or the npm registry',
  };
  try {
    for (const chain of ['none', 'latency:0', 'latency:10']) {
      const relay = await startRelay(chain, portOf(echo));
      try {
        const rtt = await roundTrips(relay.port, settings.roundTrips);
        const median = quantile(rtt, 0.5);
        const base = results.latency.none?.medianRttMs ?? median;
        results.latency[chain] = { medianRttMs: median, p90RttMs: quantile(rtt, 0.9), addedMs: median - base };
        log(`faults: ${chain} round trip ${median.toFixed(2)} ms`);
      } finally {
        await relay.worker.stop();
      }
      const source = await listen(sender(settings.bulkBytes));
      const bulk = await startRelay(chain, portOf(source));
      try {
        const cpu0 = cpuSeconds(bulk.worker.pid);
        const seconds = await bulkDown(bulk.port, settings.bulkBytes);
        const cpu = cpuSeconds(bulk.worker.pid) - cpu0;
        const gib = settings.bulkBytes / 2 ** 30;
        results.cpu[chain] = { cpuSecondsPerGiB: cpu / gib, mbPerSecond: settings.bulkBytes / 1e6 / seconds };
        log(
          `faults: ${chain} bulk ${(settings.bulkBytes / 1e6 / seconds).toFixed(0)} MB/s, ${(cpu / gib).toFixed(2)} CPU s/GiB`,
        );
      } finally {
        await bulk.worker.stop();
        source.close();
      }
    }
    for (const rate of settings.rates) {
      const bytes = Math.round(rate * 1000 * settings.bandwidthSeconds);
      const source = await listen(sender(bytes));
      const relay = await startRelay(`bandwidth:${rate}`, portOf(source));
      try {
        const seconds = await bulkDown(relay.port, bytes);
        const measured = bytes / 1000 / seconds;
        results.bandwidth.push({ rateKBps: rate, measuredKBps: measured, ratio: measured / rate });
        log(`faults: bandwidth ${rate} KB/s measured ${measured.toFixed(0)} KB/s`);
      } finally {
        await relay.worker.stop();
        source.close();
      }
    }
  } finally {
    echo.close();
  }
  mkdirSync(outDir, { recursive: true });
  const jsonPath = join(outDir, 'faults.json');
  const reportPath = join(outDir, 'faults.md');
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(reportPath, renderFaults(results));
  return { jsonPath, reportPath, results };
}

export function renderFaults(r: FaultsResults): string {
  const f = (n: number, d = 2): string => (Number.isFinite(n) ? n.toFixed(d) : '—');
  const lines = [
    '# Fault toxics',
    '',
    `${r.date}, ${r.machine.cpuModel} × ${r.machine.cpus}, Node ${r.machine.node}. Toxiproxy: ${r.toxiproxy}.`,
    '',
    '| chain (downstream) | median round trip (ms) | p90 (ms) | added (ms) | bulk MB/s | relay CPU s/GiB |',
    '| --- | --- | --- | --- | --- | --- |',
    ...Object.entries(r.latency).map(
      ([chain, l]) =>
        `| ${chain} | ${f(l.medianRttMs)} | ${f(l.p90RttMs)} | ${f(l.addedMs)} | ${f(r.cpu[chain]?.mbPerSecond ?? Number.NaN, 0)} | ${f(r.cpu[chain]?.cpuSecondsPerGiB ?? Number.NaN)} |`,
    ),
    '',
    '| bandwidth rate (KB/s) | measured (KB/s) | measured / rate |',
    '| --- | --- | --- |',
    ...r.bandwidth.map((b) => `| ${b.rateKBps} | ${f(b.measuredKBps, 0)} | ${f(b.ratio, 3)} |`),
    '',
  ];
  return `${lines.join('\n')}\n`;
}

if (require.main === module) {
  runFaultsBench(FAULTS_QUICK, resolve('benchmarks', 'results'), (line) => process.stderr.write(`${line}\n`)).then(
    ({ reportPath }) => process.stdout.write(`${reportPath}\n`),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
