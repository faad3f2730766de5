import { once } from 'node:events';
import { EventEmitter } from 'node:events';
import test from 'ava';
import { type MemoryTransport, memoryTransportPair } from '../lib/net/memory-transport';

/** An end's events, recorded in order, with promises of its 'end' and 'close'. */
function record(end: MemoryTransport) {
  const log: string[] = [];
  const data: Buffer[] = [];
  const events = new EventEmitter();
  end.attach({
    data: (chunk) => {
      data.push(chunk);
      log.push(`data:${chunk.toString()}`);
    },
    end: () => {
      log.push('end');
      events.emit('end');
    },
    error: (err) => log.push(`error:${(err as NodeJS.ErrnoException).code}`),
    close: () => {
      log.push('close');
      events.emit('close');
    },
  });
  return { log, data, ended: once(events, 'end'), closed: once(events, 'close') };
}

const turn = () => new Promise((r) => setImmediate(r));

test('a write is read one turn later, as its own chunk; writableLength counts what the peer has not read', async (t) => {
  const [a, b] = memoryTransportPair();
  const got = record(b);
  record(a);
  b.startReading();
  const flushed: string[] = [];
  a.write(Buffer.from('ab'), () => flushed.push('ab'));
  a.write(Buffer.from('c'), () => flushed.push('c'));
  t.is(a.writableLength, 3);
  t.deepEqual(got.log, []);
  await turn();
  t.deepEqual(got.log, ['data:ab', 'data:c']);
  t.deepEqual(flushed, ['ab', 'c']);
  t.is(a.writableLength, 0);
});

test('stopReading holds the rest, even inside a read; a paced reader cuts reads to its size', async (t) => {
  const [a, b] = memoryTransportPair();
  const seen: string[] = [];
  b.attach({
    data: (chunk) => {
      seen.push(chunk.toString());
      b.stopReading();
    },
    end: () => {},
    error: () => {},
    close: () => {},
  });
  b.startReading();
  a.write(Buffer.from('one'), () => {});
  a.write(Buffer.from('two'), () => {});
  await turn();
  await turn();
  t.deepEqual(seen, ['one']);
  t.is(a.writableLength, 3);
  b.setReadPace({ bytes: 2 });
  b.startReading();
  await turn();
  t.deepEqual(seen, ['one', 'tw']);
  t.is(a.writableLength, 1);
  b.startReading();
  await turn();
  t.deepEqual(seen, ['one', 'tw', 'o']);
  t.is(a.writableLength, 0);
});

test('FIN follows the data; an end closes only once both FINs were read (half-open until then)', async (t) => {
  const [a, b] = memoryTransportPair();
  const ra = record(a);
  const rb = record(b);
  a.startReading();
  b.startReading();
  a.write(Buffer.from('x'), () => {});
  a.end();
  await turn();
  t.deepEqual(rb.log, ['data:x', 'end']);
  b.write(Buffer.from('y'), () => {});
  await turn();
  t.deepEqual(ra.log, ['data:y']);
  t.false(a.destroyed);
  b.end();
  await Promise.all([ra.closed, rb.closed]);
  t.deepEqual(ra.log, ['data:y', 'end', 'close']);
  t.deepEqual(rb.log, ['data:x', 'end', 'close']);
});

test('reset: the peer reads what was written before it, then ECONNRESET and close', async (t) => {
  const [a, b] = memoryTransportPair();
  const ra = record(a);
  const rb = record(b);
  b.startReading();
  b.write(Buffer.from('unread'), () => {});
  a.write(Buffer.from('sent'), () => {});
  a.reset();
  t.true(a.destroyed);
  await Promise.all([ra.closed, rb.closed]);
  t.deepEqual(rb.log, ['data:sent', 'error:ECONNRESET', 'close']);
  t.deepEqual(ra.log, ['close']);
});

test('destroy sends FIN when nothing is unread, RST otherwise; writing to a closed peer fails with EPIPE', async (t) => {
  const [a, b] = memoryTransportPair();
  const rb = record(b);
  record(a);
  b.startReading();
  a.destroy();
  await turn();
  t.deepEqual(rb.log, ['end']);
  const failed = new Promise<unknown>((resolve) => b.write(Buffer.from('late'), resolve));
  t.is(((await failed) as NodeJS.ErrnoException).code, 'EPIPE');
  await rb.closed;
  t.deepEqual(rb.log, ['end', 'error:EPIPE', 'close']);

  const [c, d] = memoryTransportPair();
  const rd = record(d);
  record(c);
  d.startReading();
  d.write(Buffer.from('never read'), () => {});
  c.destroy();
  await rd.closed;
  t.deepEqual(rd.log, ['error:ECONNRESET', 'close']);
});

test('a reader paced with everyMs reads on a timer, a piece at a time, in order', async (t) => {
  const [a, b] = memoryTransportPair();
  const rb = record(b);
  record(a);
  b.setReadPace({ bytes: 2, everyMs: 5 });
  b.startReading();
  a.write(Buffer.from('abcde'), () => {});
  a.end();
  t.true(b.busy);
  await rb.ended;
  t.deepEqual(rb.log, ['data:ab', 'data:cd', 'data:e', 'end']);
});
