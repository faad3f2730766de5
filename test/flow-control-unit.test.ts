import test from 'ava';
import { FlowControl } from '../lib/pipeline/flow-control';

// The accounting of docs/design.md "Flow control", without sockets: what the Pump is told and
// what it is answered. test/flow-control.test.ts checks the same rules on real sockets.

const KIB = 1024;

test('a direction without a chain pauses at the high-water mark and resumes at the low one', (t) => {
  const flow = new FlowControl(64 * KIB);
  t.is(flow.lowWaterMark, 32 * KIB);
  t.false(flow.shouldPause(64 * KIB - 1), 'under the mark: keep reading');
  t.true(flow.shouldPause(64 * KIB), 'at the mark: stop');
  t.false(flow.shouldPause(80 * KIB), 'already stopped: not stopped twice');
  t.is(flow.pauses, 1);
  t.false(flow.shouldResume(32 * KIB + 1), 'above the low mark: stay stopped');
  t.true(flow.shouldResume(32 * KIB), 'at the low mark: read again');
  t.false(flow.shouldResume(0), 'already reading');
  t.is(flow.peakBuffered, 80 * KIB);
});

test('a synchronous chain has answered for everything once its feeding call returns', (t) => {
  const flow = new FlowControl(64 * KIB);
  flow.feedStart(10 * KIB);
  t.is(flow.backlog, 10 * KIB);
  t.false(flow.emitted(4 * KIB, true), 'an output inside the feeding call needs no resume check');
  flow.feedEnd();
  t.is(flow.mode, 'sync');
  t.is(flow.backlog, 0, 'what it did not emit it dropped or holds by design');
  // Later inputs that it drops (filter) leave no backlog either.
  flow.feedStart(50 * KIB);
  flow.feedEnd();
  t.is(flow.backlog, 0);
});

test('an unknown chain counts every input until it shows what it is', (t) => {
  const flow = new FlowControl(64 * KIB);
  flow.feedStart(40 * KIB);
  flow.feedEnd();
  flow.feedStart(30 * KIB);
  flow.feedEnd();
  t.is(flow.mode, 'unknown');
  t.is(flow.backlog, 70 * KIB);
  t.true(flow.shouldPause(0), 'the backlog alone reaches the mark');
  // The silent-chain probe: one turn without output means it drops, like filter(() => false).
  flow.assumeSync();
  t.is(flow.mode, 'sync');
  t.is(flow.backlog, 0);
  t.true(flow.shouldResume(0));
});

test('an asynchronous chain pays its input back oldest chunk first, at least one chunk per output', (t) => {
  const flow = new FlowControl(64 * KIB);
  for (const size of [8, 8, 16]) {
    flow.feedStart(size * KIB);
    flow.feedEnd();
  }
  t.is(flow.backlog, 32 * KIB);
  t.true(flow.emitted(1 * KIB, true), 'an output outside a feeding call: check whether to resume');
  t.is(flow.mode, 'async');
  t.is(flow.backlog, 24 * KIB, 'a 1 KiB output pays back the whole oldest 8 KiB chunk');
  flow.emitted(20 * KIB, true);
  t.is(flow.backlog, 0, 'a 20 KiB output pays back chunks until it is covered (8 + 16)');
  // An output with nothing pending still lowers the backlog by its size, never below zero.
  flow.emitted(5 * KIB, true);
  t.is(flow.backlog, 0);
});

test('an output inside a feeding call shows an asynchronous chain has caught up', (t) => {
  const flow = new FlowControl(64 * KIB);
  flow.feedStart(8 * KIB);
  flow.feedEnd();
  flow.emitted(8 * KIB, true);
  t.is(flow.mode, 'async');
  flow.feedStart(8 * KIB);
  flow.feedStart(0); // nested feeds do not happen; a second call just adds
  flow.emitted(1 * KIB, true);
  flow.feedEnd();
  t.is(flow.backlog, 0);
  t.is(flow.mode, 'async', 'it stays asynchronous');
});

test('a completed chain owes nothing; an output after completion with no backlog pays nothing', (t) => {
  const flow = new FlowControl(64 * KIB);
  flow.feedStart(8 * KIB);
  flow.feedEnd();
  flow.forgetBacklog();
  t.is(flow.backlog, 0);
  t.false(flow.emitted(4 * KIB, false));
  t.is(flow.mode, 'unknown', 'a flush at completion does not make the chain asynchronous');
});

test('an empty output when subscribed declares the chain asynchronous up front', (t) => {
  const flow = new FlowControl(64 * KIB);
  flow.emitted(0, true);
  t.is(flow.mode, 'async');
  flow.feedStart(8 * KIB);
  flow.feedEnd();
  t.is(flow.backlog, 8 * KIB, 'what it holds counts');
});

test('large reads: raw and synchronous directions read up to the room under the mark', (t) => {
  const flow = new FlowControl(1024 * KIB);
  const min = 64 * KIB;
  t.is(flow.nextReadSize(false, 0, 512 * KIB, min), 512 * KIB, 'capped by maxReadBytes');
  t.is(flow.nextReadSize(false, 900 * KIB, 512 * KIB, min), 124 * KIB, 'the room left under the mark');
  t.is(flow.nextReadSize(false, 1000 * KIB, 512 * KIB, min), min, 'never below a normal read');
  t.is(flow.nextReadSize(true, 0, 512 * KIB, min), min, 'an unknown chain reads normally');
  flow.feedStart(1);
  flow.emitted(1, true);
  flow.feedEnd();
  t.is(flow.nextReadSize(true, 0, 512 * KIB, min), 512 * KIB, 'a synchronous chain reads large');
});
