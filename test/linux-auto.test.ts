import test from 'ava';
import { generateRules } from '../lib/tools/rules';
import { gatedTest, netnsUnavailable, routedPair } from './helpers/netns';

/**
 * One listener with `autoResolver` serves REDIRECT and TPROXY at once, and
 * deciding per connection: a forwarded client is TPROXY'd, a client on the
 * proxy host is REDIRECTed, and a client that dials the proxy itself is refused.
 */

const netnsTest = gatedTest(test, netnsUnavailable());

netnsTest('auto: TPROXY for forwarded flows, REDIRECT for local ones, refuse direct ones', async (t) => {
  const { client, proxy } = await routedPair(t);
  const inProxy = await proxy.agent(t);
  const inClient = await client.agent(t);
  await inProxy.call({ cmd: 'server', host: '203.0.113.10', port: 80 });
  const { port } = await inProxy.call({
    cmd: 'proxy',
    spec: { name: 'p', host: '::', resolve: { kind: 'auto' }, egress: { mark: 0x1 }, middleware: ['upper'] },
  });
  const common = { port, mark: 0x1, destinations: ['203.0.113.0/24'], ports: [80] };
  // TPROXY for what arrives on the veth, REDIRECT for what the proxy host itself dials.
  await proxy.apply(generateRules({ ...common, tproxy: true, forwarded: ['vp'] }).setup);
  await proxy.apply(generateRules(common).setup);

  const forwarded = await inClient.call({ cmd: 'client', host: '203.0.113.10', port: 80, send: 'from afar' });
  t.is(forwarded.data, 'server 203.0.113.10:80 got FROM AFAR');
  const local = await inProxy.call({ cmd: 'client', host: '203.0.113.10', port: 80, send: 'from here' });
  t.is(local.data, 'server 203.0.113.10:80 got FROM HERE');
  const direct = await inProxy.call({ cmd: 'client', host: '127.0.0.1', port, send: 'to the proxy itself' });
  t.false(direct.data.includes('server'));

  const report = await inProxy.call({ cmd: 'report', name: 'p' });
  t.deepEqual(
    report.records.map((r) => [r.mechanism, r.destination.address, r.destination.port, r.source.address]),
    [
      ['tproxy', '203.0.113.10', 80, '192.0.2.1'],
      ['netfilter', '203.0.113.10', 80, local.local?.address],
    ],
  );
  t.deepEqual(
    report.rejected.map((r) => [r.reason, r.code]),
    [['not-redirected', 'ERR_REDIRECT_NOT_REDIRECTED']],
  );
});
