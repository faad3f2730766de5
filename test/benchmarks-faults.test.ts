import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runFaultsBench } from '../benchmarks/faults';

// The fault toxics' benchmark on a tiny configuration: every figure is a number and the files
// are well formed. Never asserts timings.

test('a tiny faults run writes well-formed JSON and Markdown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rxredirect-faults-bench-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { jsonPath, reportPath } = await runFaultsBench(
    { roundTrips: 5, bulkBytes: 1 << 20, bandwidthSeconds: 0.2, rates: [5000] },
    dir,
  );
  const r = JSON.parse(readFileSync(jsonPath, 'utf8'));
  t.is(r.version, 1);
  t.deepEqual(Object.keys(r.latency), ['none', 'latency:0', 'latency:10']);
  for (const chain of Object.keys(r.latency)) {
    t.true(Number.isFinite(r.latency[chain].medianRttMs), chain);
    t.true(Number.isFinite(r.cpu[chain].cpuSecondsPerGiB), chain);
    t.true(r.cpu[chain].mbPerSecond > 0, chain);
  }
  t.is(r.bandwidth.length, 1);
  t.true(r.bandwidth[0].measuredKBps > 0);
  t.regex(r.toxiproxy, /not measured/);
  const md = readFileSync(reportPath, 'utf8');
  t.true(md.startsWith('# Fault toxics\n'));
  for (const table of md.split('\n\n').filter((b) => b.startsWith('| '))) {
    const rows = table.trim().split('\n');
    const cells = (rows[0] ?? '').split('|').length;
    for (const row of rows) t.is(row.split('|').length, cells, row);
  }
});
