import test from 'ava';
import { type Command, formatCommand, formatRules, generateRules, type RulesOptions } from '../lib/tools/rules';
import { throwsCode } from './helpers/expect';

const lines = (commands: readonly Command[]): string[] => commands.map(formatCommand);

test('REDIRECT: a chain with the mark-skip rule first, jumped to from nat OUTPUT; teardown removes it', (t) => {
  const rules = generateRules({ port: 8080, mark: 0x1 });
  t.deepEqual(lines(rules.setup), [
    'iptables -t nat -N RXREDIRECT',
    'iptables -t nat -A RXREDIRECT -m mark --mark 0x1/0x1 -j RETURN',
    'iptables -t nat -A RXREDIRECT -p tcp ! -d 127.0.0.0/8 -j REDIRECT --to-ports 8080',
    'iptables -t nat -A OUTPUT -p tcp -j RXREDIRECT',
  ]);
  t.deepEqual(lines(rules.teardown), [
    'iptables -t nat -D OUTPUT -p tcp -j RXREDIRECT',
    'iptables -t nat -F RXREDIRECT',
    'iptables -t nat -X RXREDIRECT',
  ]);
});

test('REDIRECT: destinations, ports, IPv6, forwarded interfaces, owner skip and a per-proxy chain', (t) => {
  const rules = generateRules({
    port: 3128,
    mark: 0x2,
    ipv6: true,
    destinations: ['198.51.100.0/24', '2001:db8::/32'],
    ports: [80, 443],
    forwarded: ['eth0'],
    ownerUid: 'proxy',
    chain: 'RXR-B',
  });
  t.deepEqual(lines(rules.setup), [
    'iptables -t nat -N RXR-B',
    'iptables -t nat -A RXR-B -m mark --mark 0x2/0x2 -j RETURN',
    'iptables -t nat -A RXR-B -p tcp -d 198.51.100.0/24 -m multiport --dports 80,443 -j REDIRECT --to-ports 3128',
    'iptables -t nat -A OUTPUT -p tcp -m owner ! --uid-owner proxy -j RXR-B',
    'iptables -t nat -A PREROUTING -p tcp -i eth0 -j RXR-B',
    'ip6tables -t nat -N RXR-B',
    'ip6tables -t nat -A RXR-B -m mark --mark 0x2/0x2 -j RETURN',
    'ip6tables -t nat -A RXR-B -p tcp -d 2001:db8::/32 -m multiport --dports 80,443 -j REDIRECT --to-ports 3128',
    'ip6tables -t nat -A OUTPUT -p tcp -m owner ! --uid-owner proxy -j RXR-B',
    'ip6tables -t nat -A PREROUTING -p tcp -i eth0 -j RXR-B',
  ]);
  // Every jump added is deleted, then the chain is flushed and removed.
  const added = rules.setup.filter((c) => c[3] === '-A' && c[4] !== 'RXR-B').map((c) => c.join(' '));
  const deleted = rules.teardown.filter((c) => c[3] === '-D').map((c) => c.join(' ').replace(' -D ', ' -A '));
  t.deepEqual(deleted, added);
});

test('TPROXY: policy routing, socket and mark rules, TPROXY target; teardown in reverse', (t) => {
  const rules = generateRules({ port: 9000, tproxy: true, mark: 0x1, destinations: ['203.0.113.0/24'], ports: [80] });
  t.deepEqual(lines(rules.setup), [
    'ip rule add fwmark 0x100/0x100 lookup 100',
    'ip route add local 0.0.0.0/0 dev lo table 100',
    'iptables -t mangle -N RXREDIRECT',
    'iptables -t mangle -A RXREDIRECT -p tcp -m socket --transparent -j MARK --set-xmark 0x100/0x100',
    'iptables -t mangle -A RXREDIRECT -m mark --mark 0x100/0x100 -j RETURN',
    'iptables -t mangle -A RXREDIRECT -m mark --mark 0x1/0x1 -j RETURN',
    'iptables -t mangle -A RXREDIRECT -p tcp -d 203.0.113.0/24 --dport 80 -j TPROXY --on-port 9000 --on-ip 0.0.0.0 --tproxy-mark 0x100/0x100',
    'iptables -t mangle -A PREROUTING -p tcp -j RXREDIRECT',
  ]);
  t.deepEqual(lines(rules.teardown), [
    'iptables -t mangle -D PREROUTING -p tcp -j RXREDIRECT',
    'iptables -t mangle -F RXREDIRECT',
    'iptables -t mangle -X RXREDIRECT',
    'ip rule del fwmark 0x100/0x100 lookup 100',
    'ip route del local 0.0.0.0/0 dev lo table 100',
  ]);
  const v6 = lines(
    generateRules({ port: 9000, tproxy: true, ipv4: false, ipv6: true, tproxyMark: 0x4, table: 42 }).setup,
  );
  t.true(v6.includes('ip -6 rule add fwmark 0x4/0x4 lookup 42'));
  t.true(v6.includes('ip -6 route add local ::/0 dev lo table 42'));
  t.true(v6.some((l) => l.endsWith('-j TPROXY --on-port 9000 --on-ip :: --tproxy-mark 0x4/0x4')));
  t.false(v6.some((l) => l.startsWith('iptables ')));
});

test('nft: REDIRECT and TPROXY in one inet table; teardown deletes the table', (t) => {
  const redirect = generateRules({ port: 8080, mark: 0x1, ipv6: true, nft: true, ownerUid: 0 });
  t.deepEqual(lines(redirect.setup), [
    'nft add table inet rxredirect',
    "nft add chain inet rxredirect output '{ type nat hook output priority -100; policy accept; }'",
    'nft add rule inet rxredirect output meta skuid 0 return',
    'nft add rule inet rxredirect output meta mark and 0x1 == 0x1 return',
    'nft add rule inet rxredirect output ip daddr != 127.0.0.0/8 meta l4proto tcp redirect to :8080',
    'nft add rule inet rxredirect output ip6 daddr != ::1/128 meta l4proto tcp redirect to :8080',
  ]);
  t.deepEqual(lines(redirect.teardown), ['nft delete table inet rxredirect']);

  const tproxy = generateRules({ port: 9000, tproxy: true, mark: 0x2, nft: true, ports: [80, 443], chain: 'RXR-A' });
  t.true(lines(tproxy.setup).includes('ip rule add fwmark 0x100/0x100 lookup 100'));
  t.true(
    lines(tproxy.setup).includes(
      "nft add rule inet rxr-a prerouting ip daddr != 127.0.0.0/8 tcp dport '{ 80, 443 }' tproxy ip to :9000 meta mark set meta mark or 0x100 accept",
    ),
  );
  t.true(lines(tproxy.setup).includes('nft add rule inet rxr-a prerouting meta mark and 0x2 == 0x2 return'));
  t.deepEqual(lines(tproxy.teardown).slice(0, 1), ['nft delete table inet rxr-a']);
});

test('fwmarkAccept adds the sysctl cooperating proxies need', (t) => {
  const rules = generateRules({ port: 8080, mark: 0x2, fwmarkAccept: true });
  t.deepEqual(rules.setup[0], ['sysctl', '-w', 'net.ipv4.tcp_fwmark_accept=1']);
});

test('bad options throw ERR_REDIRECT_INVALID_OPTION naming the option', (t) => {
  const cases: Array<[Partial<RulesOptions>, RegExp]> = [
    [{ port: 0 }, /rules\.port/],
    [{ port: 80, mark: 0 }, /rules\.mark/],
    [{ port: 80, tproxy: true, mark: 0x101 }, /shares bits with tproxyMark/],
    [{ port: 80, destinations: ['2001:db8::/32'] }, /turn on ipv6/],
    [{ port: 80, destinations: ['198.51.100.0/33'] }, /not an address or CIDR/],
    [{ port: 80, destinations: [] }, /non-empty/],
    [{ port: 80, chain: 'bad chain' }, /rules\.chain/],
    [{ port: 80, tproxy: true, local: true }, /use REDIRECT/],
    [{ port: 80, tproxy: true, ownerUid: 1000 }, /only applies to REDIRECT/],
    [{ port: 80, ports: [0] }, /rules\.ports/],
    [{ port: 80, local: false }, /nothing to intercept/],
    [{ port: 80, ipv4: false }, /at least one of ipv4 and ipv6/],
    [{ port: 80, tproxy: true, table: 254 }, /rules\.table/],
    [{ port: 80, forwarded: ['eth0; rm -rf /'] }, /bad interface/],
  ];
  for (const [options, message] of cases) {
    throwsCode(t, () => generateRules(options as RulesOptions), 'ERR_REDIRECT_INVALID_OPTION', { message });
  }
});

test('formatCommand quotes only what a shell would split or expand', (t) => {
  t.is(formatCommand(['iptables', '!', '-d', '10.0.0.0/8']), 'iptables ! -d 10.0.0.0/8');
  t.is(formatCommand(['nft', '{ a; b }']), "nft '{ a; b }'");
  t.is(formatCommand(['echo', "it's"]), "echo 'it'\\''s'");
  t.is(formatRules({ setup: [['a']], teardown: [['b']] }), '# setup\na\n\n# teardown\nb\n');
});
