import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { request } from 'node:http';
import { join } from 'node:path';
import test from 'ava';
import { type CloseSummary, zeroCopyStats } from '../lib/index';
import { aggregateMetrics, createClusterMetrics, createMetrics, serveMetrics } from '../lib/metrics/index';
import { closedAtLeast, dial, drain, echoUpstream, nextConnection, sendRandom, startRedirect } from './helpers/net';

/** Metrics (docs/metrics.md): a scrape during a run agrees with stats() and the close summaries. */

function get(port: number, path = '/metrics'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    })
      .on('error', reject)
      .end();
  });
}

/** The value of one series of the exposition text: `name{a="b",…}` with exactly these labels (besides worker). */
function value(text: string, name: string, labels: Record<string, string> = {}, worker = '0'): number | undefined {
  const want = { ...labels, worker };
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(got).length === Object.keys(want).length && Object.entries(want).every(([k, v]) => got[k] === v)) {
      return m[3] === '+Inf' ? Number.POSITIVE_INFINITY : m[3] === '-Inf' ? Number.NEGATIVE_INFINITY : Number(m[3]);
    }
  }
  return undefined;
}

test('a scrape during a run agrees with stats() and the close summaries', async (t) => {
  const upstream = await echoUpstream(t);
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: upstream.port } });
  const metrics = createMetrics({ worker: '0' });
  metrics.track(server);
  const endpoint = await serveMetrics(metrics, { port: 0 });
  t.teardown(() => endpoint.close());
  const summaries: CloseSummary[] = [];
  server.on('closed', (s) => summaries.push(s));

  // A connection held open during the scrape, and some that complete.
  const opened = nextConnection(server);
  const held = await dial(port);
  await opened;
  const sizes = [1, 1000, 300_000, 2_000_000];
  await Promise.all(
    sizes.map(async (n) => {
      const s = await dial(port);
      const [sent, got] = await Promise.all([sendRandom(s, n), drain(s)]);
      t.is(got.sha256, sent);
    }),
  );
  await closedAtLeast(server, sizes.length);

  const during = await get(endpoint.address.port);
  t.is(during.status, 200);
  t.true(during.type.startsWith('text/plain'), during.type);
  const stats = server.stats();
  t.is(value(during.body, 'rxredirect_downstream_cx_active'), 1);
  t.is(value(during.body, 'rxredirect_downstream_cx_total'), stats.total.accepted);
  t.is(value(during.body, 'rxredirect_downstream_cx_limit'), stats.maxConnections);
  t.true(Number.isFinite(stats.maxConnections), 'the default limit is derived from ulimit -n');
  for (const [reason, n] of Object.entries(stats.reasons)) {
    t.is(value(during.body, 'rxredirect_downstream_cx_closed_total', { reason }), n, reason);
  }
  const sum = (pick: (s: CloseSummary) => number): number => summaries.reduce((a, s) => a + pick(s), 0);
  for (const direction of ['upstream', 'downstream'] as const) {
    const js = value(during.body, 'rxredirect_bytes_total', { direction, path: 'js' }) ?? -1;
    const zc = value(during.body, 'rxredirect_bytes_total', { direction, path: 'zero-copy' }) ?? -1;
    t.is(
      js + zc,
      sum((s) => s[direction].bytesWritten),
      `${direction} bytes`,
    );
    t.is(
      zc,
      sum((s) => s[direction].zeroCopyBytes),
      `${direction} zero-copy bytes`,
    );
    t.is(js, stats.dataPaths.bytes[direction].js);
    if (zeroCopyStats() !== undefined) t.true(zc > 0, `the kernel moved some ${direction} bytes`);
    t.is(
      value(during.body, 'rxredirect_flow_control_paused_reading_total', { direction }),
      sum((s) => s[direction].pauses),
    );
  }
  t.is(value(during.body, 'rxredirect_downstream_cx_length_ms_count'), summaries.length);
  t.is(
    value(during.body, 'rxredirect_upstream_cx_connect_ms_count'),
    summaries.filter((s) => s.connectMs !== undefined).length,
  );
  t.true(summaries.every((s) => s.connectMs !== undefined && s.connectMs >= 0));
  t.truthy(value(during.body, 'process_cpu_user_seconds_total'), 'default process metrics');
  t.false(/\d+\.\d+\.\d+\.\d+/.test(during.body), 'no address in any label');

  // The held connection closes: counters move, the gauge goes to 0.
  held.end();
  await drain(held);
  await closedAtLeast(server, sizes.length + 1);
  const after = await get(endpoint.address.port);
  t.is(value(after.body, 'rxredirect_downstream_cx_active'), 0);
  t.is(value(after.body, 'rxredirect_downstream_cx_closed_total', { reason: 'client-end' }), sizes.length + 1);
  t.is((await get(endpoint.address.port, '/')).status, 404);
});

test('a retired server keeps its counts; a resolve failure counts by mechanism', async (t) => {
  const metrics = createMetrics({ worker: '3', processMetrics: false });
  const upstream = await echoUpstream(t);
  const first = await startRedirect(t, { resolve: { host: '127.0.0.1', port: upstream.port } });
  const retire = metrics.track(first.server);
  const s = await dial(first.port);
  s.end('x');
  await drain(s);
  await closedAtLeast(first.server, 1);
  await first.server.close();
  retire();
  // The next generation: PROXY protocol, and a client that sends no header.
  const second = await startRedirect(t, { resolve: 'proxy-protocol', proxyProtocol: { trust: ['127.0.0.1/32'] } });
  metrics.track(second.server);
  const bad = await dial(second.port);
  bad.end('not a PROXY header\r\n');
  await drain(bad);
  await closedAtLeast(second.server, 1);
  const text = await metrics.text();
  t.is(value(text, 'rxredirect_downstream_cx_total', {}, '3'), 2);
  t.is(value(text, 'rxredirect_downstream_cx_closed_total', { reason: 'client-end' }, '3'), 1);
  t.is(value(text, 'rxredirect_downstream_cx_closed_total', { reason: 'resolve-failed' }, '3'), 1);
  t.is(value(text, 'rxredirect_resolve_failures_total', { mechanism: 'proxy-protocol' }, '3'), 1);
  t.is(value(text, 'process_cpu_user_seconds_total', {}, '3'), undefined);
});

test('aggregateMetrics merges workers and keeps them apart by the worker label', async (t) => {
  const a = createMetrics({ worker: '0', processMetrics: false });
  const b = createMetrics({ worker: '1', processMetrics: false });
  const upstream = await echoUpstream(t);
  const one = await startRedirect(t, { resolve: { host: '127.0.0.1', port: upstream.port } });
  const two = await startRedirect(t, { resolve: { host: '127.0.0.1', port: upstream.port } });
  a.track(one.server);
  b.track(two.server);
  for (const port of [one.port, two.port, two.port]) {
    const s = await dial(port);
    s.end('hi');
    await drain(s);
  }
  await Promise.all([closedAtLeast(one.server, 1), closedAtLeast(two.server, 2)]);
  const merged = aggregateMetrics([await a.json(), await b.json()]);
  const text = await merged.text();
  t.is(value(text, 'rxredirect_downstream_cx_total', {}, '0'), 1);
  t.is(value(text, 'rxredirect_downstream_cx_total', {}, '1'), 2);
  t.is(value(text, 'rxredirect_downstream_cx_length_ms_count', {}, '1'), 2);
});

test('without prom-client, createMetrics() throws ERR_REDIRECT_METRICS_UNAVAILABLE', (t) => {
  // A child whose module resolution cannot find prom-client, as for a user who did not install it.
  const script = `
    const Module = require('node:module');
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      if (request === 'prom-client') throw Object.assign(new Error('Cannot find module'), { code: 'MODULE_NOT_FOUND' });
      return resolve.call(this, request, ...rest);
    };
    const api = require(${JSON.stringify(join(__dirname, '..', 'lib', 'index.js'))});
    try { api.createMetrics(); console.log('no error'); } catch (err) { console.log(err.code + ' ' + err.message); }`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  t.regex(out, /^ERR_REDIRECT_METRICS_UNAVAILABLE .*npm install prom-client/);
});

test('cluster metrics: per-worker series from the host stats, a replaced worker keeps its counts', async (t) => {
  const upstream = await echoUpstream(t);
  const start = () => startRedirect(t, { resolve: { host: '127.0.0.1', port: upstream.port } });
  // A stand-in for the worker host: its stats() replies and forwarded summaries (as JSON, as over IPC).
  let workers = [
    { slot: 0, pid: 100, ...(await start()) },
    { slot: 1, pid: 101, ...(await start()) },
  ];
  const host = new EventEmitter();
  const forward = (w: (typeof workers)[number]) =>
    w.server.on('closed', (s) => host.emit('closed', JSON.parse(JSON.stringify(s)), { slot: w.slot }));
  for (const w of workers) forward(w);
  const source = {
    stats: async () => ({
      perWorker: workers.map((w) => ({ slot: w.slot, pid: w.pid, server: w.server.stats(), zeroCopy: null })),
    }),
    on: (event: 'closed', fn: (summary: Record<string, unknown>, info: { slot: number }) => void) => host.on(event, fn),
  };
  const metrics = createClusterMetrics(source, { processMetrics: false });
  const connect = async (port: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const s = await dial(port);
      s.end('x');
      await drain(s);
    }
  };
  await connect(workers[0]!.port, 2);
  await connect(workers[1]!.port, 3);
  await Promise.all([closedAtLeast(workers[0]!.server, 2), closedAtLeast(workers[1]!.server, 3)]);
  let text = await metrics.text();
  t.is(value(text, 'rxredirect_downstream_cx_total', {}, '0'), 2);
  t.is(value(text, 'rxredirect_downstream_cx_total', {}, '1'), 3);
  t.is(value(text, 'rxredirect_downstream_cx_length_ms_count', {}, '1'), 3);
  t.is(value(text, 'rxredirect_upstream_cx_connect_ms_count', {}, '0'), 2);

  // Slot 1's process is replaced (a crash, a reload): its counts stay, the new one's add up.
  const next = { slot: 1, pid: 102, ...(await start()) };
  forward(next);
  workers = [workers[0]!, next];
  await connect(next.port, 1);
  await closedAtLeast(next.server, 1);
  text = await metrics.text();
  t.is(value(text, 'rxredirect_downstream_cx_total', {}, '1'), 4);
  t.is(value(text, 'rxredirect_downstream_cx_closed_total', { reason: 'client-end' }, '1'), 4);
  t.is(value(text, 'rxredirect_downstream_cx_active', {}, '1'), 0);
});

test('cluster metrics: a worker without a connection limit reports +Inf, as one process does, though Infinity crosses IPC as null', async (t) => {
  const upstream = await echoUpstream(t);
  const { server } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: upstream.port },
    limits: { maxConnections: Number.POSITIVE_INFINITY },
  });
  const source = {
    // As over IPC: JSON turns Infinity into null.
    stats: async () => ({
      perWorker: [{ slot: 0, pid: 100, server: JSON.parse(JSON.stringify(server.stats())), zeroCopy: null }],
    }),
    on: () => undefined,
  };
  const text = await createClusterMetrics(source, { processMetrics: false }).text();
  t.is(value(text, 'rxredirect_downstream_cx_limit'), Number.POSITIVE_INFINITY);
});
