import test from 'ava';
import { generateRules } from '../lib/tools/rules';
import { gatedTest, Netns, netnsUnavailable, routedPair } from './helpers/netns';

/**
 * A client that dials the proxy's own address is not a redirected flow, even
 * when a catch-all REDIRECT rule rewrites that dial to loopback: the original
 * destination is then the proxy itself. It must be refused at once
 * ('not-redirected'), not taken as a flow to relay back into the proxy.
 */

const netnsTest = gatedTest(test, netnsUnavailable());
const OWN = '192.0.2.1';

for (const kind of ['netfilter', 'auto'] as const) {
  netnsTest(
    `${kind}: dialling the proxy's own non-loopback address is refused, with no extra connection`,
    async (t) => {
      const ns = await Netns.create(t, 'self');
      // An ordinary interface with an ordinary address (a veth pair, both ends here).
      await ns.ip('link', 'add', 'own0', 'type', 'veth', 'peer', 'name', 'own1');
      await ns.ip('addr', 'add', `${OWN}/24`, 'dev', 'own0');
      await ns.ip('link', 'set', 'own0', 'up');
      await ns.ip('link', 'set', 'own1', 'up');
      const agent = await ns.agent(t);
      const { port } = await agent.call({
        cmd: 'proxy',
        spec: {
          name: 'p',
          host: '0.0.0.0',
          resolve: { kind, options: { transparent: false } },
          egress: { mark: 0x1 },
        },
      });
      // Everything but loopback is intercepted, the proxy's own marked traffic excepted.
      await ns.apply(generateRules({ port, mark: 0x1 }).setup);

      const reply = await agent.call({ cmd: 'client', host: OWN, port, send: 'hello me' });
      t.is(reply.data, '');
      const report = await agent.call({ cmd: 'report', name: 'p' });
      t.deepEqual(
        report.rejected.map((r) => [r.reason, r.code]),
        [['not-redirected', 'ERR_REDIRECT_NOT_REDIRECTED']],
      );
      // From the non-loopback address, rewritten to loopback by the catch-all rule.
      t.regex(
        report.rejected[0]?.message ?? '',
        new RegExp(
          `^${OWN.replaceAll('.', '\\.')}:\\d+ connected to 127\\.0\\.0\\.1:${port} directly \\(it dialled the proxy's own address ${OWN.replaceAll('.', '\\.')}:${port}\\)`,
        ),
      );
      t.is(report.accepted, 1, 'the listener accepted the client and nothing else: no connection to itself');
      t.deepEqual(report.closed, ['not-redirected']);
    },
  );
}

netnsTest(
  "tproxy: a routed client that dials the proxy's own address is refused, with no extra connection",
  async (t) => {
    const { client, proxy } = await routedPair(t);
    const agent = await proxy.agent(t);
    const peer = await client.agent(t);
    const { port } = await agent.call({
      cmd: 'proxy',
      spec: { name: 'p', host: '0.0.0.0', resolve: { kind: 'tproxy' }, egress: { mark: 0x1 } },
    });
    await proxy.apply(generateRules({ port, tproxy: true, mark: 0x1, destinations: ['203.0.113.0/24'] }).setup);
    // 192.0.2.2 is the proxy's own veth address: a direct dial, not a TPROXY'd one.
    const reply = await peer.call({ cmd: 'client', host: '192.0.2.2', port, send: 'hello proxy' });
    t.is(reply.data, '');
    const report = await agent.call({ cmd: 'report', name: 'p' });
    t.deepEqual(
      report.rejected.map((r) => r.reason),
      ['not-redirected'],
    );
    t.is(report.accepted, 1);
  },
);
