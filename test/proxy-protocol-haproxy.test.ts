import { once } from 'node:events';
import test from 'ava';
import {
  createProxyHeaderParser,
  type ProxyHeader,
  type ProxyProtocolExtension,
  proxyProtocolResolver,
  type RedirectRecord,
} from '../lib/index';
import { findHaproxy, freePort, haproxyConfig, startHaproxy } from './helpers/haproxy';
import { collect, dial, echoUpstream, listenTcp, startRedirect } from './helpers/net';

const LOOP = '127.0.0.1';
const HAPROXY = findHaproxy();
// Under CI haproxy is installed by .ci/run, so a missing binary must fail there, not skip.
const interop = HAPROXY || process.env.CI === 'true' ? test.serial : test.serial.skip;
if (!HAPROXY && process.env.CI !== 'true') {
  console.log('proxy-protocol-haproxy: skipped, `haproxy` is not installed (apt-get install haproxy)');
}

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
