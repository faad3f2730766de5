import test from 'ava';
import { tap } from 'rxjs';
import { type Middleware, type TargetAddress, testMiddleware } from '../lib/index';
import { collect, dial, dialRaw, listenTcp, nextClose, startRedirect } from './helpers/net';

/** Release targets that no connect can use; the cast stands for a middleware with a bug. */
const BAD_TARGETS: ReadonlyArray<readonly [string, unknown]> = [
  ['a port out of range', { host: 'not an ip', port: 99999 }],
  ['an empty host', { host: '', port: 80 }],
  ['a host that is not a string', { host: 2130706433, port: 80 }],
  ['a string instead of { host, port }', '127.0.0.1:80'],
  ['null', null],
];

/** When the middleware releases: while the chain is built, on the first client chunk, or later from a timer. */
const WHEN = ['build', 'data', 'timer'] as const;

/** Defers the connect, then releases it with `target`; records whatever release() throws at it. */
function releaseWith(target: unknown, when: (typeof WHEN)[number], thrown: unknown[]): Middleware {
  return (ctx) => {
    const release = ctx.deferConnect();
    const call = (): void => {
      try {
        release(target as TargetAddress);
      } catch (err) {
        thrown.push(err);
      }
    };
    if (when === 'build') {
      call();
      return undefined;
    }
    let first = true;
    return {
      upstream: tap(() => {
        if (!first) return;
        first = false;
        if (when === 'data') call();
        else setImmediate(call);
      }),
    };
  };
}

for (const [name, bad] of BAD_TARGETS) {
  for (const when of WHEN) {
    test(`a deferConnect() release with ${name} (${when}) ends the flow at once, coded; no upstream`, async (t) => {
      let accepted = 0;
      const up = await listenTcp(t, () => {
        accepted++;
      });
      const thrown: unknown[] = [];
      const { server, port } = await startRedirect(t, {
        resolve: { host: '127.0.0.1', port: up.port },
        middleware: [releaseWith(bad, when, thrown)],
        // Long enough that a flow left waiting is told apart by its reason, not by any timing.
        limits: { connectTimeoutMs: 5_000 },
      });
      const closed = nextClose(server);
      // Not awaiting 'connect': a flow that ends while its chain is built can reset first.
      const client = dialRaw(port);
      const got = collect(client);
      client.write('hello');
      const summary = await closed;
      t.is(summary.reason, 'middleware-error');
      t.is(summary.error?.code, 'ERR_REDIRECT_INVALID_OPTION');
      t.regex(summary.error?.message ?? '', /^ctx\.deferConnect\(\): release\(target\)/);
      t.deepEqual(thrown, [], 'release() throws nothing into its caller');
      // The client gets a reset (it was sent nothing, so a plain socket reports it as one).
      t.is((await got).error?.code, 'ECONNRESET');
      t.is(summary.downstream.bytesRead, 0);
      t.is(accepted, 0, 'no upstream connection');
      t.is(server.stats().live.connections, 0);
    });
  }
}

test('a release with a bad target after a good one was pending still ends the flow, once', async (t) => {
  let accepted = 0;
  const up = await listenTcp(t, () => {
    accepted++;
  });
  const releases: Array<(to?: TargetAddress) => void> = [];
  const twoDeferrals: Middleware = (ctx) => {
    releases.push(ctx.deferConnect(), ctx.deferConnect());
    return undefined;
  };
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [twoDeferrals],
    limits: { connectTimeoutMs: 5_000 },
  });
  const summaries: string[] = [];
  server.on('closed', (s) => summaries.push(s.reason));
  const closed = nextClose(server);
  const opened = new Promise<void>((resolve) => server.once('connection', () => resolve()));
  const client = await dial(port);
  const got = collect(client);
  client.write('hello');
  await opened;
  releases[0]!({ host: '127.0.0.1', port: up.port });
  releases[1]!({ host: '127.0.0.1', port: 0 });
  releases[1]!({ host: '127.0.0.1', port: up.port }); // a second call of one release is ignored
  const summary = await closed;
  t.is(summary.reason, 'middleware-error');
  t.is(summary.error?.code, 'ERR_REDIRECT_INVALID_OPTION');
  t.is((await got).error?.code, 'ECONNRESET');
  t.is(accepted, 0);
  t.deepEqual(summaries, ['middleware-error']);
});

test('harness: a release with a bad target is reported like the server reports it', async (t) => {
  const thrown: unknown[] = [];
  const r = await testMiddleware(releaseWith({ host: 'x', port: 0 }, 'data', thrown), { upstream: ['hi'] });
  t.deepEqual(thrown, []);
  t.is(r.ended, 'error');
  t.is(r.error?.code, 'ERR_REDIRECT_INVALID_OPTION');
  t.is(r.target, undefined);
});
