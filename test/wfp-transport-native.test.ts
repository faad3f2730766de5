import test from 'ava';
import { RedirectError } from '../lib/common/errors';
import { engineError, WFP_EVENT, WfpEngine } from '../lib/net/windows-transport';
import type { WfpEngineAddon, WfpEventCallback } from '../lib/platform/addon';

// A scripted stand-in for the Windows engine (native/win/wfp-engine.cc): it
// records the calls and lets the test fire the events the I/O thread would.
// The real engine ran under Wine (test/wfp-cross.test.ts); this checks the JS
// half's contract on every OS.
class FakeEngine implements WfpEngineAddon {
  calls: string[] = [];
  emit!: WfpEventCallback;
  ref = false;
  private nextId = 1;
  wfpEngineInit(callback: WfpEventCallback): void {
    this.emit = callback;
  }
  wfpEngineRef(ref: boolean): void {
    this.ref = ref;
    this.calls.push(`ref ${ref}`);
  }
  wfpListen(family: 4 | 6, address: string, port: number): { id: number; port: number } {
    this.calls.push(`listen ${family} ${address} ${port}`);
    return { id: this.nextId++, port: port || 40000 };
  }
  wfpConnect(family: 4 | 6, address: string, port: number, records?: Uint8Array): number {
    this.calls.push(`connect ${family} ${address} ${port} records=${records?.length ?? 0}`);
    return this.nextId++;
  }
  wfpWrite(id: number, bytes: Uint8Array): void {
    this.calls.push(`write ${id} ${bytes.length}`);
  }
  wfpReadStart(id: number): void {
    this.calls.push(`readStart ${id}`);
  }
  wfpReadStop(id: number): void {
    this.calls.push(`readStop ${id}`);
  }
  wfpEnd(id: number): void {
    this.calls.push(`end ${id}`);
  }
  wfpReset(id: number): void {
    this.calls.push(`reset ${id}`);
  }
  wfpDestroy(id: number): void {
    this.calls.push(`destroy ${id}`);
  }
  wfpCloseListener(id: number): void {
    this.calls.push(`closeListener ${id}`);
  }
}

const accepted = (status: 'ok' | 'not-redirected') => ({
  status,
  error: 0,
  errorName: 'OK',
  syscall: '',
  reason: status,
  local: { address: '::ffff:127.0.0.1', port: 40000, family: 'IPv6' },
  remote: { address: '127.0.0.1', port: 50000, family: 'IPv4' },
});

test('accept: a paused transport with normalised endpoints; the engine is referenced while anything lives', (t) => {
  const fake = new FakeEngine();
  const engine = new WfpEngine(fake);
  const seen: string[] = [];
  const listener = engine.listen({ host: '::', port: 0 }, (transport, info) => {
    seen.push(info.status);
    t.deepEqual(transport.localEndpoint, { address: '127.0.0.1', port: 40000, family: 'IPv4' });
    t.is(transport.writableLength, 0);
  });
  t.is(listener.port, 40000);
  t.true(fake.ref);
  fake.emit(WFP_EVENT.ACCEPT, 7, listener.id, accepted('ok'));
  t.deepEqual(seen, ['ok']);
  t.false(
    fake.calls.some((c) => c.startsWith('readStart')),
    'nothing is read before the core asks',
  );
  listener.close();
  t.true(fake.ref, 'the accepted connection still holds the engine');
  fake.emit(WFP_EVENT.CLOSE, 7, undefined, undefined);
  t.false(fake.ref);
  t.is(engine.liveTransports, 0);
});

test('flow control: writableLength falls with FLUSHED reports; each write is acknowledged once, in order', (t) => {
  const fake = new FakeEngine();
  const engine = new WfpEngine(fake);
  const upstream = engine.connect({ host: '192.0.2.1', port: 443, family: 'IPv4' }, Uint8Array.of(1, 2, 3));
  t.true(fake.calls.includes('connect 4 192.0.2.1 443 records=3'));
  const acks: string[] = [];
  upstream.attach({ data() {}, end() {}, error() {}, close() {} });
  upstream.write(Buffer.alloc(100), (err) => acks.push(`a ${err ?? 'ok'}`));
  upstream.write(Buffer.alloc(50), (err) => acks.push(`b ${err ?? 'ok'}`));
  t.is(upstream.writableLength, 150);
  fake.emit(WFP_EVENT.FLUSHED, 1, 120, undefined);
  t.is(upstream.writableLength, 30);
  t.deepEqual(acks, ['a ok']);
  fake.emit(WFP_EVENT.FLUSHED, 1, 30, undefined);
  t.deepEqual(acks, ['a ok', 'b ok']);
  t.is(upstream.writableLength, 0);

  upstream.startReading();
  upstream.startReading();
  upstream.stopReading();
  t.deepEqual(
    fake.calls.filter((c) => c.startsWith('read')),
    ['readStart 1', 'readStop 1'],
  );
});

test('close fails unflushed writes; events before attach are delivered on attach', async (t) => {
  const fake = new FakeEngine();
  const engine = new WfpEngine(fake);
  const upstream = engine.connect({ host: '2001:db8::1', port: 80, family: 'IPv6' });
  const connected = upstream.connected();
  fake.emit(WFP_EVENT.CONNECT, 1, 'WSAECONNREFUSED', undefined);
  const refused = await t.throwsAsync(connected);
  t.is((refused as Error & { code: string }).code, 'ECONNREFUSED');
  fake.emit(WFP_EVENT.CLOSE, 1, undefined, undefined);
  const events: string[] = [];
  upstream.attach({
    data() {},
    end() {},
    error: (e) => events.push(`error ${(e as Error & { code: string }).code}`),
    close: () => events.push('close'),
  });
  t.deepEqual(events, ['error ECONNREFUSED', 'close']);
  t.true(upstream.destroyed);

  const other = engine.connect({ host: '192.0.2.2', port: 80, family: 'IPv4' });
  fake.emit(WFP_EVENT.CONNECT, 2, undefined, undefined);
  await other.connected();
  const acks: string[] = [];
  other.attach({ data() {}, end() {}, error() {}, close() {} });
  other.write(Buffer.alloc(10), (err) => acks.push(String((err as { code?: string } | null)?.code)));
  fake.emit(WFP_EVENT.CLOSE, 2, undefined, undefined);
  t.deepEqual(acks, ['ECONNABORTED']);
  t.is(other.writableLength, 0);
});

test('engine errors read like Node system errors; bad hosts are coded option errors', (t) => {
  const err = engineError('WSAECONNRESET', 'recv');
  t.is(err.code, 'ECONNRESET');
  t.is(err.syscall, 'recv');
  t.is(engineError('WIN4242', '').code, 'WIN4242');
  const engine = new WfpEngine(new FakeEngine());
  const bad = t.throws(() => engine.connect({ host: 'example.com', port: 1, family: 'IPv4' }), {
    instanceOf: RedirectError,
  });
  t.is(bad?.code, 'ERR_REDIRECT_INVALID_OPTION');
});
