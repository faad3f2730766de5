import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { MODES } from './helpers/modes';
import { dial, listenTcp, nextClose, nextConnection, startRedirect } from './helpers/net';

// Kept in its own worker: see the note in docs/design.md ("Known issue").

for (const mode of MODES)
  test(`a reset from the client becomes a reset to the upstream [${mode.name}]`, async (t) => {
    let upstreamSaw: Promise<NodeJS.ErrnoException | undefined> | undefined;
    const up = await listenTcp(t, (s) => {
      upstreamSaw = new Promise((resolve) => {
        s.on('error', (e) => resolve(e));
        s.on('end', () => resolve(undefined));
      });
      s.resume();
    });
    const { server, port } = await startRedirect(t, { ...mode.options, resolve: { host: '127.0.0.1', port: up.port } });
    const opened = nextConnection(server);
    const client = await dial(port);
    await opened;
    client.write('x');
    await sleep(50);
    const closed = nextClose(server);
    client.resetAndDestroy();
    const s = await closed;
    t.is(s.reason, 'client-reset');
    t.is(s.upstream.path, mode.path);
    const err = await upstreamSaw;
    t.is(err?.code, 'ECONNRESET');
  });
