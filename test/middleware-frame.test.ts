import test from 'ava';
import { map } from 'rxjs';
import { splits, testMiddleware, upstream } from '../lib/index';
import { frame, unframe } from '../middleware/index';
import { chunkProbe, collect, dial, echoUpstream, startRedirect } from './helpers/net';
import { throwsCode } from './helpers/expect';

const lines = { type: 'lines', delimiter: '\r\n', maxLineBytes: 8 } as const;

test('lines: one message per line whatever the cuts, delimiter across chunks', async (t) => {
  const input = 'one\r\ntwo\r\n\r\nthree\r\nend';
  for (const pieces of splits(input, 3)) {
    const seen: string[] = [];
    const r = await testMiddleware(
      [
        frame(lines),
        upstream(
          map((m: Buffer) => {
            seen.push(m.toString());
            return Buffer.from(m.toString().toUpperCase());
          }),
        ),
        unframe(lines),
      ],
      { upstream: pieces },
    );
    t.deepEqual(seen, ['one', 'two', '', 'three', 'end']);
    t.is(r.upstreamBytes.toString(), 'ONE\r\nTWO\r\n\r\nTHREE\r\nEND\r\n');
  }
});

test('lines: a line over maxLineBytes fails with ERR_REDIRECT_FRAMING however it arrives', async (t) => {
  for (const pieces of splits('ok\r\n123456789\r\n', 3)) {
    const r = await testMiddleware(frame(lines), { upstream: pieces });
    t.is(r.error?.code, 'ERR_REDIRECT_FRAMING');
  }
  for (const pieces of splits('12345678\r\n', 3)) {
    const r = await testMiddleware(frame(lines), { upstream: pieces });
    t.is(r.ended, 'complete');
  }
  const tooLong = await testMiddleware(frame(lines), { upstream: ['123456789'], endUpstream: true });
  t.is(tooLong.error?.code, 'ERR_REDIRECT_FRAMING');
});

test('length-prefixed uint16 and uint32: messages out, bytes back, whatever the cuts', async (t) => {
  for (const prefix of ['uint16', 'uint32'] as const) {
    const size = prefix === 'uint16' ? 2 : 4;
    const msg = (s: string) => {
      const head = Buffer.alloc(size);
      if (size === 2) head.writeUInt16BE(s.length);
      else head.writeUInt32BE(s.length);
      return Buffer.concat([head, Buffer.from(s)]);
    };
    const input = Buffer.concat([msg('hi'), msg(''), msg('there')]);
    for (const pieces of splits(input, 3)) {
      const seen: string[] = [];
      const opts = { type: 'length', prefix, maxMessageBytes: 16 } as const;
      const r = await testMiddleware(
        [
          frame(opts),
          upstream(
            map((m: Buffer) => {
              seen.push(m.toString());
              return m;
            }),
          ),
          unframe(opts),
        ],
        { upstream: pieces },
      );
      t.deepEqual(seen, ['hi', '', 'there']);
      t.deepEqual(r.upstreamBytes, input);
    }
  }
});

test('length-prefixed: over the limit and truncated input fail; options are checked', async (t) => {
  const opts = { type: 'length', prefix: 'uint16', maxMessageBytes: 4 } as const;
  const big = await testMiddleware(frame(opts), { upstream: [Buffer.from([0, 5, 1, 2, 3, 4, 5])] });
  t.is(big.error?.code, 'ERR_REDIRECT_FRAMING');
  const cut = await testMiddleware(frame(opts), { upstream: [Buffer.from([0, 3, 1])] });
  t.is(cut.error?.code, 'ERR_REDIRECT_FRAMING');
  const unframed = await testMiddleware(unframe(opts), { upstream: [Buffer.from('12345')] });
  t.is(unframed.error?.code, 'ERR_REDIRECT_FRAMING');
  throwsCode(
    t,
    () => frame({ type: 'length', prefix: 'uint16', maxMessageBytes: 70000 }),
    'ERR_REDIRECT_INVALID_OPTION',
  );
  throwsCode(t, () => frame({ type: 'lines', maxLineBytes: 0 }), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => frame({ type: 'x' } as never), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => frame({ type: 'length', prefix: 'int8' } as never), 'ERR_REDIRECT_INVALID_OPTION');
});

test('real sockets: a line protocol rewritten line by line', async (t) => {
  const up = await echoUpstream(t);
  const opts = { type: 'lines', maxLineBytes: 1024, direction: 'upstream' } as const;
  // The probe makes each write its own chunk, so lines are cut across chunks.
  const probe = chunkProbe();
  const { port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [probe.middleware, frame(opts), upstream(map((m: Buffer) => Buffer.from(`<${m}>`))), unframe(opts)],
  });
  const client = await dial(port);
  const got = collect(client);
  client.write('ab');
  t.is((await probe.next()).toString(), 'ab');
  client.write('c\nde');
  t.is((await probe.next()).toString(), 'c\nde');
  client.end('f\n');
  t.is((await got).data?.toString(), '<abc>\n<def>\n');
});
