import { once } from 'node:events';
import type { Socket } from 'node:net';
import test from 'ava';
import { tap } from 'rxjs';
import {
  type CloseSummary,
  createProxyHeaderParser,
  createRedirectServer,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  type ProxyHeader,
  type ProxyProtocolExtension,
  proxyProtocolEgress,
  proxyProtocolResolver,
  type RedirectRecord,
  type RedirectServer,
  staticResolver,
} from '../lib/index';
import { encodeChainTlv } from '../lib/proxy-protocol/chain-tlv';
import {
  collect,
  dial,
  dialRaw,
  drain,
  echoUpstream,
  listenTcp,
  sendRandom,
  sha256,
  startRedirect,
} from './helpers/net';
import { throwsCode } from './helpers/expect';

const LOOP = '127.0.0.1';

function header(src = '203.0.113.7', srcPort = 51234, dst = '198.51.100.9', dstPort = 443): Buffer {
  return encodeProxyHeaderV2({
    source: { address: src, port: srcPort },
    destination: { address: dst, port: dstPort },
    uniqueId: Buffer.from('req-42'),
    authority: 'example.test',
  });
}

function rejected(server: RedirectServer): Promise<CloseSummary> {
  return new Promise((r) => server.once('rejected', r));
}

type Collected = { bytes: number; sha256: string; data?: Buffer };

/** An upstream that collects everything; `next()` is the next connection's bytes. */
async function sink(t: Parameters<typeof listenTcp>[0]) {
  const waiting: ((r: Promise<Collected>) => void)[] = [];
  const ready: Promise<Collected>[] = [];
  const { port } = await listenTcp(t, (s) => {
    const r = collect(s).then((c) => {
      s.end();
      return c;
    });
    const w = waiting.shift();
    if (w) w(r);
    else ready.push(r);
  });
  const next = (): Promise<Collected> => {
    const r = ready.shift();
    return r ?? new Promise<Collected>((res) => waiting.push((p) => void p.then(res)));
  };
  return { port, next };
}

/** An echo connection through `port` that proves the server still works, before and after. */
async function echoWorks(port: number, hdr: Buffer): Promise<Socket> {
  const s = await dial(port);
  s.write(Buffer.concat([hdr, Buffer.from('ping')]));
  const [d] = (await once(s, 'data')) as [Buffer];
  if (d.toString() !== 'ping') throw new Error(`echo returned ${d.toString()}`);
  return s;
}

test('header is parsed before middleware sees a byte; leftover comes first and exact (4 MiB)', async (t) => {
  const up = await sink(t);
  const firstChunks: Buffer[] = [];
  let seen: RedirectRecord | undefined;
  const { port } = await startRedirect(t, {
    resolve: proxyProtocolResolver({ trust: ['127.0.0.0/8'] }),
    target: { host: LOOP, port: up.port },
    middleware: [
      (ctx) => {
        seen = ctx.record;
        return { upstream: tap((c: Buffer) => firstChunks.length < 1 && firstChunks.push(Buffer.from(c))) };
      },
    ],
  });
  const client = await dial(port);
  // The header and the first payload bytes go out in one segment, so the resolver has leftover.
  const first = Buffer.from('FIRST-BYTES-after-the-header:');
  client.write(Buffer.concat([header(), first]));
  const rest = await sendRandom(client, 4 * 1024 * 1024);
  const r = await up.next();
  t.truthy(seen);
  const rec = seen!;
  t.is(rec.mechanism, 'proxy-protocol');
  t.deepEqual(rec.source, { address: '203.0.113.7', port: 51234, family: 'IPv4' });
  t.deepEqual(rec.destination, { address: '198.51.100.9', port: 443, family: 'IPv4' });
  t.deepEqual(rec.chain, []);
  const ext = rec.extensions?.proxyProtocol as ProxyProtocolExtension;
  t.is(ext.version, 2);
  t.is(ext.command, 'proxy');
  t.is(ext.authority, 'example.test');
  t.is(ext.uniqueId?.toString(), 'req-42');
  t.is(ext.peer.address, LOOP);
  t.true(firstChunks[0]!.subarray(0, first.length).equals(first), 'middleware never sees header bytes');
  t.is(r.bytes, first.length + 4 * 1024 * 1024);
  t.true(r.data!.subarray(0, first.length).equals(first));
  t.is(sha256(r.data!.subarray(first.length)), rest);
  client.destroy();
});

test('without middleware (any data path) the leftover still comes first and exact (4 MiB)', async (t) => {
  const up = await sink(t);
  const { port } = await startRedirect(t, {
    resolve: proxyProtocolResolver({ trust: ['127.0.0.0/8'] }),
    target: { host: LOOP, port: up.port },
  });
  const client = await dial(port);
  const first = Buffer.from('leftover-in-the-header-segment');
  client.write(Buffer.concat([header(), first]));
  const rest = await sendRandom(client, 4 * 1024 * 1024);
  const r = await up.next();
  t.is(r.bytes, first.length + 4 * 1024 * 1024);
  t.true(r.data!.subarray(0, first.length).equals(first));
  t.is(sha256(r.data!.subarray(first.length)), rest);
  client.destroy();
});

test('v1 header and the string form resolve: "proxy-protocol"', async (t) => {
  const up = await sink(t);
  const { server, port } = await startRedirect(t, {
    resolve: 'proxy-protocol',
    proxyProtocol: { trust: ['127.0.0.1'], versions: ['v1'] },
    target: { host: LOOP, port: up.port },
  });
  const conn = new Promise<RedirectRecord>((r) => server.once('connection', (c) => r(c.record)));
  const client = await dial(port);
  const v1 = encodeProxyHeaderV1({
    source: { address: '2001:db8::1', port: 1000 },
    destination: { address: '2001:db8::2', port: 80 },
  });
  client.end(Buffer.concat([v1, Buffer.from('hello')]));
  const rec = await conn;
  t.deepEqual(rec.source, { address: '2001:db8::1', port: 1000, family: 'IPv6' });
  t.is((rec.extensions!.proxyProtocol as ProxyHeader).version, 1);
  t.is((await up.next()).data!.toString(), 'hello');
});

test('LOCAL command and UNKNOWN use the real socket endpoints', async (t) => {
  const up = await sink(t);
  const { server, port } = await startRedirect(t, {
    resolve: proxyProtocolResolver({ trust: ['127.0.0.1/32'] }),
    target: { host: LOOP, port: up.port },
  });
  for (const hdr of [encodeProxyHeaderV2({ command: 'local' }), encodeProxyHeaderV1({ unknown: true })]) {
    const conn = new Promise<RedirectRecord>((r) => server.once('connection', (c) => r(c.record)));
    const client = await dial(port);
    client.end(Buffer.concat([hdr, Buffer.from('x')]));
    const rec = await conn;
    t.is(rec.source.address, LOOP);
    t.is(rec.source.port, client.localPort as number);
    t.deepEqual(rec.destination, { address: LOOP, port, family: 'IPv4' });
  }
});

test('LOCAL headers with a block (TLVs, addresses, garbage, any family) are accepted; the block is discarded', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: proxyProtocolResolver({ trust: ['127.0.0.1/32'] }),
    target: { host: LOOP, port: up.port },
  });
  const fixed = (fam: number, block: Buffer): Buffer => {
    const h = Buffer.alloc(16);
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex').copy(h);
    h[12] = 0x20; // version 2, LOCAL
    h[13] = fam;
    h.writeUInt16BE(block.length, 14);
    return Buffer.concat([h, block]);
  };
  const headers: Array<[string, Buffer]> = [
    ['AF_UNSPEC, a block that is no TLVs', fixed(0x00, Buffer.from('\x05\xff\xff garbage'))],
    // What HAProxy 2.6 sends for `check-send-proxy` with send-proxy-v2: AF_UNSPEC, CRC32C and SSL TLVs.
    ['haproxy health check', Buffer.from('0d0a0d0a000d0a515549540a2000000f030004889da1df2000050000000000', 'hex')],
    [
      'AF_INET with addresses (not to be used)',
      fixed(0x11, Buffer.from([203, 0, 113, 7, 198, 51, 100, 9, 0xc8, 0x22, 0x01, 0xbb])),
    ],
    ['an undefined family byte', fixed(0x44, Buffer.alloc(40, 0xee))],
  ];
  for (const [name, hdr] of headers) {
    // Every flow ends in 'closed', a refused header included.
    const ended = new Promise<CloseSummary>((r) => server.once('closed', r));
    const client = await dial(port);
    const clientPort = client.localPort;
    const echoed = collect(client);
    const payload = Buffer.from(`payload after a LOCAL header: ${name}`);
    client.end(Buffer.concat([hdr, payload]));
    const summary = await ended;
    t.is(summary.error?.message, undefined, name);
    t.is(summary.reason, 'client-end', name);
    const rec = summary.record!;
    t.deepEqual(rec.source, { address: LOOP, port: clientPort as number, family: 'IPv4' }, name);
    t.deepEqual(rec.destination, { address: LOOP, port, family: 'IPv4' }, name);
    const ext = rec.extensions?.proxyProtocol as ProxyProtocolExtension;
    t.like(ext, { version: 2, command: 'local', family: 'unspec' }, name);
    t.deepEqual(ext.tlvs, [], name);
    t.deepEqual(rec.chain, [], name);
    t.deepEqual((await echoed).data, payload, name);
    t.is(summary.upstream.bytesWritten, payload.length, name);
  }
});

test('an untrusted peer is refused before any byte is read', async (t) => {
  const { server, port } = await startRedirect(t, {
    resolve: proxyProtocolResolver({ trust: ['10.0.0.0/8'] }),
    target: { host: LOOP, port: 1 },
  });
  const done = rejected(server);
  const client = dialRaw(port);
  const ended = drain(client);
  client.write(header());
  const s = await done;
  t.is(s.reason, 'resolve-failed');
  t.is(s.error?.code, 'ERR_REDIRECT_UNTRUSTED_SOURCE');
  t.is(s.upstream.bytesRead, 0);
  await ended;
});

test("untrusted: 'no-header' hands the peer to inner without parsing its bytes", async (t) => {
  const up = await sink(t);
  const { server, port } = await startRedirect(t, {
    resolve: proxyProtocolResolver({
      trust: ['10.0.0.0/8'],
      untrusted: 'no-header',
      inner: staticResolver(LOOP, up.port),
    }),
  });
  const conn = new Promise<RedirectRecord>((r) => server.once('connection', (c) => r(c.record)));
  const client = await dial(port);
  const bytes = Buffer.concat([header(), Buffer.from('payload')]);
  client.end(bytes);
  const rec = await conn;
  t.is(rec.mechanism, 'static');
  t.is(rec.source.address, LOOP);
  t.true((await up.next()).data!.equals(bytes), 'a header from an untrusted peer is just payload');
});

const bad: [string, Buffer | ((s: Socket) => Promise<void>), string, string | undefined][] = [
  ['malformed', Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'ERR_REDIRECT_PROXY_HEADER', 'bad-signature'],
  [
    'oversized',
    encodeProxyHeaderV2({
      source: { address: '1.2.3.4', port: 1 },
      destination: { address: '5.6.7.8', port: 2 },
      tlvs: [{ type: 0xe5, value: Buffer.alloc(600) }],
    }),
    'ERR_REDIRECT_PROXY_HEADER',
    'header-too-large',
  ],
  [
    'partial, then FIN',
    async (s) => {
      s.end(header().subarray(0, 20));
    },
    'ERR_REDIRECT_PROXY_HEADER',
    undefined,
  ],
  [
    'slowloris',
    async (s) => {
      const h = header();
      for (let i = 0; i < h.length - 1 && !s.destroyed; i++) {
        s.write(h.subarray(i, i + 1));
        // The subject: a header dribbled a byte at a time outlives resolveTimeoutMs.
        await new Promise((r) => setTimeout(r, 40));
      }
    },
    'ERR_REDIRECT_RESOLVE_TIMEOUT',
    undefined,
  ],
];

for (const [name, input, code, reason] of bad) {
  test(`${name} header closes only that connection, with a coded reason`, async (t) => {
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: proxyProtocolResolver({ trust: ['127.0.0.1'], maxHeaderBytes: 512 }),
      target: { host: LOOP, port: up.port },
      limits: { resolveTimeoutMs: 600 },
    });
    const other = await echoWorks(port, header());
    const done = rejected(server);
    const client = dialRaw(port);
    const ended = drain(client);
    if (Buffer.isBuffer(input)) client.write(input);
    else void input(client);
    const s = await done;
    t.is(s.reason, 'resolve-failed');
    t.is(s.error?.code as string | undefined, code);
    if (reason) t.is((s.error as { reason?: string }).reason, reason);
    await ended;
    other.write('pong');
    const [d] = (await once(other, 'data')) as [Buffer];
    t.is(d.toString(), 'pong', 'the other connection keeps working');
    other.destroy();
  });
}

test('chain TLV round trip: A egress v2 → B resolve proxy-protocol names A', async (t) => {
  const up = await sink(t);
  const b = await startRedirect(t, {
    id: 'proxy-b',
    resolve: 'proxy-protocol',
    proxyProtocol: { trust: ['127.0.0.1'] },
    target: { host: LOOP, port: up.port },
  });
  const a = await startRedirect(t, {
    id: 'proxy-a',
    resolve: { host: '192.0.2.80', port: 8080 },
    target: { host: LOOP, port: b.port },
    egress: { proxyProtocol: { version: 'v2', uniqueId: true, authority: 'svc.test' } },
  });
  const atB = new Promise<RedirectRecord>((r) => b.server.once('connection', (c) => r(c.record)));
  const client = await dial(a.port);
  const clientPort = client.localPort;
  client.end('through two proxies');
  const rec = await atB;
  t.deepEqual(rec.chain, [{ id: 'proxy-a', via: 'proxy-protocol' }]);
  t.deepEqual(rec.source, { address: LOOP, port: clientPort, family: 'IPv4' });
  t.deepEqual(rec.destination, { address: '192.0.2.80', port: 8080, family: 'IPv4' });
  const ext = rec.extensions?.proxyProtocol as ProxyHeader;
  t.is(ext.authority, 'svc.test');
  t.is(ext.uniqueId?.length, 36);
  t.is((await up.next()).data!.toString(), 'through two proxies');
});

test('B whose id is already in the chain refuses the flow as loop-detected', async (t) => {
  const b = await startRedirect(t, {
    id: 'same',
    resolve: 'proxy-protocol',
    proxyProtocol: { trust: ['127.0.0.1'] },
    target: { host: LOOP, port: 1 },
  });
  const a = await startRedirect(t, {
    id: 'same',
    resolve: { host: '192.0.2.80', port: 8080 },
    target: { host: LOOP, port: b.port },
    egress: { proxyProtocol: 'v2' },
  });
  const done = rejected(b.server);
  const client = await dial(a.port);
  const ended = drain(client);
  client.write('x');
  const s = await done;
  t.is(s.reason, 'loop-detected');
  t.is(s.error?.code, 'ERR_REDIRECT_LOOP_DETECTED');
  t.deepEqual(
    s.record?.chain.map((e) => e.id),
    ['same'],
  );
  await ended;
});

test('a chain longer than hopLimit is refused as loop-detected', async (t) => {
  const { server, port } = await startRedirect(t, {
    resolve: proxyProtocolResolver({ trust: ['127.0.0.1'], hopLimit: 2 }),
    target: { host: LOOP, port: 1 },
  });
  const done = rejected(server);
  const client = dialRaw(port);
  const ended = drain(client);
  client.write(
    encodeProxyHeaderV2({
      source: { address: '1.2.3.4', port: 1 },
      destination: { address: '5.6.7.8', port: 2 },
      tlvs: [{ type: 0xe0, value: encodeChainTlv(['p1', 'p2', 'p3']) }],
    }),
  );
  const s = await done;
  t.is(s.reason, 'loop-detected');
  t.is(s.error?.code, 'ERR_REDIRECT_LOOP_DETECTED');
  await ended;
});

test('egress v1 and v2 describe the original client and destination to a plain server', async (t) => {
  for (const version of ['v1', 'v2'] as const) {
    let parsed: Promise<ProxyHeader> | undefined;
    const { port: upPort } = await listenTcp(t, (s) => {
      const parser = createProxyHeaderParser();
      parsed = new Promise((resolve, reject) => {
        s.on('data', (c: Buffer) => {
          try {
            const step = parser.push(c);
            if (step.done) resolve(step.header);
          } catch (err) {
            reject(err);
          }
        });
      });
      s.on('end', () => s.end());
    });
    const a = await startRedirect(t, {
      id: 'edge',
      resolve: { host: '192.0.2.1', port: 25 },
      target: { host: LOOP, port: upPort },
      egress: { plugins: [proxyProtocolEgress({ version, id: 'edge' })] },
    });
    const client = await dial(a.port);
    const clientPort = client.localPort;
    client.end('hi');
    await drain(client);
    const h = await parsed!;
    t.is(h.version, version === 'v1' ? 1 : 2);
    t.deepEqual(h.source, { address: LOOP, port: clientPort, family: 'IPv4' });
    t.deepEqual(h.destination, { address: '192.0.2.1', port: 25, family: 'IPv4' });
  }
});

test('egress refuses to grow a chain past hopLimit', (t) => {
  const plugin = proxyProtocolEgress({ version: 'v2', id: 'me', hopLimit: 2 });
  const rec = {
    mechanism: 'static',
    source: { address: '1.1.1.1', port: 1, family: 'IPv4' },
    destination: { address: '2.2.2.2', port: 2, family: 'IPv4' },
    chain: [{ id: 'x' }, { id: 'y' }],
  } as const;
  throwsCode(
    t,
    () => plugin.preamble!(rec, { host: '2.2.2.2', port: 2, family: 'IPv4' }),
    'ERR_REDIRECT_LOOP_DETECTED',
  );
});

test('bad configuration throws coded errors that say what to add', (t) => {
  const invalid = 'ERR_REDIRECT_INVALID_OPTION';
  const e = throwsCode(
    t,
    () => createRedirectServer({ resolve: 'proxy-protocol', target: { host: LOOP, port: 1 } }),
    invalid,
  );
  t.regex(e!.message, /proxyProtocol\.trust.*trust: \[/);
  throwsCode(t, () => proxyProtocolResolver({} as never), invalid, { message: /trust.*required/ });
  throwsCode(t, () => proxyProtocolResolver({ trust: ['10.0.0.1/8'] }), invalid);
  throwsCode(t, () => proxyProtocolResolver({ trust: [], maxHeaderBytes: 10 }), invalid);
  throwsCode(t, () => proxyProtocolResolver({ trust: [], untrusted: 'guess' as never }), invalid);
  throwsCode(
    t,
    () => createRedirectServer({ resolve: { host: LOOP, port: 1 }, proxyProtocol: { trust: [] } }),
    invalid,
  );
  throwsCode(t, () => proxyProtocolEgress({ version: 'v3' as never }), invalid);
  throwsCode(t, () => proxyProtocolEgress({ version: 'v2', chainTlvType: 0xd0 }), invalid);
  throwsCode(t, () => proxyProtocolEgress({ version: 'v1', uniqueId: true }), invalid);
  throwsCode(t, () => proxyProtocolEgress({ version: 'v2', passTlvs: [0xe0] }), invalid);
  throwsCode(
    t,
    () =>
      createRedirectServer({
        id: 'mine',
        resolve: { host: LOOP, port: 1 },
        egress: { plugins: [proxyProtocolEgress({ version: 'v2', id: 'other' })] },
      }),
    invalid,
    { message: /pass id: "mine"/ },
  );
  throwsCode(
    t,
    () => createRedirectServer({ resolve: { host: LOOP, port: 1 }, egress: { proxyProtocol: 'v9' as never } }),
    invalid,
  );
});
