import test from 'ava';
import { findTool } from '../lib/tools/doctor';
import { generateRules, type RulesOptions } from '../lib/tools/rules';
import { gatedTest, Netns, netnsUnavailable } from './helpers/netns';

/** Every generated rule set is accepted by the real tools, and its teardown leaves nothing behind. */

const netnsTest = gatedTest(test, netnsUnavailable());
const nftTest = gatedTest(
  test,
  netnsUnavailable() ?? (findTool('nft') ? undefined : 'nft is not installed (apt-get install nftables)'),
);

const IPTABLES: RulesOptions[] = [
  { port: 8080, mark: 0x1, ipv6: true },
  {
    port: 8080,
    mark: 0x1,
    ipv6: true,
    destinations: ['198.51.100.0/24', '2001:db8::/32'],
    ports: [80, 443],
    forwarded: ['veth0'],
    ownerUid: 0,
    chain: 'RXR-A',
  },
  { port: 8080, tproxy: true, mark: 0x2, ipv6: true },
  { port: 8080, tproxy: true, ipv6: true, forwarded: ['veth0'], ports: [80], destinations: ['203.0.113.0/24'] },
];

const NFT: RulesOptions[] = IPTABLES.map((o) => ({ ...o, nft: true }));

async function roundTrip(t: Parameters<Parameters<typeof netnsTest>[1]>[0], sets: RulesOptions[]): Promise<void> {
  const ns = await Netns.create(t, 'rules');
  await ns.ip('link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1');
  const before = await snapshot(ns);
  for (const options of sets) {
    const rules = generateRules(options);
    await ns.apply(rules.setup);
    t.not(await snapshot(ns), before, JSON.stringify(options));
    await ns.apply(rules.teardown);
    t.is(await snapshot(ns), before, `teardown of ${JSON.stringify(options)} left something behind`);
  }
}

/** Rules, routes and tables that a rule set may touch, without counters. */
async function snapshot(ns: Netns): Promise<string> {
  // One after the other: concurrent netlink dumps of nf_tables can come back empty.
  const parts: string[] = [];
  for (const tool of ['iptables-save', 'ip6tables-save']) {
    for (const table of ['nat', 'mangle']) parts.push(await ns.exec(tool, '-t', table));
  }
  for (const family of ['-4', '-6']) {
    parts.push(await ns.ip(family, 'rule'), await ns.ip(family, 'route', 'show', 'table', 'all'));
  }
  if (findTool('nft')) parts.push(await ns.exec('nft', 'list', 'tables'));
  return (
    parts
      .join('\n')
      .split('\n')
      // iptables-nft leaves its (empty) tables behind; iptables itself cannot remove them.
      .filter((l) => !l.startsWith('#') && !/^:\w+ \w+ \[/.test(l) && !/^table ip6? (nat|mangle)$/.test(l))
      .join('\n')
  );
}

netnsTest('iptables rule sets apply and tear down cleanly', (t) => roundTrip(t, IPTABLES));
nftTest('nft rule sets apply and tear down cleanly', (t) => roundTrip(t, NFT));
