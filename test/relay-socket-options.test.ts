import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import test from 'ava';
import { requireLinux } from '../lib/platform/addon';
import { dial, listenTcp, nextClose, startRedirect } from './helpers/net';

/**
 * The fd, in this process, of the IPv4 TCP socket `localPort` → `remotePort`
 * on loopback (remote port 0: the listener): found through /proc/net/tcp's inode and /proc/self/fd.
 */
function fdOfTcp(localPort: number, remotePort: number): number {
  const hexPort = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  // A listening socket's remote end is 0.0.0.0:0.
  const remote = remotePort === 0 ? '00000000:0000' : `0100007F:${hexPort(remotePort)}`;
  const want = `0100007F:${hexPort(localPort)} ${remote}`;
  const line = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => `${f[1]} ${f[2]}` === want);
  if (!line) throw new Error(`no socket ${localPort} → ${remotePort} in /proc/net/tcp`);
  const link = `socket:[${line[9]}]`;
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === link) return Number(name);
    } catch {
      // an fd closed while we looked
    }
  }
  throw new Error(`the socket ${localPort} → ${remotePort} is not ours`);
}

test('both relay sockets run with TCP_NODELAY: the accepted one (inherited from the listener) and the upstream', async (t) => {
  if (process.platform !== 'linux') return t.pass('TCP_NODELAY inheritance is checked on Linux only');
  const addon = requireLinux('the TCP_NODELAY check');
  let upstreamPort = 0;
  const up = await listenTcp(t, (s) => {
    upstreamPort = s.remotePort ?? 0;
    s.pipe(s);
  });
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port }, zeroCopy: 'off' });
  // Set once on the listening socket (remote 0.0.0.0:0), so accepted sockets inherit it
  // rather than each paying a setsockopt.
  t.true(addon.tcpNoDelay(fdOfTcp(port, 0)), 'listening socket');
  // Later connections too: the per-socket fallback covers only the first accept round.
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 3; i++) {
    const client = await dial(port);
    const echoed = once(client, 'data');
    client.write('ping');
    // Echoed back: both relay sockets are connected.
    t.is(String((await echoed)[0]), 'ping');
    const accepted = fdOfTcp(port, client.localPort ?? 0);
    const outbound = fdOfTcp(upstreamPort, up.port);
    t.true(addon.tcpNoDelay(accepted), 'accepted socket');
    t.true(addon.tcpNoDelay(outbound), 'upstream socket');
    // The client's own socket is not ours to set: the check can tell the two apart.
    t.false(addon.tcpNoDelay(fdOfTcp(client.localPort ?? 0, port)), 'client socket (Node default)');
    const closed = nextClose(server);
    client.end();
    t.is((await closed).reason, 'client-end');
  }
});
