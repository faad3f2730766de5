import { once } from 'node:events';
import { createServer, Socket, connect } from 'node:net';
import test from 'ava';
import {
  boundAddressOf,
  checkNodeInternals,
  descriptorOf,
  disableReadAhead,
  finReadByNode,
  readIntoOwnBuffers,
  restartHandle,
  restoreReadAhead,
  stopHandle,
  learnTcpHandleClass,
  openTcpHandle,
} from '../lib/platform/node-internals';
import { optionalLinux } from '../lib/platform/addon';

// Every Node internal the library uses (lib/platform/node-internals.ts) still exists on the
// running Node and still does what we rely on. A Node upgrade that moves one fails here by name.

async function pair(
  t: import('ava').ExecutionContext,
): Promise<{ client: Socket; accepted: Socket; server: import('node:net').Server }> {
  const server = createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as { port: number };
  const client = connect(address.port, '127.0.0.1');
  const connected = once(client, 'connect');
  const [accepted] = (await once(server, 'connection')) as [Socket];
  await connected;
  t.teardown(() => {
    client.destroy();
    accepted.destroy();
    server.close();
  });
  return { client, accepted, server };
}

test('the running Node has every internal we use', async (t) => {
  const { client, server } = await pair(t);
  t.deepEqual(checkNodeInternals(client, server), [], `Node ${process.version} moved these internals`);
  t.true(Number.isInteger(descriptorOf(client)));
  t.is(boundAddressOf(client)?.port, client.localPort);
});

test('readStop really stops libuv reading, and restart resumes it', async (t) => {
  const { client, accepted } = await pair(t);
  let seen = 0;
  accepted.on('data', (c: Buffer) => {
    seen += c.length;
  });
  accepted.resume();
  // Once a first byte arrived the handle is reading for sure.
  client.write('x');
  await once(accepted, 'data');
  seen = 0;
  t.true(stopHandle(accepted), 'the handle was reading');
  client.write(Buffer.alloc(1000));
  // Written and acknowledged by the kernel; a stopped handle reads nothing.
  await new Promise<void>((resolve) => client.write(Buffer.alloc(0), () => resolve()));
  await new Promise((resolve) => setImmediate(resolve));
  t.is(seen, 0);
  restartHandle(accepted);
  while (seen < 1000) await once(accepted, 'data');
  t.is(seen, 1000);
});

test('user-buffer reads land in our buffers', async (t) => {
  const { client, accepted } = await pair(t);
  const mine = Buffer.alloc(128 * 1024);
  const got: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    t.true(
      readIntoOwnBuffers(
        accepted,
        mine,
        (n, buffer) => {
          t.is(buffer.buffer, mine.buffer, 'the read landed in our buffer');
          got.push(Buffer.from(buffer.subarray(0, n)));
          if (Buffer.concat(got).length >= 5) resolve();
        },
        () => mine,
      ),
    );
  });
  accepted.resume();
  client.write('hello');
  await done;
  t.is(Buffer.concat(got).toString(), 'hello');
});

test('_readableState.ended shows a FIN Node read but did not emit; _read can be disabled and restored', async (t) => {
  const { client, accepted } = await pair(t);
  t.false(finReadByNode(accepted));
  const proto = Object.getPrototypeOf(accepted)._read;
  disableReadAhead(accepted);
  t.not((accepted as unknown as { _read: unknown })._read, proto);
  restoreReadAhead(accepted);
  t.is((accepted as unknown as { _read: unknown })._read, proto);
  client.end();
  // Let Node read the FIN while the stream is paused: it is recorded, not emitted.
  const readable = once(accepted, 'readable');
  accepted.read(0);
  await readable;
  t.true(finReadByNode(accepted), 'the FIN is read, and no end event was emitted');
});

test("a TCP handle of the listener's class carries a descriptor as Node's server would", async (t) => {
  const { client, accepted, server } = await pair(t);
  if (!learnTcpHandleClass(server)) return t.fail(`Node ${process.version} has no TCP class on server._handle`);
  // A descriptor that is not open: no handle (the callers then fall back to new Socket({ fd }),
  // which reports the error).
  t.is(openTcpHandle(1_000_000), undefined);
  const addon = optionalLinux();
  if (addon === undefined) return t.pass('without the addon there is no second descriptor to wrap');
  // A dup is a fresh descriptor of the same connection, as accept(2) gives the acceptor.
  const handle = openTcpHandle(addon.dupFd(descriptorOf(accepted) as number));
  t.truthy(handle);
  const wrapped = new Socket({ handle, allowHalfOpen: true, readable: true, writable: true } as object);
  t.teardown(() => wrapped.destroy());
  const echoed = once(client, 'data');
  wrapped.write('through the made handle');
  t.is(String((await echoed)[0]), 'through the made handle');
  const read = once(wrapped, 'data');
  client.write('and back');
  t.is(String((await read)[0]), 'and back');
});
