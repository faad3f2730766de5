import test from 'ava';
import { generateRules } from '../lib/tools/rules';
import { gatedTest, Netns, netnsUnavailable } from './helpers/netns';

/**
 * Two cooperating proxies, each in its own process with its own id and mark
 * bit, both intercepting the same destination:
 *
 *   client ──▶ A (bit 0x1) ──▶ B (bit 0x2) ──▶ server 198.51.100.10:80
 *
 * nat OUTPUT jumps to A's chain, then B's. The client's SYN (no mark) is
 * redirected by A's chain. A's SYN (0x1) returns from A's chain and is
 * redirected by B's. B accepts it with mark 0x1 (tcp_fwmark_accept=1), so its
 * record names A, and its own SYN carries 0x1|0x2 past both chains.
 */

const netnsTest = gatedTest(test, netnsUnavailable());
const ADDRESS = '198.51.100.10';
const COOPERATING = { 'proxy-a': 0x1, 'proxy-b': 0x2 };

netnsTest('client → A → B → server: both chains see the bytes, B names A, no loop', async (t) => {
  const ns = await Netns.create(t, 'coop');
  await ns.ip('addr', 'add', `${ADDRESS}/32`, 'dev', 'lo');
  await ns.sysctl('net.ipv4.tcp_fwmark_accept', 1);
  const peers = await ns.agent(t);
  const a = await ns.agent(t);
  const b = await ns.agent(t);
  await peers.call({ cmd: 'server', host: ADDRESS, port: 80 });

  const ports: Record<string, number> = {};
  for (const [agent, id, middleware] of [
    [a, 'proxy-a', ['tap', 'upper']],
    [b, 'proxy-b', ['tap']],
  ] as const) {
    const { port } = await agent.call({
      cmd: 'proxy',
      spec: {
        name: id,
        id,
        host: '0.0.0.0',
        resolve: { kind: 'netfilter', options: { id, cooperating: COOPERATING } },
        egress: { mark: COOPERATING[id], cooperating: COOPERATING },
        middleware: [...middleware],
      },
    });
    ports[id] = port;
  }
  // A's chain first, then B's: that order is the order the flow meets them.
  for (const id of ['proxy-a', 'proxy-b'] as const) {
    const rules = generateRules({
      port: ports[id] as number,
      mark: COOPERATING[id],
      chain: id === 'proxy-a' ? 'RXR-A' : 'RXR-B',
      destinations: [`${ADDRESS}/32`],
      ports: [80],
    });
    await ns.apply(rules.setup);
  }

  const reply = await peers.call({ cmd: 'client', host: ADDRESS, port: 80, send: 'hello chain' });
  t.is(reply.error, undefined);
  t.is(reply.data, `server ${ADDRESS}:80 got HELLO CHAIN`);

  const reportA = await a.call({ cmd: 'report', name: 'proxy-a' });
  const reportB = await b.call({ cmd: 'report', name: 'proxy-b' });
  t.deepEqual(reportA.seen, ['hello chain'], 'A saw the client bytes');
  t.deepEqual(reportB.seen, ['HELLO CHAIN'], "B saw A's output");
  t.like(reportA.records[0], {
    destination: { address: ADDRESS, port: 80 },
    source: { address: reply.local?.address, port: reply.local?.port },
    mark: 0,
    chain: [],
  });
  t.like(reportB.records[0], { destination: { address: ADDRESS, port: 80 }, mark: 0x1 });
  t.deepEqual(reportB.records[0]?.chain, [{ id: 'proxy-a', via: 'mark' }]);
  t.deepEqual([reportA.accepted, reportB.accepted], [1, 1], 'one flow each: no loop');
  t.deepEqual([...reportA.rejected, ...reportB.rejected], []);

  const server = await peers.call({ cmd: 'server-report' });
  t.is(server.connections.length, 1);
  t.is(server.connections[0]?.mark, 0x3, "the server's side carries both proxies' bits");
});
