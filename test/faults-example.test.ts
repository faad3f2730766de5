import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { Toxiproxy } from 'toxiproxy-node-client';
import { get, startFaultDemo } from '../examples/faults';

test('the faults example: latency for one Host, a reset for another, the rest untouched; the API sees them', async (t) => {
  const service = createServer((_, res) => res.end('hello\n')).listen(0, '127.0.0.1');
  await once(service, 'listening');
  t.teardown(() => service.close());
  const demo = await startFaultDemo({
    resolve: { host: '127.0.0.1', port: (service.address() as AddressInfo).port },
    apiPort: 0,
  });
  t.teardown(async () => {
    await demo.control.close();
    await demo.server.close({ timeoutMs: 0 });
  });
  const closed: string[] = [];
  demo.server.on('closed', (s) => closed.push(s.reason));
  const plain = await get(demo.port, 'plain.test');
  t.is(plain.status, 200);
  const slow = await get(demo.port, 'api.test');
  t.is(slow.status, 200);
  t.true(slow.ms >= 190, `api.test took ${slow.ms} ms`);
  const flaky = await get(demo.port, 'flaky.test');
  t.is(flaky.error, 'ECONNRESET');
  const app = await new Toxiproxy(`http://127.0.0.1:${demo.apiPort}`).get('app');
  t.is(app.name, 'app');
  const res = await fetch(`http://127.0.0.1:${demo.apiPort}/proxies/app/toxics`);
  const list = (await res.json()) as { name: string; scope?: unknown }[];
  t.deepEqual(
    list.map((x) => x.name),
    ['flaky', 'slow-api'],
  );
  t.deepEqual(list[0]?.scope, { host: ['flaky.test'] });
  // A client removes the reset: the next request passes.
  await (await app.getToxic('flaky')).remove();
  t.is((await get(demo.port, 'flaky.test')).status, 200);
  t.true(closed.includes('fault-reset'), closed.join());
});
