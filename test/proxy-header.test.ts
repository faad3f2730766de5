import test from 'ava';
import { crc32c } from '../lib/proxy-protocol/crc32c';
import { RedirectError } from '../lib/common/errors';
import {
  createProxyHeaderParser,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  normalizeProxyAddress,
  type ProxyHeader,
  ProxyHeaderError,
  type ProxyHeaderErrorReason,
  type ProxyHeaderParserOptions,
  type ProxyHeaderParseStep,
  parseProxyHeader,
} from '../lib/proxy-protocol/index';
import { throwsCode } from './helpers/expect';

// ---------------------------------------------------------------------------
// Hand-built wire bytes, independent of the encoder.

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const PAYLOAD = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

/** Bit-at-a-time CRC32C, a second implementation to check the table-driven one against. */
function crcBitwise(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function tlv(type: number, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([Buffer.from([type]), u16(v.length), v]);
}

function v2(verCmd: number, fam: number, body: Buffer, length = body.length): Buffer {
  return Buffer.concat([SIG, Buffer.from([verCmd, fam]), u16(length), body]);
}

/** A v2 header whose last TLV is a CRC32C computed independently; `corrupt` flips the stored value. */
function v2WithCrc(verCmd: number, fam: number, body: Buffer, corrupt = false): Buffer {
  const h = v2(verCmd, fam, Buffer.concat([body, tlv(0x03, Buffer.alloc(4))]));
  const crc = crcBitwise(h);
  h.writeUInt32BE(corrupt ? (crc ^ 1) >>> 0 : crc, h.length - 4);
  return h;
}

const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));
const ip6 = (hex: string) => Buffer.from(hex.replace(/:/g, ''), 'hex');
const unixPath = (p: string | Buffer) => {
  const b = Buffer.alloc(108);
  (typeof p === 'string' ? Buffer.from(p) : p).copy(b);
  return b;
};
const ports = (a: number, b: number) => Buffer.concat([u16(a), u16(b)]);

function parseAll(input: Buffer, options?: ProxyHeaderParserOptions) {
  const step = parseProxyHeader(input, options);
  if (!step.done) throw new Error('expected a complete header');
  return step;
}

function reasonOf(fn: () => unknown): ProxyHeaderErrorReason | 'no-error' {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProxyHeaderError && err instanceof RedirectError && err.code === 'ERR_REDIRECT_PROXY_HEADER') {
      return err.reason;
    }
    throw err;
  }
  return 'no-error';
}

type Outcome =
  | { kind: 'done'; header: ProxyHeader; rest: Buffer }
  | { kind: 'more' }
  | { kind: 'error'; reason: ProxyHeaderErrorReason };

/** Feeds `input` cut at `cuts`; `rest` = leftover + chunks never pushed = everything after the header. */
function feed(input: Buffer, cuts: number[], options?: ProxyHeaderParserOptions): Outcome {
  const parser = createProxyHeaderParser(options);
  const bounds = [0, ...cuts, input.length];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const chunk = input.subarray(bounds[i], bounds[i + 1]);
    let step: ProxyHeaderParseStep;
    try {
      step = parser.push(chunk);
    } catch (err) {
      if (err instanceof ProxyHeaderError) return { kind: 'error', reason: err.reason };
      throw err;
    }
    if (step.done)
      return { kind: 'done', header: step.header, rest: Buffer.concat([step.leftover, input.subarray(bounds[i + 1])]) };
  }
  return { kind: 'more' };
}

// ---------------------------------------------------------------------------
// CRC32C

test('crc32c matches the published check values', (t) => {
  t.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.is(crc32c(Buffer.alloc(0)), 0);
  // RFC 3720 appendix B.4
  t.is(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
  t.is(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  t.is(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
  t.is(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
});

test('crc32c chains over pieces and agrees with a bitwise implementation', (t) => {
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7919 + 13) & 0xff));
  for (const cut of [0, 1, 3, 500, 999, 1000]) {
    t.is(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), crc32c(data));
  }
  for (let n = 0; n < 64; n++) t.is(crc32c(data.subarray(n, n * 13)), crcBitwise(data.subarray(n, n * 13)));
});

// ---------------------------------------------------------------------------
// Known-good headers

interface Good {
  name: string;
  bytes: Buffer;
  check: (t: import('ava').ExecutionContext, h: ProxyHeader) => void;
  options?: ProxyHeaderParserOptions;
}

const longest = `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;

const GOOD: Good[] = [
  {
    name: 'v1 TCP4 (spec example)',
    bytes: Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'),
    check: (t, h) => {
      t.like(h, { version: 1, command: 'proxy', family: 'IPv4', transport: 'tcp' });
      t.deepEqual(h.source, { address: '192.168.0.1', port: 56324, family: 'IPv4' });
      t.deepEqual(h.destination, { address: '192.168.0.11', port: 443, family: 'IPv4' });
      t.deepEqual(h.tlvs, []);
    },
  },
  {
    name: 'v1 TCP4 extremes',
    bytes: Buffer.from('PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n'),
    check: (t, h) => {
      t.deepEqual(h.source, { address: '255.255.255.255', port: 65535, family: 'IPv4' });
      t.deepEqual(h.destination, { address: '0.0.0.0', port: 0, family: 'IPv4' });
    },
  },
  {
    name: 'v1 TCP6 with compression, upper case and a mapped address',
    bytes: Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:10.0.0.1 1 65535\r\n'),
    check: (t, h) => {
      t.like(h, { family: 'IPv6', transport: 'tcp' });
      t.deepEqual(h.source, { address: '2001:db8::1', port: 1, family: 'IPv6' });
      t.deepEqual(h.destination, { address: '::ffff:10.0.0.1', port: 65535, family: 'IPv6' });
    },
  },
  {
    name: 'v1 TCP6 longest (104 bytes)',
    bytes: Buffer.from(`PROXY TCP6 ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}fffe 65535 65535\r\n`),
    check: (t, h) => {
      t.is(h.raw.length, 104);
      t.is(h.destination?.address, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe');
    },
  },
  {
    name: 'v1 UNKNOWN short form',
    bytes: Buffer.from('PROXY UNKNOWN\r\n'),
    check: (t, h) => {
      t.like(h, { version: 1, command: 'proxy', family: 'unspec', transport: 'unspec' });
      t.is(h.source, undefined);
    },
  },
  {
    name: 'v1 UNKNOWN worst case (107 bytes, rest ignored)',
    bytes: Buffer.from(longest),
    check: (t, h) => {
      t.is(h.raw.length, 107);
      t.is(h.family, 'unspec');
    },
  },
  {
    name: 'v2 TCP4 captured from haproxy',
    bytes: Buffer.from('0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050', 'hex'),
    check: (t, h) => {
      t.like(h, { version: 2, command: 'proxy', family: 'IPv4', transport: 'tcp' });
      t.deepEqual(h.source, { address: '172.19.0.1', port: 42578, family: 'IPv4' });
      t.deepEqual(h.destination, { address: '172.19.0.3', port: 80, family: 'IPv4' });
    },
  },
  {
    name: 'v2 UDP4',
    bytes: v2(0x21, 0x12, Buffer.concat([ip4('10.0.0.1'), ip4('10.0.0.2'), ports(53, 5353)])),
    check: (t, h) => {
      t.like(h, { family: 'IPv4', transport: 'udp' });
      t.is(h.destination?.port, 5353);
    },
  },
  {
    name: 'v2 TCP6',
    bytes: v2(
      0x21,
      0x21,
      Buffer.concat([
        ip6('2001:0db8:0000:0000:0000:0000:0000:0001'),
        ip6('0000:0000:0000:0000:0000:ffff:c000:0201'),
        ports(443, 8443),
      ]),
    ),
    check: (t, h) => {
      t.deepEqual(h.source, { address: '2001:db8::1', port: 443, family: 'IPv6' });
      t.deepEqual(h.destination, { address: '::ffff:192.0.2.1', port: 8443, family: 'IPv6' });
    },
  },
  {
    name: 'v2 UDP6',
    bytes: v2(0x21, 0x22, Buffer.concat([Buffer.alloc(16), ip6('00000000000000000000000000000001'), ports(0, 65535)])),
    check: (t, h) => {
      t.like(h, { family: 'IPv6', transport: 'udp' });
      t.is(h.source?.address, '::');
      t.is(h.destination?.address, '::1');
    },
  },
  {
    name: 'v2 UNIX stream',
    bytes: v2(0x21, 0x31, Buffer.concat([unixPath('/run/client.sock'), unixPath('/run/server.sock')])),
    check: (t, h) => {
      t.like(h, { family: 'unix', transport: 'unix-stream' });
      t.is(h.unixSource?.path, '/run/client.sock');
      t.is(h.unixDestination?.path, '/run/server.sock');
      t.is(h.source, undefined);
    },
  },
  {
    name: 'v2 UNIX datagram, abstract and full-length paths',
    bytes: v2(0x21, 0x32, Buffer.concat([unixPath(Buffer.from('\0abstract\0name')), Buffer.alloc(108, 0x61)])),
    check: (t, h) => {
      t.like(h, { family: 'unix', transport: 'unix-dgram' });
      t.is(h.unixSource?.path, '\0abstract\0name');
      t.is(h.unixDestination?.path, 'a'.repeat(108));
    },
  },
  {
    name: 'v2 LOCAL, AF_UNSPEC, no addresses',
    bytes: v2(0x20, 0x00, Buffer.alloc(0)),
    check: (t, h) => {
      t.like(h, { version: 2, command: 'local', family: 'unspec', transport: 'unspec' });
      t.is(h.raw.length, 16);
    },
  },
  // LOCAL (spec 2.2): accept, use the real endpoints, discard the whole block whatever byte 13
  // and the length say. Each of these was refused before (or exposed part of the block).
  {
    name: 'v2 LOCAL, AF_INET with addresses and a TLV: all discarded',
    bytes: v2(0x20, 0x11, Buffer.concat([ip4('1.2.3.4'), ip4('5.6.7.8'), ports(1, 2), tlv(0x04, '')])),
    check: (t, h) => {
      t.like(h, { command: 'local', family: 'unspec', transport: 'unspec' });
      t.is(h.source, undefined);
      t.is(h.destination, undefined);
      t.deepEqual(h.tlvs, []);
      t.is(h.raw.length, 16 + 12 + 3);
    },
  },
  {
    name: 'v2 LOCAL, AF_UNSPEC with a block of TLVs (the health check HAProxy 2.6 sends with check-send-proxy)',
    bytes: Buffer.from('0d0a0d0a000d0a515549540a2000000f030004889da1df2000050000000000', 'hex'),
    check: (t, h) => {
      t.like(h, { version: 2, command: 'local', family: 'unspec', transport: 'unspec' });
      t.deepEqual(h.tlvs, []);
      t.is(h.crc32c, undefined);
      t.is(h.ssl, undefined);
      t.is(h.raw.length, 31);
    },
  },
  {
    name: 'v2 LOCAL, AF_UNSPEC with a block that is no TLVs at all',
    bytes: v2(0x20, 0x00, Buffer.from('\x05\xff\xffnot a TLV, just bytes\0\r\n')),
    check: (t, h) => {
      t.like(h, { command: 'local', family: 'unspec' });
      t.deepEqual(h.tlvs, []);
    },
  },
  {
    name: 'v2 LOCAL, AF_INET with garbage in a block shorter than the addresses',
    bytes: v2(0x20, 0x11, Buffer.from([0xde, 0xad, 0xbe])),
    check: (t, h) => {
      t.like(h, { command: 'local', family: 'unspec' });
      t.is(h.source, undefined);
    },
  },
  {
    name: 'v2 LOCAL, AF_INET6 with addresses, then garbage to the declared length',
    bytes: v2(0x20, 0x21, Buffer.concat([Buffer.alloc(36, 0x20), Buffer.from([0x01, 0x00, 0x09, 0x68])])),
    check: (t, h) => {
      t.like(h, { command: 'local', family: 'unspec' });
      t.is(h.destination, undefined);
      t.deepEqual(h.tlvs, []);
    },
  },
  {
    name: 'v2 LOCAL with a family byte the spec does not define',
    bytes: v2(0x20, 0x44, Buffer.from('x')),
    check: (t, h) => t.like(h, { command: 'local', family: 'unspec' }),
  },
  {
    name: 'v2 LOCAL with a wrong CRC32C (not checked: the block is discarded)',
    bytes: v2WithCrc(0x20, 0x00, Buffer.alloc(0), true),
    check: (t, h) => {
      t.is(h.crc32c, undefined);
      t.deepEqual(h.tlvs, []);
    },
  },
  {
    name: 'v2 PROXY with AF_UNSPEC and TLVs',
    bytes: v2(0x21, 0x00, tlv(0x02, 'example.org')),
    check: (t, h) => {
      t.like(h, { command: 'proxy', family: 'unspec', authority: 'example.org' });
      t.is(h.source, undefined);
    },
  },
  {
    name: 'v2 TCP4 with every registered TLV, nested SSL and CRC32C',
    bytes: v2WithCrc(
      0x21,
      0x11,
      Buffer.concat([
        ip4('203.0.113.7'),
        ip4('198.51.100.1'),
        ports(50000, 443),
        tlv(0x01, 'h2'),
        tlv(0x02, 'bücher.example'),
        tlv(0x04, Buffer.alloc(5)),
        tlv(0x05, Buffer.alloc(128, 7)),
        tlv(
          0x20,
          Buffer.concat([
            Buffer.from([0x07, 0, 0, 0, 0]),
            tlv(0x21, 'TLSv1.3'),
            tlv(0x22, 'Zoë'),
            tlv(0x23, 'TLS_AES_128_GCM_SHA256'),
            tlv(0x24, 'RSA-SHA256'),
            tlv(0x25, 'RSA2048'),
            tlv(0x26, 'X25519'),
            tlv(0x27, 'rsa_pss_rsae_sha256'),
            tlv(0x28, Buffer.from([0x30, 0x82, 0x01])),
            tlv(0x2f, 'future'),
          ]),
        ),
        tlv(0x30, 'blue'),
        tlv(0xea, Buffer.from([0x01, 0x76, 0x70, 0x63])),
        tlv(0xea, Buffer.from([0x02])),
        tlv(0x04, ''),
      ]),
    ),
    check: (t, h) => {
      t.like(h, { alpn: 'h2', authority: 'bücher.example', netns: 'blue' });
      t.deepEqual(h.uniqueId, Buffer.alloc(128, 7));
      t.is(h.crc32c, h.raw.readUInt32BE(h.raw.length - 4));
      t.deepEqual(
        h.tlvs.map((x) => x.type),
        [0x01, 0x02, 0x04, 0x05, 0x20, 0x30, 0xea, 0xea, 0x04, 0x03],
      );
      t.deepEqual(h.tlvs[6]?.value, Buffer.from([0x01, 0x76, 0x70, 0x63]));
      const ssl = h.ssl!;
      t.like(ssl, {
        client: 7,
        verify: 0,
        version: 'TLSv1.3',
        cn: 'Zoë',
        cipher: 'TLS_AES_128_GCM_SHA256',
        sigAlg: 'RSA-SHA256',
        keyAlg: 'RSA2048',
        group: 'X25519',
        sigScheme: 'rsa_pss_rsae_sha256',
      });
      t.deepEqual(ssl.clientCert, Buffer.from([0x30, 0x82, 0x01]));
      t.deepEqual(ssl.subTlvs.at(-1), { type: 0x2f, value: Buffer.from('future') });
    },
  },
  {
    name: 'v2 SSL TLV with no sub-TLVs and a non-zero verify',
    bytes: v2(0x21, 0x00, tlv(0x20, Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff]))),
    check: (t, h) => {
      t.deepEqual(h.ssl, { client: 1, verify: 0xffffffff, subTlvs: [] });
    },
  },
  {
    name: 'v2 header of exactly maxHeaderBytes',
    bytes: v2(0x21, 0x00, tlv(0xe0, Buffer.alloc(107 - 16 - 3))),
    options: { maxHeaderBytes: 107 },
    check: (t, h) => {
      t.is(h.raw.length, 107);
    },
  },
];

for (const g of GOOD) {
  test(`parses ${g.name}`, (t) => {
    const { header, leftover } = parseAll(Buffer.concat([g.bytes, PAYLOAD]), g.options);
    t.deepEqual(header.raw, g.bytes);
    t.deepEqual(leftover, PAYLOAD);
    g.check(t, header);
  });

  test(`${g.name}: every split, and byte by byte, gives the same header and leftover`, (t) => {
    const input = Buffer.concat([g.bytes, PAYLOAD]);
    const whole = feed(input, [], g.options);
    if (whole.kind !== 'done') return t.fail('whole input did not parse');
    for (let cut = 1; cut < input.length; cut++) {
      const split = feed(input, [cut], g.options);
      if (split.kind !== 'done') return t.fail(`split at ${cut}: ${JSON.stringify(split)}`);
      t.deepEqual(split.header, whole.header, `split at ${cut}`);
      t.deepEqual(split.rest, PAYLOAD, `split at ${cut}`);
    }
    const bytewise = feed(
      input,
      Array.from({ length: input.length - 1 }, (_, i) => i + 1),
      g.options,
    );
    t.deepEqual(bytewise, whole);
    // Header alone: done with an empty leftover, exactly at its last byte.
    const exact = feed(g.bytes, [], g.options);
    t.true(exact.kind === 'done' && exact.rest.length === 0);
    t.is(feed(g.bytes.subarray(0, -1), [], g.options).kind, 'more');
  });
}

// ---------------------------------------------------------------------------
// Malformed headers

/** Two CRC32C TLVs where the first is correct for the whole header (the second is just bytes). */
function twoCrcs(): Buffer {
  const h = v2(0x21, 0x00, Buffer.concat([tlv(0x03, Buffer.alloc(4)), tlv(0x03, Buffer.alloc(4, 0xaa))]));
  h.writeUInt32BE(crcBitwise(h), 19);
  return h;
}

const v4body = Buffer.concat([ip4('1.2.3.4'), ip4('5.6.7.8'), ports(1, 2)]);
const line = (s: string) => Buffer.from(s, 'latin1');

const BAD: Array<[string, Buffer, ProxyHeaderErrorReason, ProxyHeaderParserOptions?]> = [
  ['HTTP request', line('GET / HTTP/1.1\r\n'), 'bad-signature'],
  ['TLS ClientHello', Buffer.from('160301', 'hex'), 'bad-signature'],
  ['"PROXY" without the space', line('PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'bad-signature'],
  ['lower-case proxy', line('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'bad-signature'],
  ['v1 when only v2 is accepted', line('PROXY UNKNOWN\r\n'), 'version-not-allowed', { versions: ['v2'] }],
  ['double space before protocol', line('PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'v1-bad-protocol'],
  ['TCP5', line('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'), 'v1-bad-protocol'],
  ['lower-case tcp4', line('PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n'), 'v1-bad-protocol'],
  ['UDP4', line('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'v1-bad-protocol'],
  ['UNKNOWN glued to more text', line('PROXY UNKNOWNX\r\n'), 'v1-bad-protocol'],
  ['empty protocol', line('PROXY \r\n'), 'v1-bad-protocol'],
  ['truncated protocol', line('PROXY TC\r\n'), 'v1-bad-protocol'],
  ['TCP4 with nothing after', line('PROXY TCP4\r\n'), 'v1-bad-format'],
  ['missing port', line('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), 'v1-bad-format'],
  ['extra field', line('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'), 'v1-bad-format'],
  ['double space between addresses', line('PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n'), 'v1-bad-format'],
  ['trailing space', line('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n'), 'v1-bad-format'],
  ['leading zero in an octet', line('PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n'), 'v1-bad-address'],
  ['octet 256', line('PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n'), 'v1-bad-address'],
  ['three octets', line('PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n'), 'v1-bad-address'],
  ['IPv6 under TCP4', line('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'), 'v1-bad-address'],
  ['IPv4 under TCP6', line('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'), 'v1-bad-address'],
  ['two ::', line('PROXY TCP6 1::2::3 ::1 1 2\r\n'), 'v1-bad-address'],
  ['zone id', line('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'), 'v1-bad-address'],
  ['five hex digits', line('PROXY TCP6 12345::1 ::1 1 2\r\n'), 'v1-bad-address'],
  ['nine groups', line('PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n'), 'v1-bad-address'],
  ['port with leading zero', line('PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n'), 'v1-bad-port'],
  ['port 65536', line('PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n'), 'v1-bad-port'],
  ['negative port', line('PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'), 'v1-bad-port'],
  ['plus sign', line('PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n'), 'v1-bad-port'],
  ['hex port', line('PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n'), 'v1-bad-port'],
  ['LF alone', line('PROXY UNKNOWN\n'), 'v1-bad-crlf'],
  ['CR alone', line('PROXY UNKNOWN\rX'), 'v1-bad-crlf'],
  ['CR CR LF', line('PROXY UNKNOWN\r\r\n'), 'v1-bad-crlf'],
  ['tab', line('PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n'), 'v1-bad-char'],
  ['NUL', line('PROXY UNKNOWN \0\r\n'), 'v1-bad-char'],
  ['non-ASCII', line('PROXY UNKNOWN \xe9\r\n'), 'v1-bad-char'],
  ['108-byte line', line(longest.replace('UNKNOWN ', 'UNKNOWN  ')), 'v1-too-long'],
  ['no CRLF ever', line(`PROXY UNKNOWN ${'x'.repeat(200)}`), 'v1-too-long'],
  ['v2 signature broken at byte 5', Buffer.from('0d0a0d0a010d0a515549540a21110000', 'hex'), 'bad-signature'],
  ['v2 signature broken at byte 11', Buffer.from('0d0a0d0a000d0a515549540b21110000', 'hex'), 'bad-signature'],
  ['v2 when only v1 is accepted', v2(0x21, 0x11, v4body), 'version-not-allowed', { versions: ['v1'] }],
  ['v2 version 1', v2(0x11, 0x11, v4body), 'v2-bad-version'],
  ['v2 version 3', v2(0x31, 0x11, v4body), 'v2-bad-version'],
  ['v2 command 2', v2(0x22, 0x11, v4body), 'v2-bad-command'],
  ['v2 command 15', v2(0x2f, 0x11, v4body), 'v2-bad-command'],
  ['v2 family 4', v2(0x21, 0x41, v4body), 'v2-bad-family'],
  ['v2 protocol 3', v2(0x21, 0x13, v4body), 'v2-bad-family'],
  ['v2 INET with UNSPEC protocol', v2(0x21, 0x10, v4body), 'v2-bad-family'],
  ['v2 UNSPEC with STREAM protocol', v2(0x21, 0x01, v4body), 'v2-bad-family'],
  [
    'v2 LOCAL over maxHeaderBytes (the block is read to be discarded)',
    v2(0x20, 0x44, Buffer.alloc(92)),
    'header-too-large',
    { maxHeaderBytes: 107 },
  ],
  ['v2 LOCAL with command bits 0x28', v2(0x28, 0x00, Buffer.alloc(0)), 'v2-bad-command'],
  ['v2 TCP4 length 11', v2(0x21, 0x11, v4body.subarray(0, 11)), 'v2-length-mismatch'],
  ['v2 TCP6 length 35', v2(0x21, 0x21, Buffer.alloc(35)), 'v2-length-mismatch'],
  ['v2 UNIX length 215', v2(0x21, 0x31, Buffer.alloc(215)), 'v2-length-mismatch'],
  ['v2 length 0xffff over the default limit', v2(0x21, 0x11, v4body, 0xffff), 'header-too-large'],
  ['v2 one byte over maxHeaderBytes', v2(0x21, 0x00, Buffer.alloc(92)), 'header-too-large', { maxHeaderBytes: 107 }],
  [
    'v2 two stray bytes after the addresses',
    v2(0x21, 0x11, Buffer.concat([v4body, Buffer.from([1, 0])])),
    'tlv-overrun',
  ],
  [
    'v2 TLV longer than the header',
    v2(0x21, 0x11, Buffer.concat([v4body, Buffer.from([0x01, 0x00, 0x05, 0x68])])),
    'tlv-overrun',
  ],
  ['v2 CRC32C of 3 bytes', v2(0x21, 0x00, tlv(0x03, Buffer.alloc(3))), 'tlv-bad-length'],
  ['v2 CRC32C mismatch', v2WithCrc(0x21, 0x11, v4body, true), 'crc-mismatch'],
  ['v2 two CRC32C TLVs, the first one right', twoCrcs(), 'tlv-duplicate'],
  ['v2 UNIQUE_ID of 129 bytes', v2(0x21, 0x00, tlv(0x05, Buffer.alloc(129))), 'unique-id-too-long'],
  ['v2 two ALPN TLVs', v2(0x21, 0x00, Buffer.concat([tlv(0x01, 'h2'), tlv(0x01, 'http/1.1')])), 'tlv-duplicate'],
  ['v2 two AUTHORITY TLVs', v2(0x21, 0x00, Buffer.concat([tlv(0x02, 'a'), tlv(0x02, 'a')])), 'tlv-duplicate'],
  ['v2 AUTHORITY not UTF-8', v2(0x21, 0x00, tlv(0x02, Buffer.from([0x61, 0xff]))), 'tlv-bad-value'],
  ['v2 NETNS not ASCII', v2(0x21, 0x00, tlv(0x30, Buffer.from([0x61, 0x80]))), 'tlv-bad-value'],
  ['v2 SSL TLV of 4 bytes', v2(0x21, 0x00, tlv(0x20, Buffer.alloc(4))), 'tlv-bad-length'],
  [
    'v2 SSL sub-TLV overrun',
    v2(0x21, 0x00, tlv(0x20, Buffer.concat([Buffer.alloc(5), Buffer.from([0x21, 0x00, 0x09, 0x41])]))),
    'tlv-overrun',
  ],
  [
    'v2 SSL stray byte after sub-TLVs',
    v2(0x21, 0x00, tlv(0x20, Buffer.concat([Buffer.alloc(5), tlv(0x21, 'TLSv1.2'), Buffer.from([0])]))),
    'tlv-overrun',
  ],
  [
    'v2 SSL duplicate CN',
    v2(0x21, 0x00, tlv(0x20, Buffer.concat([Buffer.alloc(5), tlv(0x22, 'a'), tlv(0x22, 'b')]))),
    'tlv-duplicate',
  ],
  [
    'v2 SSL version not ASCII',
    v2(0x21, 0x00, tlv(0x20, Buffer.concat([Buffer.alloc(5), tlv(0x21, Buffer.from([0xc3, 0xa9]))]))),
    'tlv-bad-value',
  ],
  [
    'v2 SSL CN not UTF-8 (overlong encoding)',
    v2(0x21, 0x00, tlv(0x20, Buffer.concat([Buffer.alloc(5), tlv(0x22, Buffer.from([0xc0, 0xaf]))]))),
    'tlv-bad-value',
  ],
];

for (const [name, bytes, reason, options] of BAD) {
  test(`refuses ${name} with '${reason}', however split`, (t) => {
    const input = Buffer.concat([bytes, PAYLOAD]);
    t.is(
      reasonOf(() => parseProxyHeader(input, options)),
      reason,
    );
    for (let cut = 1; cut < input.length; cut++) {
      t.deepEqual(feed(input, [cut], options), { kind: 'error', reason }, `split at ${cut}`);
    }
    t.deepEqual(
      feed(
        input,
        Array.from({ length: input.length - 1 }, (_, i) => i + 1),
        options,
      ),
      { kind: 'error', reason },
    );
  });
}

test('the CRC32C check catches any flipped bit after the fixed header, TLV framing aside', (t) => {
  const good = v2WithCrc(0x21, 0x11, v4body);
  t.true(parseProxyHeader(good).done);
  // Everything but the CRC TLV's own type and length bytes (changing those changes the framing).
  for (let i = 16; i < good.length; i++) {
    if (i >= good.length - 7 && i < good.length - 4) continue;
    for (let bit = 0; bit < 8; bit++) {
      const bad = Buffer.from(good);
      bad[i]! ^= 1 << bit;
      t.is(
        reasonOf(() => parseProxyHeader(bad)),
        'crc-mismatch',
        `byte ${i} bit ${bit}`,
      );
    }
  }
  // A corrupted value that would also be malformed is still reported as a checksum failure.
  const withAuthority = v2WithCrc(0x21, 0x00, tlv(0x02, 'ok'));
  withAuthority[19] = 0xff;
  t.is(
    reasonOf(() => parseProxyHeader(withAuthority)),
    'crc-mismatch',
  );
});

test('fails fast: at the first wrong byte, without waiting for more', (t) => {
  const p1 = createProxyHeaderParser();
  t.deepEqual(p1.push(Buffer.from('PRO')), { done: false });
  t.is(
    reasonOf(() => p1.push(Buffer.from('Z'))),
    'bad-signature',
  );
  t.is(
    reasonOf(() => createProxyHeaderParser().push(Buffer.from([0x16]))),
    'bad-signature',
  );
  const p2 = createProxyHeaderParser();
  t.deepEqual(p2.push(SIG.subarray(0, 4)), { done: false });
  t.is(
    reasonOf(() => p2.push(Buffer.from([0x01]))),
    'bad-signature',
  );
  // Length over the limit: refused right after the 16th byte, nothing allocated for the rest.
  const p3 = createProxyHeaderParser({ maxHeaderBytes: 1000 });
  t.is(
    reasonOf(() => p3.push(v2(0x21, 0x11, Buffer.alloc(0), 0x1000).subarray(0, 16))),
    'header-too-large',
  );
  // An endless v1 line: refused at byte 105, the first one that cannot fit.
  const p4 = createProxyHeaderParser();
  t.deepEqual(p4.push(Buffer.from(`PROXY UNKNOWN ${'x'.repeat(91)}`)), { done: false });
  t.is(p4.bufferedBytes, 105);
  t.is(
    reasonOf(() => p4.push(Buffer.from('x'))),
    'v1-too-long',
  );
  const p5 = createProxyHeaderParser();
  t.is(
    reasonOf(() => p5.push(Buffer.from('PROXY TCP7'))),
    'v1-bad-protocol',
  );
});

test('parser state: closed after success, the same error after failure', (t) => {
  const p = createProxyHeaderParser();
  t.is(p.state, 'reading');
  t.deepEqual(p.push(Buffer.alloc(0)), { done: false });
  const step = p.push(Buffer.from('PROXY UNKNOWN\r\nrest'));
  t.true(step.done);
  t.is(p.state, 'done');
  t.is(p.bufferedBytes, 0);
  t.is(
    reasonOf(() => p.push(Buffer.from('x'))),
    'parser-closed',
  );

  const q = createProxyHeaderParser();
  const first = t.throws(() => q.push(Buffer.from('X')), { instanceOf: ProxyHeaderError });
  t.is(q.state, 'failed');
  t.is(
    t.throws(() => q.push(Buffer.from('PROXY UNKNOWN\r\n'))),
    first,
  );
  t.is(first?.code, 'ERR_REDIRECT_PROXY_HEADER');
  t.true(first instanceof RedirectError);
  t.regex(first?.message ?? '', /bad-signature/);
});

test('accepts Uint8Array chunks; leftover is a view of the chunk, header bytes a private copy', (t) => {
  const chunk = new Uint8Array(Buffer.concat([Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), PAYLOAD]));
  const step = createProxyHeaderParser().push(chunk);
  if (!step.done) return t.fail();
  t.deepEqual(step.leftover, PAYLOAD);
  t.is(step.leftover.buffer, chunk.buffer);
  t.not(step.header.raw.buffer, chunk.buffer);
  chunk.fill(0);
  t.is(step.header.source?.address, '1.2.3.4');
  t.is(step.header.raw.toString('latin1', 0, 5), 'PROXY');
});

test('parsed headers are frozen', (t) => {
  const { header } = parseAll(GOOD.find((g) => g.name.includes('every registered TLV'))!.bytes);
  t.true(Object.isFrozen(header));
  t.true(Object.isFrozen(header.tlvs));
  t.true(header.tlvs.every((x) => Object.isFrozen(x)));
  t.true(Object.isFrozen(header.ssl));
  t.true(Object.isFrozen(header.ssl?.subTlvs));
  t.true(Object.isFrozen(header.source));
  t.true(Object.isFrozen(header.destination));
  const unix = parseAll(encodeProxyHeaderV2({ unixSource: '/a', unixDestination: '/b' })).header;
  t.true(Object.isFrozen(unix.unixSource));
  t.true(Object.isFrozen(parseAll(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')).header.source));
});

test('bufferedBytes grows with the header and never passes maxHeaderBytes', (t) => {
  const header = v2(0x21, 0x00, tlv(0xe0, Buffer.alloc(200)));
  const p = createProxyHeaderParser({ maxHeaderBytes: 300 });
  for (let i = 0; i < header.length - 1; i++) {
    t.deepEqual(p.push(header.subarray(i, i + 1)), { done: false });
    t.is(p.bufferedBytes, i + 1);
  }
  t.true(p.push(header.subarray(-1)).done);
});

test('options are checked', (t) => {
  for (const options of [
    { maxHeaderBytes: 106 },
    { maxHeaderBytes: 65552 },
    { maxHeaderBytes: 1.5 },
    { versions: [] },
    { versions: ['v3'] },
  ]) {
    throwsCode(t, () => createProxyHeaderParser(options as ProxyHeaderParserOptions), 'ERR_REDIRECT_INVALID_OPTION');
  }
  t.notThrows(() => createProxyHeaderParser({ maxHeaderBytes: 65551, versions: ['v2'] }));
});

test('a maximal v2 header (16 + 65535 bytes) parses with maxHeaderBytes 65551', (t) => {
  const header = v2(0x21, 0x00, tlv(0xee, Buffer.alloc(0xffff - 3)));
  t.is(header.length, 65551);
  const { header: h } = parseAll(header, { maxHeaderBytes: 65551 });
  t.is(h.tlvs[0]?.value.length, 0xffff - 3);
  t.is(
    reasonOf(() => parseProxyHeader(header)),
    'header-too-large',
  );
});

// ---------------------------------------------------------------------------
// Encoders

test('encodeProxyHeaderV1 writes spec lines', (t) => {
  t.is(
    encodeProxyHeaderV1({
      source: { address: '192.168.0.1', port: 56324 },
      destination: { address: '192.168.0.11', port: 443 },
    }).toString(),
    'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n',
  );
  t.is(
    encodeProxyHeaderV1({
      source: { address: '2001:0DB8::0001', port: 1, family: 'IPv6' },
      destination: { address: '::1', port: 2 },
    }).toString(),
    'PROXY TCP6 2001:db8::1 ::1 1 2\r\n',
  );
  t.is(encodeProxyHeaderV1({ unknown: true }).toString(), 'PROXY UNKNOWN\r\n');
  // Mixed families: IPv4 side written as IPv4-mapped IPv6.
  t.is(
    encodeProxyHeaderV1({
      source: { address: '10.0.0.1', port: 1 },
      destination: { address: '2001:db8::2', port: 2 },
    }).toString(),
    'PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 1 2\r\n',
  );
});

test('encodeProxyHeaderV1 output round-trips through the parser', (t) => {
  for (const [s, d] of [
    ['0.0.0.0', '255.255.255.255'],
    ['::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['fe80::1:2', '2001:db8:0:1::'],
  ] as const) {
    const bytes = encodeProxyHeaderV1({ source: { address: s, port: 0 }, destination: { address: d, port: 65535 } });
    const { header } = parseAll(bytes);
    t.is(header.source?.address, s);
    t.is(header.destination?.address, d);
    t.deepEqual(encodeProxyHeaderV1({ source: header.source!, destination: header.destination! }), bytes);
  }
});

test('encodeProxyHeaderV1 refuses bad endpoints', (t) => {
  for (const init of [
    { source: { address: 'example.com', port: 1 }, destination: { address: '1.2.3.4', port: 1 } },
    { source: { address: '1.2.3.4', port: 65536 }, destination: { address: '1.2.3.4', port: 1 } },
    { source: { address: '1.2.3.4', port: -1 }, destination: { address: '1.2.3.4', port: 1 } },
    { source: { address: '1.2.3.4', port: 1, family: 'IPv6' }, destination: { address: '1.2.3.4', port: 1 } },
    { source: { address: 'fe80::1%eth0', port: 1 }, destination: { address: '::1', port: 1 } },
    { source: { address: '1.2.3.4', port: 1 } },
  ]) {
    throwsCode(t, () => encodeProxyHeaderV1(init as never), 'ERR_REDIRECT_INVALID_OPTION');
  }
});

test('encodeProxyHeaderV2 writes the same bytes as the hand-built headers', (t) => {
  t.deepEqual(
    encodeProxyHeaderV2({
      source: { address: '172.19.0.1', port: 42578 },
      destination: { address: '172.19.0.3', port: 80 },
    }),
    Buffer.from('0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050', 'hex'),
  );
  t.deepEqual(encodeProxyHeaderV2({ command: 'local' }), v2(0x20, 0x00, Buffer.alloc(0)));
  t.deepEqual(
    encodeProxyHeaderV2({
      transport: 'udp',
      source: { address: '10.0.0.1', port: 53 },
      destination: { address: '10.0.0.2', port: 5353 },
    }),
    v2(0x21, 0x12, Buffer.concat([ip4('10.0.0.1'), ip4('10.0.0.2'), ports(53, 5353)])),
  );
  t.deepEqual(
    encodeProxyHeaderV2({ unixSource: '/run/client.sock', unixDestination: '/run/server.sock' }),
    v2(0x21, 0x31, Buffer.concat([unixPath('/run/client.sock'), unixPath('/run/server.sock')])),
  );
  t.deepEqual(
    encodeProxyHeaderV2({
      source: { address: '1.2.3.4', port: 1 },
      destination: { address: '5.6.7.8', port: 2 },
      crc32c: true,
    }),
    v2WithCrc(0x21, 0x11, v4body),
  );
  // Mixed families: written as IPv6 with the IPv4 side mapped.
  t.deepEqual(
    encodeProxyHeaderV2({ source: { address: '192.0.2.1', port: 1 }, destination: { address: '::1', port: 2 } }),
    v2(
      0x21,
      0x21,
      Buffer.concat([ip6('00000000000000000000ffffc0000201'), ip6('00000000000000000000000000000001'), ports(1, 2)]),
    ),
  );
});

test('encodeProxyHeaderV2 named TLV fields round-trip', (t) => {
  const bytes = encodeProxyHeaderV2({
    transport: 'tcp',
    source: { address: '2001:db8::1', port: 1234 },
    destination: { address: '2001:db8::2', port: 443 },
    alpn: 'http/1.1',
    authority: 'ünï.example',
    uniqueId: Buffer.from('0123456789abcdef'),
    netns: 'red',
    ssl: {
      client: 0x05,
      verify: 19,
      version: 'TLSv1.2',
      cn: 'client.example',
      cipher: 'ECDHE-RSA-AES128-GCM-SHA256',
      sigAlg: 'RSA-SHA256',
      keyAlg: 'RSA2048',
      group: 'secp256r1',
      sigScheme: 'rsa_pkcs1_sha256',
      clientCert: Buffer.from([1, 2, 3]),
      subTlvs: [{ type: 0x2a, value: Buffer.from('x') }],
    },
    tlvs: [{ type: 0xe5, value: Buffer.from('custom') }],
    crc32c: true,
  });
  const { header } = parseAll(bytes);
  t.like(header, {
    alpn: 'http/1.1',
    authority: 'ünï.example',
    netns: 'red',
    source: { address: '2001:db8::1', port: 1234, family: 'IPv6' },
  });
  t.deepEqual(header.uniqueId, Buffer.from('0123456789abcdef'));
  t.like(header.ssl, { client: 5, verify: 19, version: 'TLSv1.2', cn: 'client.example', group: 'secp256r1' });
  t.deepEqual(header.ssl?.clientCert, Buffer.from([1, 2, 3]));
  t.deepEqual(
    header.tlvs.map((x) => x.type),
    [0x01, 0x02, 0x05, 0x20, 0x30, 0xe5, 0x03],
  );
  t.is(header.crc32c, crcBitwise(Buffer.concat([bytes.subarray(0, -4), Buffer.alloc(4)])));
  // Re-encoding from the raw TLV list reproduces the bytes exactly.
  t.deepEqual(
    encodeProxyHeaderV2({ source: header.source!, destination: header.destination!, tlvs: header.tlvs }),
    bytes,
  );
});

test('every GOOD v2 PROXY header re-encodes from its parsed form to the same bytes', (t) => {
  for (const g of GOOD) {
    const { header } = parseAll(g.bytes, g.options);
    if (header.version !== 2 || header.command !== 'proxy') continue;
    const init = {
      transport: header.transport,
      source: header.source,
      destination: header.destination,
      unixSource: header.unixSource?.raw,
      unixDestination: header.unixDestination?.raw,
      tlvs: header.tlvs,
    };
    t.deepEqual(encodeProxyHeaderV2(init), g.bytes, g.name);
  }
});

test('encodeProxyHeaderV2 refuses what it cannot write or the parser would refuse', (t) => {
  const ep = { source: { address: '1.2.3.4', port: 1 }, destination: { address: '5.6.7.8', port: 2 } };
  for (const [name, init] of [
    ['local with addresses', { command: 'local', ...ep }],
    ['local with a transport', { command: 'local', transport: 'tcp' }],
    ['unspec with addresses', { transport: 'unspec', ...ep }],
    ['tcp without addresses', { transport: 'tcp' }],
    ['bad transport', { transport: 'sctp', ...ep }],
    ['bad command', { command: 'proxy2', ...ep }],
    ['unix path too long', { unixSource: 'a'.repeat(109), unixDestination: '/x' }],
    ['unique id too long', { ...ep, uniqueId: Buffer.alloc(129) }],
    ['alpn twice', { ...ep, alpn: 'h2', tlvs: [{ type: 1, value: Buffer.from('h2') }] }],
    ['netns not ASCII', { ...ep, netns: 'é' }],
    ['ssl without verify', { ...ep, ssl: { client: 1 } }],
    ['ssl client out of range', { ...ep, ssl: { client: 256, verify: 0 } }],
    ['TLV type 256', { ...ep, tlvs: [{ type: 256, value: Buffer.alloc(0) }] }],
    ['TLV value too long', { ...ep, tlvs: [{ type: 0xe0, value: Buffer.alloc(65536) }] }],
    ['header too long', { ...ep, tlvs: [{ type: 0xe0, value: Buffer.alloc(65535 - 12) }] }],
    ['CRC32C TLV of 3 bytes', { ...ep, tlvs: [{ type: 3, value: Buffer.alloc(3) }] }],
    ['authority with a lone surrogate', { ...ep, authority: '\ud800' }],
  ] as const) {
    throwsCode(t, () => encodeProxyHeaderV2(init as never), 'ERR_REDIRECT_INVALID_OPTION', {}, name);
  }
});

test('a CRC32C TLV passed raw is filled in where it stands', (t) => {
  const bytes = encodeProxyHeaderV2({
    unixSource: '/a',
    unixDestination: '/b',
    transport: 'unix-dgram',
    tlvs: [
      { type: 0x03, value: Buffer.alloc(4, 0xee) },
      { type: 0x04, value: Buffer.alloc(3) },
    ],
    crc32c: true,
  });
  const { header } = parseAll(bytes);
  t.deepEqual(
    header.tlvs.map((x) => x.type),
    [0x03, 0x04],
  );
  t.is(header.transport, 'unix-dgram');
  t.is(typeof header.crc32c, 'number');
});

test('normalizeProxyAddress turns IPv4-mapped IPv6 into IPv4 and leaves the rest alone', (t) => {
  t.deepEqual(normalizeProxyAddress({ address: '::ffff:10.0.0.1', port: 5, family: 'IPv6' }), {
    address: '10.0.0.1',
    port: 5,
    family: 'IPv4',
  });
  const v6 = { address: '2001:db8::1', port: 5, family: 'IPv6' } as const;
  t.is(normalizeProxyAddress(v6), v6);
  const v4 = { address: '10.0.0.1', port: 5, family: 'IPv4' } as const;
  t.is(normalizeProxyAddress(v4), v4);
  // The parser itself keeps the mapped form.
  const { header } = parseAll(Buffer.from('PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n'));
  t.is(header.source?.address, '::ffff:10.0.0.1');
});
