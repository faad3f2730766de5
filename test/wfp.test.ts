import test from 'ava';
import { RedirectError } from '../lib/common/errors';
import { WFP_ERRORS, wfpError, wfpLogic, wfpRecordFromNative } from '../lib/platform/wfp';
import type { WfpLogicExports, WfpNativeOutcome, WfpScriptedReply } from '../lib/platform/addon';

// The negotiation and record building below run the same C++ (native/wfp-logic.cc)
// that the Windows build runs against WSAIoctl; here a scripted fake plays the provider.
const { ERROR_INSUFFICIENT_BUFFER, ERROR_MORE_DATA, WSAEACCES, WSAEFAULT, WSAEINVAL, WSAENOTSOCK, WSAEOPNOTSUPP } =
  WFP_ERRORS;

function logic(): WfpLogicExports {
  const exports = wfpLogic();
  if (exports === undefined) throw new Error('the addon with the WFP logic exports is not loaded (npm run build)');
  return exports;
}

const bytes = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

function ulong(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

const sizeReply = (error: number, size: number): WfpScriptedReply => ({ error, bytesReturned: size });
const okReply = (data: Uint8Array): WfpScriptedReply => ({ error: 0, bytesReturned: data.length, fill: data });

function sockaddrIn(address: number[], port: number): Uint8Array {
  return Uint8Array.from([2, 0, port >> 8, port & 0xff, ...address, 0, 0, 0, 0, 0, 0, 0, 0]);
}

function sockaddrIn6(address: number[], port: number, family = 23): Uint8Array {
  return Uint8Array.from([family, 0, port >> 8, port & 0xff, 0, 0, 0, 0, ...address, 1, 0, 0, 0]);
}

test('negotiation: size 0, WSAEFAULT with the size, then the records', (t) => {
  const data = bytes(40);
  const r = logic().wfpNegotiate([sizeReply(WSAEFAULT, 40), okReply(data)]);
  t.is(r.status, 'ok');
  t.deepEqual(r.asks, [0, 40]);
  t.deepEqual(Buffer.from(r.bytes), Buffer.from(data));
  t.is(r.error, 0);
});

test('negotiation: ERROR_INSUFFICIENT_BUFFER and ERROR_MORE_DATA are size answers too', (t) => {
  for (const code of [ERROR_INSUFFICIENT_BUFFER, ERROR_MORE_DATA]) {
    const data = bytes(17, code);
    const r = logic().wfpNegotiate([sizeReply(code, 17), okReply(data)]);
    t.is(r.status, 'ok');
    t.deepEqual(r.asks, [0, 17]);
    t.deepEqual(Buffer.from(r.bytes), Buffer.from(data));
  }
});

test('negotiation: WSAEINVAL for a buffer smaller than a ULONG asks again with a ULONG', (t) => {
  const data = bytes(12);
  const r = logic().wfpNegotiate([sizeReply(WSAEINVAL, 0), sizeReply(WSAEFAULT, 12), okReply(data)]);
  t.is(r.status, 'ok');
  t.deepEqual(r.asks, [0, 4, 12]);
  t.deepEqual(Buffer.from(r.bytes), Buffer.from(data));
});

test('negotiation: a size written into the ULONG buffer is used when lpcbBytesReturned is 0', (t) => {
  const data = bytes(100);
  const r = logic().wfpNegotiate([
    sizeReply(WSAEINVAL, 0),
    { error: WSAEFAULT, bytesReturned: 0, fill: ulong(100) },
    okReply(data),
  ]);
  t.is(r.status, 'ok');
  t.deepEqual(r.asks, [0, 4, 100]);
});

test('negotiation: a record that grows between calls is followed (bounded)', (t) => {
  const data = bytes(80);
  const r = logic().wfpNegotiate([sizeReply(WSAEFAULT, 40), sizeReply(WSAEFAULT, 80), okReply(data)]);
  t.is(r.status, 'ok');
  t.deepEqual(r.asks, [0, 40, 80]);
  const endless = logic().wfpNegotiate(Array.from({ length: 20 }, (_, i) => sizeReply(WSAEFAULT, 10 + i)));
  t.is(endless.status, 'error');
  t.is(endless.reason, 'size-unstable');
  t.is(endless.asks.length, 6);
});

test('negotiation: WSAEINVAL with a ULONG buffer and WSAEOPNOTSUPP mean "not redirected", not an error', (t) => {
  const invalid = logic().wfpNegotiate([sizeReply(WSAEINVAL, 0), sizeReply(WSAEINVAL, 0)]);
  t.is(invalid.status, 'not-redirected');
  t.is(invalid.reason, 'not-redirected');
  t.is(invalid.errorName, 'WSAEINVAL');
  t.deepEqual(invalid.asks, [0, 4]);

  const unsupported = logic().wfpNegotiate([sizeReply(WSAEOPNOTSUPP, 0)]);
  t.is(unsupported.status, 'not-redirected');
  t.is(unsupported.reason, 'provider-lacks-ioctl');
  t.is(unsupported.errorName, 'WSAEOPNOTSUPP');

  const empty = logic().wfpNegotiate([{ error: 0, bytesReturned: 0 }]);
  t.is(empty.status, 'not-redirected');
  t.is(empty.reason, 'empty');
});

test('negotiation: sizes past the maximum are refused without allocating them', (t) => {
  const huge = logic().wfpNegotiate([sizeReply(WSAEFAULT, 1 << 30)]);
  t.is(huge.status, 'error');
  t.is(huge.reason, 'too-large');
  t.deepEqual(huge.asks, [0]);

  // No size reported at all: grow geometrically up to the maximum, then stop.
  const silent = logic().wfpNegotiate(
    Array.from({ length: 10 }, () => sizeReply(WSAEFAULT, 0)),
    1000,
  );
  t.is(silent.status, 'error');
  t.is(silent.reason, 'too-large');
  t.deepEqual(silent.asks, [0, 256, 512, 1000]);
});

test('negotiation: other failures are errors of this socket, with the Windows error name', (t) => {
  const notSock = logic().wfpNegotiate([sizeReply(WSAENOTSOCK, 0)]);
  t.is(notSock.status, 'error');
  t.is(notSock.reason, 'ioctl-failed');
  t.is(notSock.errorName, 'WSAENOTSOCK');
  t.is(logic().wfpNegotiate([sizeReply(4242, 0)]).errorName, 'WIN4242');

  // A provider claiming to have written more than the buffer holds.
  const overrun = logic().wfpNegotiate([sizeReply(WSAEFAULT, 8), { error: 0, bytesReturned: 9 }]);
  t.is(overrun.status, 'error');
  t.is(overrun.reason, 'overrun');
  t.is(overrun.bytes.length, 0);
});

test('SO_ORIGINAL_DST: Windows SOCKADDR_IN and SOCKADDR_IN6 bytes', (t) => {
  t.deepEqual(logic().wfpParseSockaddr(sockaddrIn([192, 0, 2, 1], 8080)), {
    address: '192.0.2.1',
    port: 8080,
    family: 'IPv4',
  });
  const v6 = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1];
  t.deepEqual(logic().wfpParseSockaddr(sockaddrIn6(v6, 443)), { address: '2001:db8::1', port: 443, family: 'IPv6' });
  const mapped = [...Array(10).fill(0), 0xff, 0xff, 198, 51, 100, 7];
  t.is(logic().wfpParseSockaddr(sockaddrIn6(mapped, 1))?.address, '::ffff:198.51.100.7');
  // Linux's AF_INET6 (10) is not Windows' (23); short buffers are refused.
  t.is(logic().wfpParseSockaddr(sockaddrIn6(v6, 443, 10)), undefined);
  t.is(logic().wfpParseSockaddr(Uint8Array.from([2, 0, 0])), undefined);
  t.is(logic().wfpParseSockaddr(new Uint8Array(0)), undefined);
});

test('SO_ORIGINAL_DST: IPv6 text matches the canonical form (RFC 5952) for 500 zero-heavy addresses', (t) => {
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let n = 0; n < 500; n++) {
    const groups = Array.from({ length: 8 }, () => (random() % 3 === 0 ? random() & 0xffff : 0));
    if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) continue;
    const raw = groups.flatMap((g) => [g >> 8, g & 0xff]);
    const expected = new URL(`http://[${groups.map((g) => g.toString(16)).join(':')}]/`).hostname.slice(1, -1);
    t.is(logic().wfpParseSockaddr(sockaddrIn6(raw, 1))?.address, expected);
  }
});

const DST = sockaddrIn([203, 0, 113, 9], 443);
// The callout set no context; a script that runs out would read as WSAENOTSOCK.
const NO_CONTEXT = [sizeReply(WSAEOPNOTSUPP, 0)];

test('record: records, context and destination from one accepted socket', (t) => {
  const records = bytes(48);
  const context = bytes(8, 3);
  const outcome = logic().wfpBuildRecord(
    [sizeReply(WSAEFAULT, 48), okReply(records)],
    [sizeReply(WSAEFAULT, 8), okReply(context)],
    0,
    DST,
  );
  t.is(outcome.status, 'ok');
  const record = wfpRecordFromNative(outcome, { address: '192.0.2.5', port: 50000, family: 'IPv4' });
  t.is(record.mechanism, 'wfp');
  t.deepEqual(record.destination, { address: '203.0.113.9', port: 443, family: 'IPv4' });
  t.deepEqual(record.source, { address: '192.0.2.5', port: 50000, family: 'IPv4' });
  t.deepEqual(Buffer.from(record.records!), Buffer.from(records));
  t.deepEqual(Buffer.from(record.context!), Buffer.from(context));
});

test('record: no context is normal; a v4-mapped destination is normalised', (t) => {
  const mapped = sockaddrIn6([...Array(10).fill(0), 0xff, 0xff, 198, 51, 100, 7], 80);
  const outcome = logic().wfpBuildRecord(
    [sizeReply(WSAEFAULT, 4), okReply(bytes(4))],
    [sizeReply(WSAEINVAL, 0), sizeReply(WSAEINVAL, 0)],
    0,
    mapped,
  );
  t.is(outcome.status, 'ok');
  t.is(outcome.context, undefined);
  const record = wfpRecordFromNative(outcome);
  t.deepEqual(record.destination, { address: '198.51.100.7', port: 80, family: 'IPv4' });
  t.is(record.context, undefined);
});

test('record: no redirect records → ERR_REDIRECT_NOT_REDIRECTED', (t) => {
  const outcome = logic().wfpBuildRecord([sizeReply(WSAEOPNOTSUPP, 0)], NO_CONTEXT, 0, DST);
  t.is(outcome.status, 'not-redirected');
  t.is(outcome.reason, 'records: provider-lacks-ioctl');
  const err = t.throws(() => wfpRecordFromNative(outcome), { instanceOf: RedirectError });
  t.is(err?.code, 'ERR_REDIRECT_NOT_REDIRECTED');
  t.is(err?.syscallCode, 'WSAEOPNOTSUPP');
});

test('record: faults → ERR_REDIRECT_NATIVE with the failing call', (t) => {
  const cases: [WfpNativeOutcome, string, string | undefined][] = [
    [logic().wfpBuildRecord([sizeReply(WSAENOTSOCK, 0)], NO_CONTEXT, 0, DST), 'records: ioctl-failed', 'WSAENOTSOCK'],
    [
      logic().wfpBuildRecord([sizeReply(WSAEFAULT, 4), okReply(bytes(4))], [sizeReply(WSAENOTSOCK, 0)], 0, DST),
      'context: ioctl-failed',
      'WSAENOTSOCK',
    ],
    [
      logic().wfpBuildRecord(
        [sizeReply(WSAEFAULT, 4), okReply(bytes(4))],
        [sizeReply(WSAEOPNOTSUPP, 0)],
        WSAEINVAL,
        DST,
      ),
      'original-destination',
      'WSAEINVAL',
    ],
    [
      logic().wfpBuildRecord([sizeReply(WSAEFAULT, 4), okReply(bytes(4))], NO_CONTEXT, 0, new Uint8Array(3)),
      'bad-sockaddr',
      undefined,
    ],
  ];
  for (const [outcome, reason, syscallCode] of cases) {
    t.is(outcome.status, 'error');
    t.is(outcome.reason, reason);
    const err = t.throws(() => wfpRecordFromNative(outcome), { instanceOf: RedirectError });
    t.is(err?.code, 'ERR_REDIRECT_NATIVE');
    t.is(err?.syscallCode, syscallCode);
  }
});

test('error mapping without the addon: permission, malformed outcomes', (t) => {
  const denied: WfpNativeOutcome = {
    status: 'error',
    error: WSAEACCES,
    errorName: 'WSAEACCES',
    syscall: 'WSAIoctl',
    reason: 'records: ioctl-failed',
  };
  t.is(wfpError(denied).code, 'ERR_REDIRECT_PERMISSION');
  t.is(wfpError(denied).syscallCode, 'WSAEACCES');
  const noRecords: WfpNativeOutcome = {
    status: 'ok',
    destination: { address: '192.0.2.1', port: 1, family: 'IPv4' },
    records: new Uint8Array(0),
    error: 0,
    errorName: 'OK',
    syscall: '',
    reason: 'ok',
  };
  t.is(t.throws(() => wfpRecordFromNative(noRecords))?.message.includes('without redirect records'), true);
  const { destination: _, ...noDestination } = noRecords;
  t.is(
    (t.throws(() => wfpRecordFromNative({ ...noDestination, records: bytes(2) })) as RedirectError).code,
    'ERR_REDIRECT_NATIVE',
  );
  const badAddress = { ...noRecords, records: bytes(2), destination: { address: 'nope', port: 1, family: 'IPv4' } };
  t.is(
    (t.throws(() => wfpRecordFromNative(badAddress as WfpNativeOutcome)) as RedirectError).code,
    'ERR_REDIRECT_INVALID_RECORD',
  );
});
