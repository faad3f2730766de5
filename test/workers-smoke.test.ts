import test from 'ava';
import { createRedirectCluster } from '../lib/workers/index';
import { dial, drain, echoUpstream, sendRandom } from './helpers/net';

test('smoke', async (t) => {
  const up = await echoUpstream(t);
  process.env.RXR_TEST_UPSTREAM_PORT = String(up.port);
  const cluster = createRedirectCluster({ module: require.resolve('./fixtures/workers-config'), listen: { port: 0 }, workers: 2, summaries: true });
  const addr = await cluster.start();
  t.log(addr, cluster.list());
  for (let i = 0; i < 10; i++) {
    const s = await dial(addr.port);
    const got = drain(s);
    const h = await sendRandom(s, 1 << 20);
    const r = await got;
    t.is(r.sha256, h);
  }
  const st = await cluster.stats();
  t.log(JSON.stringify(st.perWorker.map((w) => [w.pid, w.server.total, w.server.dataPaths, w.zeroCopy?.maxPipes])));
  await cluster.reload();
  t.log(cluster.list());
  await cluster.close();
  t.pass();
});
