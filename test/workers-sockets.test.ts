import { closeSync } from 'node:fs';
import { connect } from 'node:net';
import test from 'ava';
import { optionalLinux } from '../lib/platform/addon';

const addon = optionalLinux();
const skip = addon === undefined ? 'needs the addon on Linux' : undefined;

// Why the primary holds every listening socket (docs/workers.md): the kernel resets what is
// queued on a SO_REUSEPORT listener when its last descriptor closes; it does not move it to
// another member of the group (unless net.ipv4.tcp_migrate_req=1).
test('closing the last copy of a SO_REUSEPORT listener resets its queued connections', async (t) => {
  if (skip || addon === undefined) return t.log(`skipped: ${skip}`) as undefined;
  const kept = addon.listenReusePort(4, '127.0.0.1', 0);
  const port = addon.localAddress(kept).port;
  const closing = addon.listenReusePort(4, '127.0.0.1', port);
  // Connect until one lands in the queue of the socket that will close (the group hashes 4-tuples).
  const clients = Array.from({ length: 16 }, () => connect({ port, host: '127.0.0.1' }));
  const ends = clients.map(
    (c) =>
      new Promise<string | undefined>((resolve) => {
        c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code));
        c.on('connect', () => c.write('x'));
        c.on('close', () => resolve(undefined));
      }),
  );
  await Promise.all(clients.map((c) => new Promise((r) => c.once('connect', r))));
  closeSync(closing);
  closeSync(kept);
  const codes = await Promise.all(ends);
  t.true(
    codes.every((c) => c === 'ECONNRESET'),
    codes.join(),
  );
  return undefined;
});

test('listenReusePort: IPv6, v6only and a second member of the group', (t) => {
  if (skip || addon === undefined) return t.log(`skipped: ${skip}`) as undefined;
  const a = addon.listenReusePort(6, '::1', 0, { ipv6Only: true, backlog: 64 });
  const port = addon.localAddress(a).port;
  const b = addon.listenReusePort(6, '::1', port, { ipv6Only: true });
  t.is(addon.localAddress(b).port, port);
  // Without SO_REUSEPORT the address is taken.
  const err = t.throws(() => addon.listenReusePort(6, '::1', port, { reusePort: false }));
  t.is((err as NodeJS.ErrnoException | undefined)?.code, 'EADDRINUSE');
  closeSync(a);
  closeSync(b);
  return undefined;
});

test('listenReusePort: transparent sets IP_TRANSPARENT before bind (TPROXY listeners)', (t) => {
  if (skip || addon === undefined) return t.log(`skipped: ${skip}`) as undefined;
  if (!addon.capabilities().netAdmin) {
    if (process.env.CI === 'true') t.fail('CI runs as root: CAP_NET_ADMIN expected');
    return t.log('skipped: needs CAP_NET_ADMIN') as undefined;
  }
  const fd = addon.listenReusePort(4, '127.0.0.1', 0, { transparent: true });
  t.true(addon.isTransparent(fd));
  const plain = addon.listenReusePort(4, '127.0.0.1', 0);
  t.false(addon.isTransparent(plain));
  closeSync(fd);
  closeSync(plain);
  return undefined;
});
