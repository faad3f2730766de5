import test from 'ava';
import { findTool } from '../lib/tools/doctor';
import { generateRules } from '../lib/tools/rules';
import { gatedTest, Netns, netnsUnavailable } from './helpers/netns';

/**
 * REDIRECT end to end, inside a namespace: a client connects to a TEST-NET
 * address that exists only in that namespace, the nat OUTPUT rule (from
 * generateRules) sends it to the proxy, the proxy reads the original
 * destination, a middleware upper-cases the bytes, and the proxy's marked
 * connection skips the rule and reaches the real server.
 */

const BACKENDS = {
  iptables: gatedTest(test, netnsUnavailable()),
  nft: gatedTest(
    test,
    netnsUnavailable() ?? (findTool('nft') ? undefined : 'nft is not installed (apt-get install nftables)'),
  ),
};

for (const [backend, netnsTest] of Object.entries(BACKENDS)) {
  for (const [family, address] of [
    ['IPv4', '198.51.100.10'],
    ['IPv6', '2001:db8::10'],
  ] as const) {
    netnsTest(
      `REDIRECT ${family} (${backend}): the proxy gets the original destination and the real server answers`,
      async (t) => {
        const ns = await Netns.create(t, 'redir');
        await ns.ip('addr', 'add', family === 'IPv4' ? `${address}/32` : `${address}/128`, 'dev', 'lo');
        const agent = await ns.agent(t);
        await agent.call({ cmd: 'server', host: address, port: 80 });
        const { port } = await agent.call({
          cmd: 'proxy',
          spec: {
            name: 'p',
            host: '::',
            resolve: { kind: 'netfilter' },
            egress: { mark: 0x1 },
            middleware: ['tap', 'upper'],
          },
        });
        const rules = generateRules({
          port,
          mark: 0x1,
          ipv6: true,
          destinations: ['198.51.100.0/24', '2001:db8::/32'],
          ports: [80],
          nft: backend === 'nft',
        });
        await ns.apply(rules.setup);

        const reply = await agent.call({ cmd: 'client', host: address, port: 80, send: 'hello through the proxy' });
        t.is(reply.error, undefined);
        const shown = family === 'IPv6' ? `[${address}]:80` : `${address}:80`;
        t.is(reply.data, `server ${shown} got HELLO THROUGH THE PROXY`);

        const report = await agent.call({ cmd: 'report', name: 'p' });
        t.is(report.records.length, 1);
        const [record] = report.records;
        t.like(record, {
          mechanism: 'netfilter',
          destination: { address, port: 80, family },
          source: { address: reply.local?.address, port: reply.local?.port, family },
          mark: 0,
          chain: [],
        });
        t.deepEqual(report.seen, ['hello through the proxy']);
        t.deepEqual(report.rejected, []);

        // The generated teardown removes every rule: the client then reaches the server directly.
        await ns.apply(rules.teardown);
        const direct = await agent.call({ cmd: 'client', host: address, port: 80, send: 'direct' });
        t.is(direct.data, `server ${shown} got direct`);
        t.is((await agent.call({ cmd: 'report', name: 'p' })).records.length, 1);
      },
    );
  }
}

const NOBODY = 65534;

BACKENDS.iptables(
  'REDIRECT with no privilege at all: resolve netfilter as an ordinary user, skipped by an owner rule',
  async (t) => {
    const address = '198.51.100.10';
    const ns = await Netns.create(t, 'unpriv');
    await ns.ip('addr', 'add', `${address}/32`, 'dev', 'lo');
    const peers = await ns.agent(t);
    const proxy = await ns.agent(t, { uid: NOBODY });
    t.deepEqual(await proxy.call({ cmd: 'identity' }), { uid: NOBODY, capEff: '0000000000000000' });
    await peers.call({ cmd: 'server', host: address, port: 80 });
    const { port } = await proxy.call({
      cmd: 'proxy',
      spec: { name: 'p', host: '0.0.0.0', resolve: { kind: 'netfilter' }, topLevel: {} },
    });
    await ns.apply(generateRules({ port, ownerUid: NOBODY, destinations: [`${address}/32`], ports: [80] }).setup);

    const reply = await peers.call({ cmd: 'client', host: address, port: 80, send: 'hello' });
    t.is(reply.error, undefined);
    t.is(reply.data, `server ${address}:80 got hello`);
    const report = await proxy.call({ cmd: 'report', name: 'p' });
    t.like(report.records[0], { mechanism: 'netfilter', destination: { address, port: 80 } });
    t.deepEqual(report.rejected, []);
  },
);
