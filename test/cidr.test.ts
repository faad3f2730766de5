import test from 'ava';
import {
  canonicalIpAddress,
  createAddressMatcher,
  formatIpAddress,
  isIPv4Mapped,
  parseCidr,
  parseIPv4,
  parseIPv6,
  parseIpAddress,
} from '../lib/common/ip-address';
import { RedirectError } from '../lib/common/errors';

test('parseIPv4 accepts strict dotted quads only', (t) => {
  t.deepEqual(parseIPv4('0.0.0.0'), new Uint8Array([0, 0, 0, 0]));
  t.deepEqual(parseIPv4('255.255.255.255'), new Uint8Array([255, 255, 255, 255]));
  t.deepEqual(parseIPv4('10.20.30.40'), new Uint8Array([10, 20, 30, 40]));
  for (const bad of [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    '1.2.3.00',
    '256.0.0.0',
    '1.2.3.-4',
    '1.2.3.+4',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1..3.4',
    '0x1.2.3.4',
    '1.2.3.4/8',
    '１.2.3.4',
    '1.2.3.1e2',
  ]) {
    t.is(parseIPv4(bad), undefined, bad);
  }
});

test('parseIPv6 accepts RFC 4291 text forms', (t) => {
  const hex = (s: string | undefined) =>
    s === undefined ? undefined : Buffer.from(parseIPv6(s) ?? []).toString('hex');
  t.is(hex('::'), '0'.repeat(32));
  t.is(hex('::1'), `${'0'.repeat(31)}1`);
  t.is(hex('1::'), `0001${'0'.repeat(28)}`);
  t.is(hex('2001:DB8::8:800:200C:417A'), '20010db80000000000080800200c417a');
  t.is(hex('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
  t.is(hex('1:2:3:4:5:6:7::'), '00010002000300040005000600070000');
  t.is(hex('::2:3:4:5:6:7:8'), '00000002000300040005000600070008');
  t.is(hex('::ffff:192.0.2.1'), '00000000000000000000ffffc0000201');
  t.is(hex('::192.0.2.1'), '000000000000000000000000c0000201');
  t.is(hex('1:2:3:4:5:6:1.2.3.4'), '00010002000300040005000601020304');
  t.is(hex('0000:0000:0000:0000:0000:0000:0000:0001'), `${'0'.repeat(31)}1`);
  for (const bad of [
    '',
    ':',
    ':::',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '::1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7:8::',
    ':1::',
    '::1:',
    '1:2:3:4:5:6:7:',
    '12345::',
    'g::1',
    'fe80::1%eth0',
    '::ffff:1.2.3',
    '::ffff:01.2.3.4',
    '1.2.3.4::',
    '::1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4',
    '[::1]',
    ' ::1',
  ]) {
    t.is(parseIPv6(bad), undefined, bad);
  }
});

test('formatIpAddress writes RFC 5952 canonical text', (t) => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['FFFF:0:0:0:0:0:0:FFFF', 'ffff::ffff'],
    ['0:0:0:0:0:ffff:a00:1', '::ffff:10.0.0.1'],
    ['1:0:1:0:1:0:1:0', '1:0:1:0:1:0:1:0'],
  ];
  for (const [input, canonical] of cases) t.is(canonicalIpAddress(input), canonical, input);
  t.is(formatIpAddress(new Uint8Array([192, 0, 2, 1])), '192.0.2.1');
  t.throws(() => formatIpAddress(new Uint8Array(5)), { instanceOf: TypeError });
});

test('IPv6 parse and format agree with the WHATWG URL parser on random addresses', (t) => {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 8;
  };
  for (let n = 0; n < 5000; n++) {
    const bytes = new Uint8Array(16);
    // Mostly zero groups, so compression cases come up often.
    for (let g = 0; g < 8; g++) {
      if (rand() % 3 !== 0) continue;
      const v = rand() % 4 === 0 ? rand() & 0xffff : rand() & 0xf;
      bytes[g * 2] = v >> 8;
      bytes[g * 2 + 1] = v & 0xff;
    }
    if (isIPv4Mapped(bytes)) continue; // URL writes those in hex; we follow Node's ::ffff:a.b.c.d
    const ours = formatIpAddress(bytes);
    t.is(`[${ours}]`, new URL(`http://[${ours}]/`).hostname);
    // Long form round-trips to the same bytes.
    const long = Array.from({ length: 8 }, (_, g) => ((bytes[g * 2]! << 8) | bytes[g * 2 + 1]!).toString(16)).join(':');
    t.deepEqual(parseIPv6(long), bytes);
    t.deepEqual(parseIPv6(ours), bytes);
  }
});

test('parseIpAddress and isIPv4Mapped', (t) => {
  t.like(parseIpAddress('10.0.0.1'), { family: 'IPv4' });
  t.like(parseIpAddress('::1'), { family: 'IPv6' });
  t.is(parseIpAddress('localhost'), undefined);
  t.is(parseIpAddress(42 as unknown as string), undefined);
  t.true(isIPv4Mapped(parseIPv6('::ffff:1.2.3.4')!));
  t.false(isIPv4Mapped(parseIPv6('::1.2.3.4')!));
  t.false(isIPv4Mapped(parseIPv4('1.2.3.4')!));
});

test('parseCidr parses ranges and bare addresses', (t) => {
  t.like(parseCidr('127.0.0.0/8'), { family: 'IPv4', network: '127.0.0.0', prefixLength: 8, cidr: '127.0.0.0/8' });
  t.like(parseCidr('10.1.2.3'), { family: 'IPv4', prefixLength: 32, cidr: '10.1.2.3/32' });
  t.like(parseCidr('0.0.0.0/0'), { prefixLength: 0 });
  t.like(parseCidr('2001:DB8::/32'), { family: 'IPv6', network: '2001:db8::', prefixLength: 32 });
  t.like(parseCidr('::1'), { family: 'IPv6', prefixLength: 128, cidr: '::1/128' });
  t.like(parseCidr('::/0'), { prefixLength: 0 });
  t.like(parseCidr('fe80::/10'), { prefixLength: 10 });
});

test('parseCidr refuses bad input with an ERR_REDIRECT_INVALID_OPTION that says what to fix', (t) => {
  const message = (text: unknown, path?: string) => {
    const err = t.throws(() => parseCidr(text as string, path));
    t.true(err instanceof RedirectError);
    t.is((err as RedirectError).code, 'ERR_REDIRECT_INVALID_OPTION');
    return err?.message ?? '';
  };
  t.regex(
    message('10.0.0.1/8', 'proxyProtocol.trust[0]'),
    /^options\.proxyProtocol\.trust\[0\]: .*"10\.0\.0\.0\/8".*"10\.0\.0\.1\/32"/,
  );
  t.regex(message('2001:db8::1/32'), /"2001:db8::\/32"/);
  t.regex(message('10.0.0.0/33'), /0 to 32/);
  t.regex(message('::/129'), /0 to 128/);
  t.regex(message('10.0.0.0/08'), /prefix length/);
  t.regex(message('10.0.0.0/'), /prefix length/);
  t.regex(message('10.0.0.0/-1'), /prefix length/);
  t.regex(message('10.0.0.0/8/8'), /prefix length/);
  t.regex(message('localhost/8'), /not an IPv4 or IPv6 address/);
  t.regex(message('fe80::%eth0/10'), /not an IPv4 or IPv6 address/);
  t.regex(message(''), /not an IPv4 or IPv6 address/);
  t.regex(message(8), /expected a CIDR string/);
});

test('createAddressMatcher matches IPv4, IPv6 and IPv4-mapped addresses', (t) => {
  const trusted = createAddressMatcher(['127.0.0.0/8', '::1/128', '10.0.0.0/8', '2001:db8::/32', '192.168.1.7']);
  for (const yes of [
    '127.0.0.1',
    '127.255.255.255',
    '::1',
    '0:0:0:0:0:0:0:1',
    '10.200.0.1',
    '::ffff:10.200.0.1',
    '::ffff:a00:1',
    '::ffff:127.0.0.1',
    '2001:db8::42',
    '2001:DB8:FFFF::',
    '192.168.1.7',
    '::ffff:192.168.1.7',
  ]) {
    t.true(trusted(yes), yes);
  }
  for (const no of [
    '128.0.0.1',
    '11.0.0.1',
    '::2',
    '::ffff:11.0.0.1',
    '2001:db9::1',
    '192.168.1.8',
    '::10.0.0.1', // IPv4-compatible (deprecated), not mapped
    '64:ff9b::10.0.0.1',
    'localhost',
    '',
    '10.0.0.1%eth0',
    '::1%',
  ]) {
    t.false(trusted(no), no);
  }
  t.false(trusted(undefined as unknown as string));
});

test('createAddressMatcher: zone ids are ignored, mapped ranges match IPv4, ::/0 does not', (t) => {
  const linkLocal = createAddressMatcher(['fe80::/10']);
  t.true(linkLocal('fe80::1%eth0'));
  t.true(linkLocal('fe80::1'));
  const mapped = createAddressMatcher(['::ffff:10.0.0.0/104']);
  t.true(mapped('10.1.2.3'));
  t.true(mapped('::ffff:10.1.2.3'));
  t.false(mapped('11.1.2.3'));
  const allV6 = createAddressMatcher(['::/0']);
  t.true(allV6('2001:db8::1'));
  t.false(allV6('10.0.0.1'));
  t.false(allV6('::ffff:10.0.0.1'));
  const everyone = createAddressMatcher(['0.0.0.0/0', '::/0']);
  t.true(everyone('10.0.0.1'));
  t.true(everyone('::ffff:10.0.0.1'));
  t.true(everyone('2001:db8::1'));
  const nobody = createAddressMatcher([]);
  t.false(nobody('127.0.0.1'));
});

test('createAddressMatcher names the bad entry', (t) => {
  const err = t.throws(() => createAddressMatcher(['127.0.0.0/8', '10.0.0.1/8'], 'proxyProtocol.trust'));
  t.is((err as RedirectError).code, 'ERR_REDIRECT_INVALID_OPTION');
  t.regex(err?.message ?? '', /^options\.proxyProtocol\.trust\[1\]:/);
  const notArray = t.throws(() => createAddressMatcher('127.0.0.0/8' as unknown as string[]));
  t.regex(notArray?.message ?? '', /^options\.trust: expected an array/);
});

test('createAddressMatcher agrees with a bit-by-bit reference on random ranges', (t) => {
  let seed = 987654;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 8;
  };
  const bitsOf = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(2).padStart(8, '0')).join('');
  for (let n = 0; n < 2000; n++) {
    const v6 = rand() % 2 === 0;
    const size = v6 ? 16 : 4;
    const net = new Uint8Array(size).map(() => rand() & 0xff);
    const prefix = rand() % (size * 8 + 1);
    // Clear the host bits to make a valid range.
    const netBits = bitsOf(net)
      .slice(0, prefix)
      .padEnd(size * 8, '0');
    const netBytes = new Uint8Array(size).map((_, i) => Number.parseInt(netBits.slice(i * 8, i * 8 + 8), 2));
    if (v6 && isIPv4Mapped(netBytes)) continue;
    const match = createAddressMatcher([`${formatIpAddress(netBytes)}/${prefix}`]);
    for (let k = 0; k < 5; k++) {
      // Half the probes share the prefix.
      const probe = new Uint8Array(size).map(() => rand() & 0xff);
      if (k % 2 === 0) probe.set(netBytes.subarray(0, Math.floor(prefix / 8)));
      if (v6 && isIPv4Mapped(probe)) continue;
      const expected = bitsOf(probe).slice(0, prefix) === netBits.slice(0, prefix);
      t.is(match(formatIpAddress(probe)), expected);
    }
  }
});
