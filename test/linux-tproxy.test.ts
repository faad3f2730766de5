import test from 'ava';
import { findTool } from '../lib/tools/doctor';
import { generateRules } from '../lib/tools/rules';
import { gatedTest, netnsUnavailable, routedPair } from './helpers/netns';

/**
 * TPROXY end to end across a veth pair:
 *
 *   client ns                          proxy ns
 *   vc 192.0.2.1, 2001:db8:1::1  <-->  vp 192.0.2.2, 2001:db8:1::2
 *   routes 203.0.113.0/24,             lo: 203.0.113.10, 2001:db8:2::10 (real server :80)
 *   2001:db8:2::/64 via the proxy      mangle PREROUTING TPROXY → proxy on :: (transparent)
 *
 * The proxy's own marked connection to the server loops through `lo` and
 * PREROUTING; the mark-skip rule lets it reach the server.
 */

const netnsTest = gatedTest(test, netnsUnavailable());
const BACKENDS = {
  iptables: netnsTest,
  nft: gatedTest(
    test,
    netnsUnavailable() ?? (findTool('nft') ? undefined : 'nft is not installed (apt-get install nftables)'),
  ),
};

for (const [backend, backendTest] of Object.entries(BACKENDS)) {
  backendTest(`TPROXY IPv4 and IPv6 across a veth pair (${backend}): record, middleware and real server`, async (t) => {
    const { client, proxy } = await routedPair(t);
    const inProxy = await proxy.agent(t);
    const inClient = await client.agent(t);
    await inProxy.call({ cmd: 'server', host: '203.0.113.10', port: 80 });
    await inProxy.call({ cmd: 'server', host: '2001:db8:2::10', port: 80 });
    const { port } = await inProxy.call({
      cmd: 'proxy',
      spec: {
        name: 'p',
        host: '::',
        resolve: { kind: 'tproxy' },
        egress: { mark: 0x1 },
        middleware: ['tap', 'upper'],
      },
    });
    const rules = generateRules({
      port,
      tproxy: true,
      mark: 0x1,
      ipv6: true,
      destinations: ['203.0.113.0/24', '2001:db8:2::/64'],
      ports: [80],
      nft: backend === 'nft',
    });
    await proxy.apply(rules.setup);

    const cases = [
      { address: '203.0.113.10', family: 'IPv4', shown: '203.0.113.10:80', source: '192.0.2.1' },
      { address: '2001:db8:2::10', family: 'IPv6', shown: '[2001:db8:2::10]:80', source: '2001:db8:1::1' },
    ] as const;
    for (const c of cases) {
      const reply = await inClient.call({ cmd: 'client', host: c.address, port: 80, send: `hello ${c.family}` });
      t.is(reply.error, undefined, c.family);
      t.is(reply.data, `server ${c.shown} got HELLO ${c.family.toUpperCase()}`);
      t.is(reply.local?.address, c.source);
    }

    const report = await inProxy.call({ cmd: 'report', name: 'p' });
    t.deepEqual(report.rejected, []);
    t.is(report.records.length, 2);
    for (const [i, c] of cases.entries()) {
      t.like(report.records[i], {
        mechanism: 'tproxy',
        destination: { address: c.address, port: 80, family: c.family },
        source: { address: c.source, family: c.family },
        chain: [],
      });
    }
    t.deepEqual(report.seen, ['hello IPv4', 'hello IPv6']);
    // Two flows, two upstream connections: the proxy's own connections were not diverted back to it.
    t.is(report.accepted, 2);
    t.is((await inProxy.call({ cmd: 'server-report' })).connections.length, 2);

    // ...because the mark-skip rule let them pass (their SYNs did reach it).
    for (const tool of backend === 'nft' ? [] : ['iptables-save', 'ip6tables-save']) {
      const saved = await proxy.exec(tool, '-c', '-t', 'mangle');
      const skip = saved.split('\n').find((line) => line.includes('--mark 0x1/0x1 -j RETURN'));
      t.regex(skip ?? '', /^\[[1-9]\d*:\d+\]/, `${tool}: ${skip}`);
    }

    await proxy.apply(rules.teardown);
  });
}
