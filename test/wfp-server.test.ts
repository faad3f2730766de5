import { setImmediate as tick } from 'node:timers/promises';
import test from 'ava';
import { type CloseSummary, createRedirectServer, RedirectError } from '../lib/index';
import { useWfpEngineForTests } from '../lib/capture/wfp';
import { WFP_EVENT, WfpEngine } from '../lib/net/windows-transport';
import type { WfpEngineAddon, WfpEventCallback } from '../lib/platform/addon';

// The server on the native transport (`transport: 'native'`, the default with
// resolve: 'wfp'), on every OS, with a scripted engine in place of the addon's.
// The real engine runs the same path under Wine (test/wfp-cross.test.ts).

class FakeEngine implements WfpEngineAddon {
  calls: string[] = [];
  emit!: WfpEventCallback;
  /** Listener ids from 1, outbound ids from 100 (accepted ids are the test's). */
  private nextListener = 1;
  private nextConnect = 100;
  lastListener = 0;
  lastConnect = 0;
  wfpEngineInit(callback: WfpEventCallback): void {
    this.emit = callback;
  }
  wfpEngineRef(): void {}
  wfpListen(family: 4 | 6, address: string, port: number): { id: number; port: number } {
    this.calls.push(`listen ${family} ${address} ${port}`);
    this.lastListener = this.nextListener++;
    return { id: this.lastListener, port: port || 40000 };
  }
  wfpConnect(family: 4 | 6, address: string, port: number, records?: Uint8Array, bind?: string): number {
    this.calls.push(`connect ${family} ${address} ${port} records=${records?.join(',') ?? '-'} bind=${bind ?? '-'}`);
    this.lastConnect = this.nextConnect++;
    return this.lastConnect;
  }
  wfpWrite(id: number, bytes: Uint8Array): void {
    this.calls.push(`write ${id} ${Buffer.from(bytes).toString()}`);
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

const local = { address: '127.0.0.1', port: 40000, family: 'IPv4' };
const remote = { address: '127.0.0.1', port: 50000, family: 'IPv4' };
const redirected = {
  status: 'ok',
  destination: { address: '192.0.2.7', port: 443, family: 'IPv4' },
  records: Uint8Array.of(1, 2, 3),
  context: Uint8Array.of(9),
  error: 0,
  errorName: '',
  syscall: '',
  reason: '',
  local,
  remote,
};
const direct = {
  status: 'not-redirected',
  error: 10045,
  errorName: 'WSAEOPNOTSUPP',
  syscall: 'WSAIoctl',
  reason: 'records: provider-lacks-ioctl',
  local,
  remote,
};

function withFake(): FakeEngine {
  const fake = new FakeEngine();
  useWfpEngineForTests(new WfpEngine(fake));
  return fake;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

test.afterEach.always(() => useWfpEngineForTests(undefined));

test.serial("resolve: 'wfp' relays on native transports; the records go on the outbound socket", async (t) => {
  const fake = withFake();
  const server = createRedirectServer({ resolve: 'wfp', egress: { localAddress: '127.0.0.1' } });
  const closed = new Promise<CloseSummary>((resolve) => server.once('closed', resolve));
  t.deepEqual(await server.listen({ host: '127.0.0.1' }), { address: '127.0.0.1', port: 40000, family: 'IPv4' });
  t.deepEqual(fake.calls, ['listen 4 127.0.0.1 0']);
  fake.emit(WFP_EVENT.ACCEPT, 2, 1, redirected);
  await settle();
  t.true(fake.calls.includes('connect 4 192.0.2.7 443 records=1,2,3 bind=127.0.0.1'), fake.calls.join(' | '));
  fake.emit(WFP_EVENT.CONNECT, 100, undefined, undefined);
  fake.emit(WFP_EVENT.DATA, 2, Buffer.from('ping'), undefined);
  fake.emit(WFP_EVENT.DATA, 100, Buffer.from('pong'), undefined);
  await settle();
  t.true(fake.calls.includes('write 100 ping') && fake.calls.includes('write 2 pong'), fake.calls.join(' | '));
  fake.emit(WFP_EVENT.FLUSHED, 100, 4, undefined);
  fake.emit(WFP_EVENT.FLUSHED, 2, 4, undefined);
  // Half-close: the client's FIN goes on, the upstream still answers, then both close themselves.
  fake.emit(WFP_EVENT.END, 2, undefined, undefined);
  await settle();
  t.true(fake.calls.includes('end 100'));
  t.false(fake.calls.includes('destroy 2'), 'the client stays open for the answer');
  fake.emit(WFP_EVENT.END, 100, undefined, undefined);
  await settle();
  t.true(fake.calls.includes('end 2'), fake.calls.join(' | '));
  t.true(fake.calls.includes('destroy 2') && fake.calls.includes('destroy 100'), fake.calls.join(' | '));
  fake.emit(WFP_EVENT.CLOSE, 100, undefined, undefined);
  fake.emit(WFP_EVENT.CLOSE, 2, undefined, undefined);
  const summary = await closed;
  t.is(summary.reason, 'client-end');
  t.like(summary.record, {
    mechanism: 'wfp',
    source: { address: '127.0.0.1', port: 50000, family: 'IPv4' },
    destination: { address: '192.0.2.7', port: 443, family: 'IPv4' },
  });
  t.deepEqual(summary.record?.records, Uint8Array.of(1, 2, 3));
  t.deepEqual(summary.record?.context, Uint8Array.of(9));
  t.like(summary.upstream, { bytesRead: 4, bytesWritten: 4, path: 'js' });
  t.like(summary.downstream, { bytesRead: 4, bytesWritten: 4, path: 'js' });
  await server.close();
  t.true(fake.calls.includes('closeListener 1'));
});

test.serial('not redirected: refused with a reset, or sent to notRedirected without records', async (t) => {
  const fake = withFake();
  const refusing = createRedirectServer({ resolve: 'wfp' });
  const refused = new Promise<CloseSummary>((resolve) => refusing.once('closed', resolve));
  await refusing.listen();
  fake.emit(WFP_EVENT.ACCEPT, 2, 1, direct);
  await settle();
  t.true(fake.calls.includes('reset 2'));
  fake.emit(WFP_EVENT.CLOSE, 2, undefined, undefined);
  const summary = await refused;
  t.is(summary.reason, 'not-redirected');
  t.is(summary.error?.code, 'ERR_REDIRECT_NOT_REDIRECTED');
  t.is(summary.error?.syscallCode, 'WSAEOPNOTSUPP');
  await refusing.close();

  const fallback = createRedirectServer({ resolve: 'wfp', notRedirected: { host: '127.0.0.1', port: 8080 } });
  await fallback.listen();
  fake.emit(WFP_EVENT.ACCEPT, 4, fake.lastListener, direct);
  await settle();
  t.true(fake.calls.includes('connect 4 127.0.0.1 8080 records=- bind=-'), fake.calls.join(' | '));
  fake.emit(WFP_EVENT.CONNECT, 100, 'WSAECONNREFUSED', undefined);
  await settle();
  t.true(fake.calls.includes('reset 4'));
  const done = new Promise<CloseSummary>((resolve) => fallback.once('closed', resolve));
  fake.emit(WFP_EVENT.CLOSE, 4, undefined, undefined);
  fake.emit(WFP_EVENT.CLOSE, 100, undefined, undefined);
  const s = await done;
  t.is(s.reason, 'upstream-refused');
  t.like(s.record, { mechanism: 'wfp', destination: { address: '127.0.0.1', port: 40000 } });
  await fallback.close();
});

test.serial("a static resolver serves a native listener too (transport: 'native')", async (t) => {
  const fake = withFake();
  const server = createRedirectServer({ resolve: { host: '198.51.100.1', port: 80 }, transport: 'native' });
  await server.listen();
  fake.emit(WFP_EVENT.ACCEPT, 2, 1, direct);
  await settle();
  t.true(fake.calls.includes('connect 4 198.51.100.1 80 records=- bind=-'), fake.calls.join(' | '));
  const closing = server.close({ timeoutMs: 0 });
  // The resets follow the listener's close: checked on every tick until both are in.
  while (!(fake.calls.includes('reset 2') && fake.calls.includes('reset 100'))) await tick();
  const closed = new Promise<CloseSummary>((resolve) => server.once('closed', resolve));
  fake.emit(WFP_EVENT.CLOSE, 2, undefined, undefined);
  fake.emit(WFP_EVENT.CLOSE, 100, undefined, undefined);
  await closing;
  t.like((await closed).record, { mechanism: 'static', source: { address: '127.0.0.1', port: 50000 } });
  t.is((await closed).reason, 'server-shutdown');
});

test.serial(
  'options: native needs a resolver that reads native flows; wfp needs native; off Windows listen() says so',
  async (t) => {
    const invalid = (f: () => unknown, re: RegExp) => {
      const err = t.throws(f, { instanceOf: RedirectError });
      t.is(err?.code, 'ERR_REDIRECT_INVALID_OPTION');
      t.regex(err?.message ?? '', re);
    };
    invalid(() => createRedirectServer({ resolve: 'wfp', transport: 'net' }), /needs transport: 'native'/);
    invalid(
      () =>
        createRedirectServer({
          resolve: () => ({ destination: { address: '1.2.3.4', port: 1 } }),
          transport: 'native',
        }),
      /resolveNative/,
    );
    invalid(() => createRedirectServer({ resolve: 'wfp', transport: 'tcp' as 'net' }), /'net' or 'native'/);
    if (process.platform !== 'win32') {
      const server = createRedirectServer({ resolve: 'wfp' });
      const err = await t.throwsAsync(server.listen(), { instanceOf: RedirectError });
      t.is(err?.code, 'ERR_REDIRECT_ADDON_UNAVAILABLE');
      t.regex(err?.message ?? '', /Windows only/);
    }
  },
);
