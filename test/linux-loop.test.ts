import test from 'ava';
import { generateRules } from '../lib/tools/rules';
import { type Agent, gatedTest, Netns, netnsUnavailable, type ProxyReport } from './helpers/netns';

/**
 * Loop safety. A REDIRECT rule for a destination also catches the proxy's own
 * connection to that destination. With the mark-skip rule the marked egress
 * passes; without it the proxy sees its own connection come back and refuses
 * it ('loop-detected') instead of connecting again and again.
 */

const netnsTest = gatedTest(test, netnsUnavailable());
const ADDRESS = '198.51.100.10';

async function setup(t: Parameters<Parameters<typeof netnsTest>[1]>[0]) {
  const ns = await Netns.create(t, 'loop');
  await ns.ip('addr', 'add', `${ADDRESS}/32`, 'dev', 'lo');
  const agent = await ns.agent(t);
  await agent.call({ cmd: 'server', host: ADDRESS, port: 80 });
  return { ns, agent };
}

/**
 * The proxy's report once every flow it accepted has closed. The agent runs in
 * another process, so this asks again after each answer (no fixed delay); a
 * connection storm would keep accepting and never get there.
 */
async function settled(agent: Agent): Promise<ProxyReport> {
  let report = await agent.call({ cmd: 'report', name: 'p' });
  while (report.closed.length < report.accepted) report = await agent.call({ cmd: 'report', name: 'p' });
  return report;
}

netnsTest('with the mark-skip rule the marked egress reaches the real server', async (t) => {
  const { ns, agent } = await setup(t);
  const { port } = await agent.call({
    cmd: 'proxy',
    spec: { name: 'p', host: '0.0.0.0', resolve: { kind: 'netfilter' }, egress: { mark: 0x10 } },
  });
  const rules = generateRules({ port, mark: 0x10, destinations: [`${ADDRESS}/32`] });
  t.true(rules.setup.some((c) => c.join(' ').includes('-m mark --mark 0x10/0x10 -j RETURN')));
  await ns.apply(rules.setup);
  const reply = await agent.call({ cmd: 'client', host: ADDRESS, port: 80, send: 'ping' });
  t.is(reply.data, `server ${ADDRESS}:80 got ping`);
  const server = await agent.call({ cmd: 'server-report' });
  t.is(server.connections.length, 1);
  const report = await agent.call({ cmd: 'report', name: 'p' });
  t.is(report.accepted, 1);
  t.deepEqual(report.rejected, []);
});

netnsTest('without it the proxy refuses its own connection coming back: no storm', async (t) => {
  const { ns, agent } = await setup(t);
  // No egress plugin and no skip rule: the proxy's upstream connection is redirected to itself.
  const { port } = await agent.call({
    cmd: 'proxy',
    spec: { name: 'p', host: '0.0.0.0', resolve: { kind: 'netfilter' } },
  });
  await ns.apply(generateRules({ port, destinations: [`${ADDRESS}/32`] }).setup);
  const reply = await agent.call({ cmd: 'client', host: ADDRESS, port: 80, send: 'ping' });
  t.false(reply.data.includes('server'), 'the real server was never reached');
  const report = await settled(agent);
  t.is(report.accepted, 2, 'the client flow and one looped flow, nothing more');
  t.is(report.records.length, 1);
  t.deepEqual(
    report.rejected.map((r) => r.reason),
    ['loop-detected'],
  );
  t.is((await agent.call({ cmd: 'server-report' })).connections.length, 0);
});

netnsTest('a proxy that knows its own mark bit recognises the loop from the mark alone', async (t) => {
  const { ns, agent } = await setup(t);
  await ns.sysctl('net.ipv4.tcp_fwmark_accept', 1);
  const cooperating = { self: 0x1 };
  const { port } = await agent.call({
    cmd: 'proxy',
    spec: {
      name: 'p',
      host: '0.0.0.0',
      id: 'self',
      resolve: { kind: 'netfilter', options: { id: 'self', cooperating } },
      egress: { mark: 0x1, cooperating },
    },
  });
  // Rules WITHOUT the skip: the marked SYN is redirected back to us, carrying our bit.
  await ns.apply(generateRules({ port, destinations: [`${ADDRESS}/32`] }).setup);
  await agent.call({ cmd: 'client', host: ADDRESS, port: 80, send: 'ping' });
  const report = await settled(agent);
  t.is(report.accepted, 2);
  t.is(report.rejected.length, 1);
  t.is(report.rejected[0]?.reason, 'loop-detected');
  t.regex(report.rejected[0]?.message ?? '', /already passed through "self"/);
});

netnsTest('top-level options: the own bit comes from id and egress.mark, so the map may leave it out', async (t) => {
  const { ns, agent } = await setup(t);
  await ns.sysctl('net.ipv4.tcp_fwmark_accept', 1);
  const { port } = await agent.call({
    cmd: 'proxy',
    spec: {
      name: 'p',
      host: '0.0.0.0',
      id: 'self',
      resolve: { kind: 'netfilter' },
      // 'self' is not in the map: its bit is egress.mark's.
      topLevel: { cooperating: { other: 0x2 }, mark: 0x1 },
    },
  });
  // Rules WITHOUT the skip: the marked SYN is redirected back to us, carrying our bit.
  await ns.apply(generateRules({ port, destinations: [`${ADDRESS}/32`] }).setup);
  const reply = await agent.call({ cmd: 'client', host: ADDRESS, port: 80, send: 'ping' });
  t.false(reply.data.includes('server'), 'the real server was never reached');
  // The looped flow is refused before its reset reaches the client; poll in case the report races it.
  let report = await agent.call({ cmd: 'report', name: 'p' });
  while (report.rejected.length === 0) report = await agent.call({ cmd: 'report', name: 'p' });
  t.is(report.accepted, 2, 'the client flow and one looped flow, nothing more');
  t.is(report.rejected[0]?.reason, 'loop-detected');
  t.regex(report.rejected[0]?.message ?? '', /already passed through "self"/, 'recognised by its mark');
});
