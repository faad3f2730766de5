import { networkInterfaces } from 'node:os';
import test from 'ava';
import { createRecord } from '../lib/index';
import { flowKey, recordLoop, selfTargetLoop as selfTargetLoopOn } from '../lib/common/loop-guard';
import { isHostAddress } from '../lib/platform/host-address';

const selfTargetLoop = (
  target: Parameters<typeof selfTargetLoopOn>[0],
  listen: Parameters<typeof selfTargetLoopOn>[1],
) => selfTargetLoopOn(target, listen, isHostAddress);

const ours = { address: '127.0.0.1', port: 40001, family: 'IPv4' as const };
const upstream = { address: '127.0.0.1', port: 8080, family: 'IPv4' as const };
const egress = new Set([flowKey(ours, upstream)]);

test('a kernel-observed flow whose two ends are one of our own outbound sockets is a loop', (t) => {
  for (const mechanism of ['netfilter', 'tproxy', 'wfp']) {
    const record = createRecord({ mechanism, source: ours, destination: upstream });
    t.regex(recordLoop(record, 'p', egress) ?? '', /our own outbound connection/, mechanism);
  }
});

test('the same source port towards another destination is not a loop (the kernel reuses loopback ports)', (t) => {
  const record = createRecord({ mechanism: 'netfilter', source: ours, destination: { ...upstream, port: 9090 } });
  t.is(recordLoop(record, 'p', egress), undefined);
});

test('a static or function record is never matched against our sockets: its destination is not the flow’s', (t) => {
  for (const mechanism of ['static', 'function', 'proxy-protocol']) {
    const record = createRecord({ mechanism, source: ours, destination: upstream });
    t.is(recordLoop(record, 'p', egress), undefined, mechanism);
  }
});

test('our own id in the chain is a loop whatever the mechanism', (t) => {
  const record = createRecord({ mechanism: 'static', destination: upstream, chain: [{ id: 'a' }, { id: 'p' }] });
  t.regex(recordLoop(record, 'p', new Set()) ?? '', /already passed through "p" \(chain: a → p\)/);
  t.is(recordLoop(record, 'q', new Set()), undefined);
});

test('a target that is this listener is a loop; the same port on another host is not', (t) => {
  const wildcard = { address: '0.0.0.0', port: 15001, family: 'IPv4' as const };
  const target = (host: string, port = 15001) => ({ host, port, family: 'IPv4' as const });
  t.truthy(selfTargetLoop(target('127.0.0.1'), wildcard));
  t.truthy(selfTargetLoop(target('0.0.0.0'), wildcard));
  t.is(selfTargetLoop(target('192.0.2.1'), wildcard), undefined);
  t.is(selfTargetLoop(target('127.0.0.1', 15002), wildcard), undefined);
  const bound = { address: '127.0.0.2', port: 15001, family: 'IPv4' as const };
  t.truthy(selfTargetLoop(target('127.0.0.2'), bound));
  t.is(selfTargetLoop(target('127.0.0.1'), bound), undefined);
  t.is(selfTargetLoop(target('127.0.0.1'), undefined), undefined);
  // Every address of this host reaches a wildcard listener, not only loopback.
  for (const info of Object.values(networkInterfaces()).flat()) {
    if (info?.family === 'IPv4') t.truthy(selfTargetLoop(target(info.address), wildcard), info.address);
  }
});

test('the host is asked about an address only when the port is a wildcard listener’s', (t) => {
  const asked: string[] = [];
  const ours = (address: string): boolean => {
    asked.push(address);
    return address === '10.1.1.1';
  };
  const wildcard = { address: '0.0.0.0', port: 443, family: 'IPv4' as const };
  const target = (host: string, port: number) => ({ host, port, family: 'IPv4' as const });
  t.is(selfTargetLoopOn(target('10.1.1.1', 80), wildcard, ours), undefined);
  t.is(selfTargetLoopOn(target('10.1.1.1', 443), { ...wildcard, address: '10.2.2.2' }, ours), undefined);
  t.deepEqual(asked, [], 'another port, or a bound listener: a comparison, no question');
  t.truthy(selfTargetLoopOn(target('10.1.1.1', 443), wildcard, ours));
  t.is(selfTargetLoopOn(target('10.9.9.9', 443), wildcard, ours), undefined);
  t.deepEqual(asked, ['10.1.1.1', '10.9.9.9']);
});
