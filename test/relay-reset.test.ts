import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { CloseSummary } from '../lib/index';
import { dial, listenTcp, nextConnection, startRedirect } from './helpers/net';

// Kept in its own worker: see the note in docs/design.md ("Known issue").
function nextClose(server: { once(e: 'closed', fn: (s: CloseSummary) => void): unknown }): Promise<CloseSummary> {
  return new Promise((resolve) => server.once('closed', resolve));
}

test('a reset from the client becomes a reset to the upstream', async (t) => {
  let upstreamSaw: Promise<NodeJS.ErrnoException | undefined> | undefined;
  const up = await listenTcp(t, (s) => {
    upstreamSaw = new Promise((resolve) => {
      s.on('error', (e) => resolve(e));
      s.on('end', () => resolve(undefined));
    });
    s.resume();
  });
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port } });
  const opened = nextConnection(server);
  const client = await dial(port);
  await opened;
  client.write('x');
  await sleep(50);
  const closed = nextClose(server);
  client.resetAndDestroy();
  const s = await closed;
  t.is(s.reason, 'client-reset');
  const err = await upstreamSaw;
  t.is(err?.code, 'ECONNRESET');
});
