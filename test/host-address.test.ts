import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { optionalLinux } from '../lib/platform/addon';
import { fibHasLocal } from '../lib/platform/host-address';
import { gatedTest, Netns, netnsUnavailable } from './helpers/netns';

// lib/platform/host-address.ts answers the loop guard's "is this one of our own addresses?" for a
// flow whose target port is a wildcard listener's. Asked inside a namespace whose addresses the
// test sets, including one on an interface without carrier, which libuv's interface list leaves
// out (a direct dial to it then looked redirected, and looped).

const run = promisify(execFile);
const HOST_ADDRESS = join(__dirname, '..', 'lib', 'platform', 'host-address.js');
const ADDON = join(__dirname, '..', 'lib', 'platform', 'addon.js');

/** Each answer of isHostAddress (and of the procfs fallback, for IPv4) inside `ns`, in a fresh process. */
async function answersIn(ns: Netns, addresses: string[]): Promise<Record<string, unknown>> {
  const script = `
    const { isHostAddress, fibHasLocal } = require(${JSON.stringify(HOST_ADDRESS)});
    const addon = require(${JSON.stringify(ADDON)}).optionalLinux();
    const { networkInterfaces } = require('node:os');
    const listed = Object.values(networkInterfaces()).flat().map((i) => i.address);
    const out = {};
    for (const a of ${JSON.stringify(addresses)}) {
      out[a] = {
        host: isHostAddress(a),
        listed: listed.includes(a),
        ...(a.includes('.') ? { fib: fibHasLocal(a) } : {}),
        ...(addon ? { route: addon.isLocalRoute(a) } : {}),
      };
    }
    process.stdout.write(JSON.stringify(out));`;
  const { stdout } = await run('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script]);
  return JSON.parse(stdout) as Record<string, unknown>;
}

const nsTest = gatedTest(test, netnsUnavailable());

nsTest('every address of the namespace is the host’s, one without carrier too; others are not', async (t) => {
  const ns = await Netns.create(t, 'host');
  // va is up but its peer is down: NO-CARRIER, so libuv does not list its address.
  await ns.ip('link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb');
  await ns.ip('addr', 'add', '10.77.0.1/24', 'dev', 'va');
  await ns.ip('link', 'set', 'va', 'up');
  await ns.ip('addr', 'add', '198.51.100.7/32', 'dev', 'lo');
  await ns.ip('-6', 'addr', 'add', '2001:db8:77::1/64', 'dev', 'lo', 'nodad');
  // Routes that discard (hosts with full tables often have them): an answer, not a lookup error.
  await ns.ip('route', 'add', 'blackhole', '192.0.2.0/24');
  await ns.ip('route', 'add', 'prohibit', '198.18.0.0/16');
  const got = await answersIn(ns, [
    '198.18.0.1',
    '100.64.0.1',
    '10.77.0.1',
    '10.77.0.2',
    '198.51.100.7',
    '127.0.0.1',
    '192.0.2.99',
    '2001:db8:77::1',
    '2001:db8:77::2',
  ]);
  // The procfs walk (no addon) and the route lookup (the addon) agree on every IPv4 address.
  for (const [address, answer] of Object.entries(got)) {
    const { fib, route } = answer as { fib?: boolean; route?: boolean };
    if (fib !== undefined && route !== undefined) t.is(route, fib, address);
  }
  if (optionalLinux() !== undefined) {
    t.like(got, {
      '10.77.0.1': { route: true },
      '192.0.2.99': { route: false },
      '198.18.0.1': { route: false },
      '100.64.0.1': { route: false },
    });
  }
  t.like(got, {
    '10.77.0.1': { host: true, listed: false, fib: true },
    '10.77.0.2': { host: false, fib: false },
    '198.51.100.7': { host: true, fib: true },
    '127.0.0.1': { host: true },
    // A blackhole and a prohibit route: not ours, and answered by the route lookup itself.
    '192.0.2.99': { host: false, fib: false },
    '198.18.0.1': { host: false, fib: false },
    // No route at all (the namespace has only its own subnets): not ours.
    '100.64.0.1': { host: false, fib: false },
    '2001:db8:77::1': { host: true },
    '2001:db8:77::2': { host: false },
  });
});

/** A documentation address this machine does not have (some sandboxes do use TEST-NET ranges). */
function foreignAddress(): string {
  const mine = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
  return ['203.0.113.254', '198.51.100.254', '192.0.2.254'].find((a) => !mine.has(a)) ?? '203.0.113.254';
}

test('the procfs fallback finds loopback in the local table, and not a foreign address', (t) => {
  if (process.platform !== 'linux') return t.pass('Linux only');
  t.true(fibHasLocal('127.0.0.1'));
  t.false(fibHasLocal(foreignAddress()));
});

test('the addon answers from the kernel’s routes in this namespace', (t) => {
  const addon = optionalLinux();
  if (addon === undefined) return t.pass('no Linux addon here: the procfs fallback answers (tested in a namespace)');
  t.true(addon.isLocalRoute('127.0.0.1'));
  // Routed (a default route) or not, an address no interface here has is not local.
  t.false(addon.isLocalRoute(foreignAddress()));
  t.throws(() => addon.isLocalRoute('not an address'), { instanceOf: TypeError });
});
