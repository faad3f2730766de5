import test from 'ava';
import { type CloseSummary, RedirectError, splits, testMiddleware } from '../lib/index';
import { inspect } from '../middleware/index';
import { collect, dial, echoUpstream, readAtLeast, startRedirect } from './helpers/net';
import { throwsCode } from './helpers/expect';

const TEXT = 'GET /?q=hello HTTP/1.1\r\nX: DROP TABLE users\r\n\r\n';

test('denies a string pattern wherever the chunks are cut, and passes bytes before it unchanged', async (t) => {
  for (const pieces of splits(TEXT, 3)) {
    const r = await testMiddleware(inspect({ patterns: ['DROP TABLE'] }), { upstream: pieces });
    t.is(r.ended, 'error');
    t.true(r.error instanceof RedirectError);
    t.is(r.error?.code, 'ERR_REDIRECT_DENIED');
    // Exactly the chunks before the one completing the match are forwarded, unchanged.
    const matchEnd = TEXT.indexOf('DROP TABLE') + 'DROP TABLE'.length;
    const expected: Buffer[] = [];
    let at = 0;
    for (const p of pieces) {
      if (at + p.length >= matchEnd) break;
      expected.push(p);
      at += p.length;
    }
    t.deepEqual(
      r.upstream,
      expected.filter((p) => p.length > 0),
    );
  }
});

test('no match: bytes pass through unchanged, same chunks, in order', async (t) => {
  for (const pieces of splits('a harmless request body', 3)) {
    const r = await testMiddleware(inspect({ patterns: ['DROP', Buffer.from([0xff, 0xfe])] }), {
      upstream: pieces,
      downstream: pieces,
    });
    t.is(r.ended, 'complete');
    t.deepEqual(
      r.upstream,
      pieces.filter((p) => p.length > 0),
    );
    t.is(r.downstreamBytes.toString(), 'a harmless request body');
  }
});

test('reports every match once, with its stream offset, across boundaries; allow keeps going', async (t) => {
  const data = 'xxabcxxabcabc';
  for (const pieces of splits(data, 3)) {
    const offsets: number[] = [];
    const r = await testMiddleware(
      inspect({
        patterns: ['abc'],
        direction: 'upstream',
        onMatch: (m) => {
          offsets.push(m.offset);
          t.is(m.bytes.toString(), 'abc');
          t.is(m.direction, 'upstream');
        },
      }),
      { upstream: pieces },
    );
    t.deepEqual(offsets, [2, 7, 10]);
    t.is(r.upstreamBytes.toString(), data);
  }
});

test('RegExp patterns need maxMatchLength and match across chunks', async (t) => {
  throwsCode(t, () => inspect({ patterns: [/a+/] }), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => inspect({ patterns: [] }), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => inspect({ patterns: [''] }), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => inspect({ patterns: ['a'], direction: 'sideways' as never }), 'ERR_REDIRECT_INVALID_OPTION');
  const data = 'user=bob&password=hunter2&x=1';
  for (const pieces of splits(data, 3)) {
    const found: string[] = [];
    const r = await testMiddleware(
      inspect({
        patterns: [/password=[a-z0-9]+&/],
        maxMatchLength: 32,
        onMatch: (m) => {
          found.push(m.bytes.toString());
          return 'allow';
        },
      }),
      { upstream: pieces },
    );
    t.deepEqual(found, ['password=hunter2&']);
    t.is(r.upstreamBytes.toString(), data);
  }
});

test('direction limits where it looks; a throwing onMatch ends the connection', async (t) => {
  const r = await testMiddleware(inspect({ patterns: ['bad'], direction: 'downstream' }), {
    upstream: ['bad'],
    downstream: ['fine'],
  });
  t.is(r.ended, 'complete');
  const r2 = await testMiddleware(
    inspect({
      patterns: ['bad'],
      onMatch: () => {
        throw new Error('oops');
      },
    }),
    { upstream: ['ba', 'd'] },
  );
  t.is(r2.error?.code, 'ERR_REDIRECT_MIDDLEWARE');
});

test('real sockets: a denied pattern resets the client with a coded close summary', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [inspect({ patterns: ['SECRET'], direction: 'upstream' })],
  });
  const closed = new Promise<CloseSummary>((r) => server.once('closed', r));
  const client = await dial(port);
  const got = collect(client);
  // The pattern is cut across two chunks: the second write waits for the echo
  // of what comes before the pattern, which inspect() passes on at once.
  const before = readAtLeast(client, 'hello'.length);
  client.write('hello SEC');
  await before;
  client.write('RET world');
  const result = await got;
  const summary = await closed;
  t.is(summary.reason, 'middleware-error');
  t.is(summary.error?.code, 'ERR_REDIRECT_DENIED');
  t.true((result.data?.toString() ?? '').startsWith('hello'));
  t.false((result.data?.toString() ?? '').includes('world'));
});
