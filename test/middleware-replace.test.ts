import test from 'ava';
import { splits, testMiddleware } from '../lib/index';
import { replace } from '../middleware/index';
import { chunkProbe, collect, dial, echoUpstream, startRedirect } from './helpers/net';
import { throwsCode } from './helpers/expect';

const cases: Array<[string, string, string]> = [
  ['the cat sat on the cat mat', 'cat', 'dog'],
  ['aaaaa', 'aa', 'b'],
  ['abababa', 'aba', 'X'],
  ['no match here', 'zzz', 'y'],
  ['cacacat', 'cat', ''],
  ['xcatx', 'cat', 'a much longer replacement'],
  ['ccat', 'cat', 'c'],
];

for (const [input, search, replacement] of cases) {
  test(`replaces ${JSON.stringify(search)} in ${JSON.stringify(input)} whatever the chunk cuts`, async (t) => {
    const expected = input.replaceAll(search, replacement);
    for (const pieces of splits(input, 3)) {
      const r = await testMiddleware(replace({ search, replacement, direction: 'upstream' }), {
        upstream: pieces,
        downstream: pieces,
      });
      t.is(r.upstreamBytes.toString(), expected, pieces.map((p) => p.toString()).join('|'));
      t.is(r.downstreamBytes.toString(), input);
      t.is(r.ended, 'complete');
    }
  });
}

test('holds back at most search.length - 1 bytes, and only a possible start of a match', async (t) => {
  const r = await testMiddleware(replace({ search: 'abcd', replacement: 'X' }), {
    upstream: ['xxab', 'zzabc', 'd', 'zz', 'abc'],
    endUpstream: false,
  });
  t.deepEqual(
    r.upstream.map((b) => b.toString()),
    ['xx', 'abzz', 'X', 'zz'],
  );
  t.is(r.ended, 'open');
  const ended = await testMiddleware(replace({ search: 'abcd', replacement: 'X' }), { upstream: ['zzabc'] });
  t.deepEqual(
    ended.upstream.map((b) => b.toString()),
    ['zz', 'abc'],
  );
});

test('binary search and replacement; bad options throw with a code', async (t) => {
  const r = await testMiddleware(replace({ search: Buffer.from([0, 1]), replacement: Buffer.from([2]) }), {
    upstream: [Buffer.from([5, 0]), Buffer.from([1, 0, 0, 1])],
  });
  t.deepEqual([...r.upstreamBytes], [5, 2, 0, 2]);
  throwsCode(t, () => replace({ search: '', replacement: 'x' }), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => replace({ search: 'a', replacement: 5 as never }), 'ERR_REDIRECT_INVALID_OPTION');
});

test('real sockets: replaces across TCP writes and flushes at the client FIN', async (t) => {
  const up = await echoUpstream(t);
  // The probe makes each write its own chunk, so the match is cut across chunks.
  const probe = chunkProbe();
  const { port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [probe.middleware, replace({ search: 'Hello', replacement: 'Bye', direction: 'upstream' })],
  });
  const client = await dial(port);
  const got = collect(client);
  client.write('Hel');
  t.is((await probe.next()).toString(), 'Hel');
  client.write('lo, world. Hel');
  t.is((await probe.next()).toString(), 'lo, world. Hel');
  client.end();
  t.is((await got).data?.toString(), 'Bye, world. Hel');
});
