import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import test from 'ava';
import { PyPeer } from './helpers/py-peer';

// The FIN/RST peer is what the fault tests trust: these check the peer itself
// on the cases a loaded machine produces.

test('a connection reset before the peer got to accept it is still reported, and its end is an RST', async (t) => {
  const peer = PyPeer.start(t);
  const port = await peer.listen([]);
  // A slow peer: the connection is accepted by the kernel, sends and resets while
  // the peer process is stopped; accept(2) then returns a socket already reset.
  peer.freeze();
  t.teardown(() => peer.thaw());
  const client: Socket = connect(port, '127.0.0.1');
  await once(client, 'connect');
  client.write(Buffer.alloc(10_000, 1));
  client.resetAndDestroy();
  await once(client, 'close');
  peer.thaw();
  const name = await peer.accepted();
  await peer.read(name);
  const end = await peer.ended(name);
  t.is(end.how, 'rst');
  t.true(end.bytes <= 10_000, `${end.bytes} bytes read before the reset`);
});

test('a peer that dies fails the waits on it instead of leaving them pending', async (t) => {
  const peer = PyPeer.start(t);
  await peer.listen([]);
  const accepted = peer.accepted();
  peer.kill();
  const err = await t.throwsAsync(accepted);
  t.regex(err?.message ?? '', /tcp-peer exited/);
  await t.throwsAsync(peer.read('a1'), { message: /tcp-peer exited/ });
});
