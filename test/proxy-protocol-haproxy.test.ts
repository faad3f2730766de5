import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  createProxyHeaderParser,
  type ProxyHeader,
  type ProxyProtocolExtension,
  proxyProtocolResolver,
  type RedirectRecord,
} from '../lib/index';
import { gatedTest } from './helpers/gate';
import { findHaproxy, freePort, haproxyConfig, startHaproxy } from './helpers/haproxy';
import { collect, dial, echoUpstream, listenTcp, startRedirect } from './helpers/net';

const LOOP = '127.0.0.1';
const HAPROXY = findHaproxy();
// Under CI haproxy is installed by .ci/run, so a missing binary fails there instead of skipping.
const interop = gatedTest(test.serial, HAPROXY ? undefined : '`haproxy` is not installed (apt-get install haproxy)');

interop('HAProxy send-proxy-v2 in front of us: real client address and unique id reach the record', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    id: 'behind-haproxy',
    resolve: proxyProtocolResolver({ trust: ['127.0.0.1/32'], versions: ['v2'] }),
    target: { host: LOOP, port: up.port },
  });
  const records: RedirectRecord[] = [];
  server.on('connection', (c) => records.push(c.record));
  const front = await freePort();
  await startHaproxy(
    t,
    HAPROXY ?? 'haproxy',
    haproxyConfig(`frontend fe
  bind ${LOOP}:${front}
  unique-id-format rx-%ci-%cp
  default_backend be

backend be
  server s1 ${LOOP}:${port} send-proxy-v2 proxy-v2-options unique-id`),
    [front],
  );
  const client = await dial(front);
  const clientPort = client.localPort!;
  client.write('hello through haproxy');
  const [echo] = (await once(client, 'data')) as [Buffer];
  t.is(echo.toString(), 'hello through haproxy');
  client.end();
  const rec = records.find((r) => r.source.port === clientPort);
  t.truthy(rec, 'a record carries the real client port');
  t.deepEqual(rec!.source, { address: LOOP, port: clientPort, family: 'IPv4' });
  t.deepEqual(rec!.destination, { address: LOOP, port: front, family: 'IPv4' });
  t.is(rec!.mechanism, 'proxy-protocol');
  const ext = rec!.extensions?.proxyProtocol as ProxyProtocolExtension;
  t.is(ext.version, 2);
  t.is(ext.uniqueId?.toString(), `rx-${LOOP}-${clientPort}`);
  t.is(ext.peer.address, LOOP);
  t.not(ext.peer.port, clientPort, 'the socket peer is haproxy, not the client');
});

for (const version of ['v1', 'v2'] as const) {
  interop(`our egress ${version} into HAProxy accept-proxy: the original client reaches the backend`, async (t) => {
    // HAProxy takes our header as the client's identity (accept-proxy) and, with
    // send-proxy-v2, restates that identity to a plain Node backend that parses it.
    const seen: { header: ProxyHeader; payload: Promise<Buffer> }[] = [];
    const { port: backend } = await listenTcp(t, (s) => {
      const parser = createProxyHeaderParser();
      const rest: Buffer[] = [];
      let header: ProxyHeader | undefined;
      let resolvePayload: (b: Buffer) => void = () => {};
      const payload = new Promise<Buffer>((r) => {
        resolvePayload = r;
      });
      s.on('data', (c: Buffer) => {
        if (header) return void rest.push(c);
        const step = parser.push(c);
        if (!step.done) return;
        header = step.header;
        rest.push(step.leftover);
        seen.push({ header, payload });
      });
      s.on('end', () => {
        resolvePayload(Buffer.concat(rest));
        s.end('bye');
      });
    });
    const front = await freePort();
    await startHaproxy(
      t,
      HAPROXY ?? 'haproxy',
      haproxyConfig(`frontend fe
  bind ${LOOP}:${front} accept-proxy
  default_backend be

backend be
  server s1 ${LOOP}:${backend} send-proxy-v2`),
      [front],
    );
    const a = await startRedirect(t, {
      id: 'edge-a',
      resolve: { host: '192.0.2.10', port: 8443 },
      target: { host: LOOP, port: front },
      egress: { proxyProtocol: version },
    });
    const client = await dial(a.port);
    const clientPort = client.localPort!;
    const reply = collect(client);
    client.end('payload for the backend');
    t.is((await reply).data!.toString(), 'bye');
    const found = seen.find((s) => s.header.source?.port === clientPort);
    t.truthy(found, `the backend saw a header with our client's port ${clientPort}`);
    t.deepEqual(found!.header.source, { address: LOOP, port: clientPort, family: 'IPv4' });
    t.deepEqual(found!.header.destination, { address: '192.0.2.10', port: 8443, family: 'IPv4' });
    t.is((await found!.payload).toString(), 'payload for the backend');
  });
}

/** One `show stat` line of haproxy's stats socket, as column → value. */
async function serverStat(socketPath: string, backend: string, server: string): Promise<Record<string, string>> {
  const s = connect({ path: socketPath });
  s.end('show stat\n');
  const out = (await collect(s)).data!.toString();
  const [head, ...rows] = out.trim().split('\n');
  const columns = head!.replace(/^# /, '').split(',');
  for (const row of rows) {
    const cells = row.split(',');
    if (cells[0] === backend && cells[1] === server) return Object.fromEntries(columns.map((c, i) => [c, cells[i]!]));
  }
  throw new Error(`no stats row for ${backend}/${server}:\n${out}`);
}

interop(
  'HAProxy check-send-proxy health checks (LOCAL headers with TLVs) pass through a proxy-protocol server',
  async (t) => {
    // The checked service, behind us: answers PING with PONG, as haproxy's tcp-check expects.
    const { port: service } = await listenTcp(t, (s) => {
      s.on('data', (c: Buffer) => {
        if (c.toString().includes('PING')) s.end('PONG\r\n');
      });
    });
    const { server, port } = await startRedirect(t, {
      resolve: proxyProtocolResolver({ trust: ['127.0.0.1/32'], versions: ['v2'] }),
      // LOCAL flows carry no destination: they need a target (else the listener itself: a loop).
      target: { host: LOOP, port: service },
    });
    const checks: ProxyProtocolExtension[] = [];
    let passed = 0;
    let notify: () => void = () => {};
    server.on('connection', (c) => {
      const ext = c.record.extensions?.proxyProtocol as ProxyProtocolExtension;
      // The helper's readiness probe of the frontend also comes through us, with a PROXY header.
      if (ext.command !== 'local') return;
      checks.push(ext);
      c.once('close', (summary) => {
        if (summary.error === undefined) passed++;
        notify();
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'rxredirect-haproxy-stats-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const stats = join(dir, 'stats.sock');
    const front = await freePort();
    await startHaproxy(
      t,
      HAPROXY ?? 'haproxy',
      `global
  maxconn 256
  stats socket ${stats} level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  timeout check 2s

frontend fe
  bind ${LOOP}:${front}
  default_backend be

backend be
  option tcp-check
  tcp-check send PING\\r\\n
  tcp-check expect string PONG
  server s1 ${LOOP}:${port} check inter 100 fall 1 rise 1 send-proxy-v2 check-send-proxy proxy-v2-options crc32c
`,
      [front],
    );
    // Two whole checks went through us; the first one's verdict is then certainly recorded.
    while (passed < 2) await new Promise<void>((r) => (notify = r));
    const stat = await serverStat(stats, 'be', 's1');
    // haproxy marks a check still running with '* ' before the last verdict.
    t.regex(stat.check_status ?? '', /^(\* )?L7OK$/, JSON.stringify(stat));
    t.is(stat.status, 'UP');
    t.true(checks.length >= 2);
    for (const ext of checks.slice(0, 2)) {
      // haproxy sends LOCAL, AF_UNSPEC, with a CRC32C TLV; all of the block is discarded.
      t.like(ext, { version: 2, command: 'local', family: 'unspec' });
      t.true(ext.raw.length > 16, 'the header carried a block');
      t.deepEqual(ext.tlvs, []);
    }
  },
);
