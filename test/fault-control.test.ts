import { once } from 'node:events';
import test from 'ava';
import { type Latency, type Timeout, Toxiproxy, ToxiproxyError } from 'toxiproxy-node-client';
import { createFaultControl, type FaultControl } from '../lib/fault-control/index';
import { dial, drain, echoUpstream, listenTcp, sendRandom } from './helpers/net';
import { pyClient, pyServer } from './helpers/py-timed-peer';

// The control API driven by Toxiproxy's own Node client (toxiproxy-node-client, from the npm
// registry), end to end: real proxies, real connections, toxics changed while they are open.

async function control(
  t: import('ava').ExecutionContext,
): Promise<{ api: FaultControl; client: Toxiproxy; url: string }> {
  const api = createFaultControl({ port: 0, seed: 1 });
  const { port } = await api.listen();
  t.teardown(() => api.close());
  const url = `http://127.0.0.1:${port}`;
  return { api, client: new Toxiproxy(url), url };
}

/** Time for one small echo round trip on an open connection. */
async function roundTrip(socket: import('node:net').Socket): Promise<number> {
  const started = performance.now();
  socket.write('x');
  await once(socket, 'data');
  return performance.now() - started;
}

test('create a proxy, then add, update and remove a latency toxic while a connection is open', async (t) => {
  const { client } = await control(t);
  const up = await echoUpstream(t);
  const proxy = await client.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream: `127.0.0.1:${up.port}` });
  t.is(proxy.name, 'echo');
  t.true(proxy.enabled);
  const port = Number(proxy.listen.split(':').pop());
  t.true(port > 0, proxy.listen);

  const conn = await dial(port);
  t.true((await roundTrip(conn)) < 1000); // no toxic: answers (no upper bound meant here beyond "not stalled")

  const toxic = await proxy.addToxic<Latency>({
    name: 'slow',
    type: 'latency',
    stream: 'downstream',
    toxicity: 1,
    attributes: { latency: 200, jitter: 0 },
  });
  t.is(toxic.name, 'slow');
  t.deepEqual(toxic.attributes, { latency: 200, jitter: 0 });
  t.true((await roundTrip(conn)) >= 190, 'the open connection got the new toxic');

  const updated = await toxic.update({ ...toxic.toJson(), attributes: { latency: 400, jitter: 0 } });
  t.is(updated.attributes.latency, 400);
  t.true((await roundTrip(conn)) >= 390, 'the update reached the open connection');

  const listed = await proxy.getToxic<Latency>('slow');
  t.is(listed.attributes.latency, 400);
  await toxic.remove();
  const after = await roundTrip(conn);
  t.true(after < 390, `still ${after} ms after removal`);

  const got = drain(conn);
  const sent = await sendRandom(conn, 256 * 1024);
  t.is((await got).sha256, sent);
});

test('a timeout toxic stalls an open connection until removed; nothing is lost', async (t) => {
  const { client } = await control(t);
  const up = await echoUpstream(t);
  const proxy = await client.createProxy({ name: 'stall', listen: '127.0.0.1:0', upstream: `127.0.0.1:${up.port}` });
  const conn = await dial(Number(proxy.listen.split(':').pop()));
  await roundTrip(conn);
  const toxic = await proxy.addToxic<Timeout>({
    name: 'hold',
    type: 'timeout',
    stream: 'upstream',
    toxicity: 1,
    attributes: { timeout: 0 },
  });
  const got = drain(conn);
  const sending = sendRandom(conn, 64 * 1024);
  let echoed = 0;
  conn.on('data', (c: Buffer) => {
    echoed += c.length;
  });
  // A negative can only be checked over a while: nothing comes back for 300 ms.
  await new Promise((r) => setTimeout(r, 300));
  t.is(echoed, 0);
  await toxic.remove();
  t.is((await got).sha256, await sending);
});

test('reset_peer added through the API resets the open connection with a real RST', async (t) => {
  const { client } = await control(t);
  const server = await pyServer(t, 0);
  const proxy = await client.createProxy({ name: 'rst', listen: '127.0.0.1:0', upstream: `127.0.0.1:${server.port}` });
  await proxy.addToxic({ name: 'r', type: 'reset_peer', stream: 'upstream', toxicity: 1, attributes: { timeout: 50 } });
  const c = await pyClient(t, Number(proxy.listen.split(':').pop()), 100);
  t.is(c.end, 'rst');
  t.is((await server.report).end, 'rst');
});

test('proxies: list, get, disable and enable, populate, delete, reset, version', async (t) => {
  const { client, url } = await control(t);
  const up = await echoUpstream(t);
  const upstream = `127.0.0.1:${up.port}`;
  const made = await client.populate([
    { name: 'a', listen: '127.0.0.1:0', upstream },
    { name: 'b', listen: '127.0.0.1:0', upstream },
  ]);
  t.deepEqual(Object.keys(made).sort(), ['a', 'b']);
  const all = await client.getAll();
  t.deepEqual(Object.keys(all).sort(), ['a', 'b']);
  const a = await client.get('a');
  const conn = await dial(Number(a.listen.split(':').pop()));
  const ended = drain(conn);
  const off = await a.update({ enabled: false, listen: a.listen, upstream });
  t.false(off.enabled);
  await ended; // disabling closes its connections, as Toxiproxy does
  const on = await off.update({ enabled: true, listen: a.listen, upstream });
  t.true(on.enabled);
  const again = await dial(Number(on.listen.split(':').pop()));
  t.true((await roundTrip(again)) >= 0);
  again.destroy();

  await a.addToxic({
    name: 'l',
    type: 'latency',
    stream: 'downstream',
    toxicity: 1,
    attributes: { latency: 1, jitter: 0 },
  });
  await client.reset();
  t.deepEqual(((await (await fetch(`${url}/proxies/a`)).json()) as { toxics: unknown[] }).toxics, []);
  t.regex(await client.getVersion(), /version/);
  await (await client.get('b')).remove();
  t.deepEqual(Object.keys(await client.getAll()), ['a']);
});

test("bad requests get Toxiproxy's status codes and error bodies, and the server keeps serving", async (t) => {
  const { client, url } = await control(t);
  const up = await listenTcp(t, (s) => s.resume());
  const upstream = `127.0.0.1:${up.port}`;
  const proxy = await client.createProxy({ name: 'p', listen: '127.0.0.1:0', upstream });
  const call = async (method: string, path: string, body?: string) => {
    const res = await fetch(`${url}${path}`, { method, ...(body === undefined ? {} : { body }) });
    return { status: res.status, body: (await res.text()).trim() };
  };
  const err = (status: number, error: string) => ({ status, body: JSON.stringify({ error, status }) });
  t.deepEqual(await call('GET', '/proxies/none'), err(404, 'proxy not found'));
  t.deepEqual(await call('POST', '/proxies', '{"name":"p","upstream":"x:1"}'), err(409, 'proxy already exists'));
  t.deepEqual(await call('POST', '/proxies', '{"upstream":"x:1"}'), err(400, 'missing required field: name'));
  t.deepEqual(await call('POST', '/proxies', '{"name":"q"}'), err(400, 'missing required field: upstream'));
  t.is((await call('POST', '/proxies', '{nope')).status, 400);
  t.regex((await call('POST', '/proxies', '{nope')).body, /bad request body/);
  t.deepEqual(
    await call('POST', '/proxies/p/toxics', '{"type":"latency","stream":"sideways"}'),
    err(400, 'stream was invalid, can be either upstream or downstream'),
  );
  t.deepEqual(await call('POST', '/proxies/p/toxics', '{"type":"nope"}'), err(400, 'invalid toxic type'));
  t.is((await call('POST', '/proxies/p/toxics', '{"type":"latency","attributes":{"latency":-5}}')).status, 400);
  await proxy.addToxic({
    name: 't',
    type: 'latency',
    stream: 'upstream',
    toxicity: 1,
    attributes: { latency: 1, jitter: 0 },
  });
  t.deepEqual(
    await call('POST', '/proxies/p/toxics', '{"name":"t","type":"latency"}'),
    err(409, 'toxic already exists'),
  );
  t.deepEqual(await call('GET', '/proxies/p/toxics/none'), err(404, 'toxic not found'));
  t.deepEqual(await call('DELETE', '/proxies/p/toxics/none'), err(404, 'toxic not found'));
  t.is((await call('PATCH', '/proxies/p/toxics/t', '{"attributes":{"latency":9}}')).status, 200);
  t.is((await call('PUT', '/proxies/p')).status, 405);
  t.is((await call('GET', '/nowhere')).status, 404);
  const browser = await fetch(`${url}/proxies`, { headers: { 'user-agent': 'Mozilla/5.0' } });
  t.is(browser.status, 403);
  // Default toxic name and stream, as Toxiproxy: <type>_<stream>, downstream.
  const made = await call('POST', '/proxies/p/toxics', '{"type":"slow_close","attributes":{"delay":5}}');
  t.is(made.status, 200);
  t.like(JSON.parse(made.body), { name: 'slow_close_downstream', stream: 'downstream', toxicity: 1 });
  // The client reports errors as ToxiproxyError.
  await t.throwsAsync(client.get('none'), { instanceOf: ToxiproxyError });
  t.is((await call('GET', '/proxies')).status, 200);
});

test('the API refuses to listen beyond loopback unless told to', (t) => {
  t.throws(() => createFaultControl({ host: '0.0.0.0' }), { code: 'ERR_REDIRECT_INVALID_OPTION' } as never);
  t.notThrows(() => createFaultControl({ host: '::1' }));
  t.notThrows(() => createFaultControl({ host: '0.0.0.0', allowRemote: true }));
});
