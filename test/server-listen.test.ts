import test from 'ava';
import { createRedirectServer, RedirectError } from '../lib/index';
import { collect, dial, echoUpstream, listenTcp } from './helpers/net';
import { throwsCodeAsync } from './helpers/expect';

test('a listen() that fails (EADDRINUSE) has its own code and leaves the server usable: a retry serves', async (t) => {
  const taken = await listenTcp(t, () => {});
  const echo = await echoUpstream(t);
  const server = createRedirectServer({ resolve: { host: '127.0.0.1', port: echo.port } });
  t.teardown(() => server.close({ timeoutMs: 0 }));

  const err = await t.throwsAsync(server.listen({ host: '127.0.0.1', port: taken.port }), {
    instanceOf: RedirectError,
  });
  t.is(err?.code, 'ERR_REDIRECT_LISTEN_FAILED');
  t.is(err?.syscallCode, 'EADDRINUSE');
  t.regex(err?.message ?? '', new RegExp(`127\\.0\\.0\\.1 port ${taken.port}`));
  t.false(server.listening);

  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  t.true(server.listening);
  const client = await dial(port);
  const received = collect(client);
  client.end('hello after a failed listen');
  t.is((await received).data?.toString(), 'hello after a failed listen');
  t.is(server.stats().total.connections, 1);
});

test('listen() after a successful one, or after close(), is still refused', async (t) => {
  const server = createRedirectServer({ resolve: { host: '127.0.0.1', port: 9 } });
  await server.listen({ port: 0 });
  await throwsCodeAsync(t, server.listen({ port: 0 }), 'ERR_REDIRECT_SERVER_STATE');
  await server.close();
  await throwsCodeAsync(t, server.listen({ port: 0 }), 'ERR_REDIRECT_SERVER_STATE');
});
