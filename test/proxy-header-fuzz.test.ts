/**
 * Fuzz test for the PROXY header parser. Seeded, so a failure reproduces: the seed
 * and case number are in every assertion message. PROXY_FUZZ_SEED=<n> picks another
 * seed, PROXY_FUZZ_CASES=<n> another case count.
 */
import assert from 'node:assert/strict';
import test from 'ava';
import { RedirectError } from '../lib/common/errors';
import {
  createProxyHeaderParser,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  type ProxyHeader,
  type ProxyHeaderErrorReason,
  type ProxyHeaderParserOptions,
  type ProxyHeaderV2Init,
  type ProxyTlvInit,
  parseProxyHeader,
} from '../lib/proxy-protocol/index';

const SEED = Number(process.env.PROXY_FUZZ_SEED ?? 0x5eed1);
/** Per test: v1 and v2 run this many, garbage half: 100,000 cases by default. */
const CASES = Number(process.env.PROXY_FUZZ_CASES ?? 40_000);
/** One in this many cases is also fed split at every position. */
const EVERY_SPLIT_RATE = 40;

const REASONS = new Set<ProxyHeaderErrorReason>([
  'bad-signature',
  'version-not-allowed',
  'header-too-large',
  'v1-too-long',
  'v1-bad-crlf',
  'v1-bad-char',
  'v1-bad-protocol',
  'v1-bad-format',
  'v1-bad-address',
  'v1-bad-port',
  'v2-bad-version',
  'v2-bad-command',
  'v2-bad-family',
  'v2-length-mismatch',
  'tlv-overrun',
  'tlv-bad-length',
  'tlv-bad-value',
  'tlv-duplicate',
  'crc-mismatch',
  'unique-id-too-long',
]);

/** mulberry32: small, fast, good enough to drive a fuzzer. */
function makeRandom(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const chance = (p: number) => next() < p;
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const bytes = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const text = (n: number, alphabet: string) => {
    const chars = Array.from(alphabet); // whole code points, never half a surrogate pair
    let s = '';
    for (let i = 0; i < n; i++) s += chars[int(chars.length)];
    return s;
  };
  return { int, chance, pick, bytes, text };
}

type Random = ReturnType<typeof makeRandom>;

const ASCII = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/';
const UNICODE = `${ASCII}éüßЖ中😀`;

function randomIPv4(r: Random): string {
  return Array.from({ length: 4 }, () => (r.chance(0.2) ? r.pick([0, 255]) : r.int(256))).join('.');
}

/** Random IPv6 text in assorted legal spellings (not only canonical). */
function randomIPv6(r: Random): string {
  const groups = Array.from({ length: 8 }, () => (r.chance(0.4) ? 0 : r.chance(0.5) ? r.int(16) : r.int(0x10000)));
  const style = r.int(4);
  if (style === 0) return groups.map((g) => g.toString(16).padStart(4, '0').toUpperCase()).join(':');
  if (style === 1) return `::ffff:${randomIPv4(r)}`;
  const long = groups.map((g) => g.toString(16)).join(':');
  // Compress one zero run (any run, not necessarily the longest: all are legal).
  const m = /(^|:)0(:0)+(:|$)/.exec(long);
  return m === null ? long : `${long.slice(0, m.index)}::${long.slice(m.index + m[0].length)}`;
}

function randomEndpoint(r: Random, v6: boolean) {
  return { address: v6 ? randomIPv6(r) : randomIPv4(r), port: r.chance(0.2) ? r.pick([0, 65535]) : r.int(65536) };
}

function randomV1(r: Random): Buffer {
  const kind = r.int(10);
  if (kind === 0) return Buffer.from('PROXY UNKNOWN\r\n');
  if (kind === 1) return Buffer.from(`PROXY UNKNOWN ${r.text(r.int(92), `${ASCII} `)}\r\n`);
  const v6 = kind >= 6;
  if (kind === 9) {
    // Non-canonical spellings the parser must accept as written.
    const s = randomEndpoint(r, true);
    const d = randomEndpoint(r, true);
    return Buffer.from(`PROXY TCP6 ${s.address} ${d.address} ${s.port} ${d.port}\r\n`);
  }
  return encodeProxyHeaderV1({ source: randomEndpoint(r, v6), destination: randomEndpoint(r, v6) });
}

function randomTlvs(r: Random): Partial<ProxyHeaderV2Init> {
  const init: Partial<ProxyHeaderV2Init> = {};
  if (r.chance(0.3)) init.alpn = r.pick(['h2', 'http/1.1', 'h3', r.text(r.int(20), ASCII)]);
  if (r.chance(0.3)) init.authority = r.text(r.int(40), UNICODE);
  if (r.chance(0.2)) init.uniqueId = r.bytes(r.chance(0.2) ? 128 : r.int(40));
  if (r.chance(0.15)) init.netns = r.text(r.int(12), ASCII);
  if (r.chance(0.3)) {
    init.ssl = {
      client: r.int(8),
      verify: r.chance(0.5) ? 0 : r.int(0x100000000),
      ...(r.chance(0.7) ? { version: r.pick(['TLSv1.2', 'TLSv1.3']) } : {}),
      ...(r.chance(0.5) ? { cn: r.text(r.int(30), UNICODE) } : {}),
      ...(r.chance(0.5) ? { cipher: r.text(r.int(30), ASCII) } : {}),
      ...(r.chance(0.3) ? { sigAlg: 'RSA-SHA256', keyAlg: 'RSA2048' } : {}),
      ...(r.chance(0.2) ? { group: 'X25519', sigScheme: 'ecdsa_secp256r1_sha256' } : {}),
      ...(r.chance(0.2) ? { clientCert: r.bytes(r.int(200)) } : {}),
      ...(r.chance(0.2) ? { subTlvs: [{ type: 0x29 + r.int(6), value: r.bytes(r.int(8)) }] } : {}),
    };
  }
  const raw: ProxyTlvInit[] = [];
  for (let n = r.int(4); n > 0; n--) {
    const type = r.pick([0x00, 0x04, 0x06, 0x1f, 0x31, 0xe0 + r.int(16), 0xf0 + r.int(16)]);
    raw.push({ type, value: r.bytes(r.chance(0.05) ? r.int(5000) : r.int(30)) });
  }
  if (raw.length > 0) init.tlvs = raw;
  if (r.chance(0.3)) init.crc32c = true;
  return init;
}

function randomV2(r: Random): Buffer {
  const tlvs = randomTlvs(r);
  const kind = r.int(8);
  if (kind === 0) return encodeProxyHeaderV2({ command: 'local', ...tlvs });
  if (kind === 1) return encodeProxyHeaderV2({ transport: 'unspec', ...tlvs });
  if (kind === 2) {
    const path = () => (r.chance(0.2) ? `\0${r.text(r.int(50), ASCII)}` : `/${r.text(r.int(107), ASCII)}`);
    return encodeProxyHeaderV2({
      transport: r.pick(['unix-stream', 'unix-dgram'] as const),
      unixSource: path(),
      unixDestination: path(),
      ...tlvs,
    });
  }
  const v6 = kind >= 5;
  return encodeProxyHeaderV2({
    transport: r.pick(['tcp', 'udp'] as const),
    source: randomEndpoint(r, v6),
    destination: randomEndpoint(r, v6 ? r.chance(0.8) : false),
    ...tlvs,
  });
}

const V1_CHARS = Buffer.from(' :.0123456789abcdefABCDEF\r\nPROXYTCP46UNKNOW\t\0\x7f\x80');
const V2_BYTES = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0d, 0x0a, 0x10, 0x11, 0x12, 0x20, 0x21, 0x22, 0x30, 0x31, 0x32, 0xff,
];

const REGISTERED = [0x01, 0x02, 0x03, 0x04, 0x05, 0x20, 0x21, 0x22, 0x25, 0x28, 0x30];
const ADDRESS_BLOCK: Record<number, number> = { 1: 12, 2: 36, 3: 216 };

/** Offsets of the TLV type bytes of a v2 header, walking as far as the framing holds. */
function tlvTypeOffsets(b: Buffer): number[] {
  if (b.length < 16) return [];
  const end = Math.min(b.length, 16 + b.readUInt16BE(14));
  const out: number[] = [];
  for (let p = 16 + (ADDRESS_BLOCK[b[13]! >> 4] ?? 0); p + 3 <= end; p += 3 + b.readUInt16BE(p + 1)) out.push(p);
  return out;
}

/** One to three mutations: flips, overwrites, inserts, deletes, truncation, length-field edits. */
function mutate(r: Random, input: Buffer, v1: boolean): Buffer {
  let b = Buffer.from(input);
  for (let n = 1 + r.int(3); n > 0 && b.length > 0; n--) {
    // Most damage goes into the header, where the parser looks.
    const at = r.chance(0.8) ? r.int(Math.min(b.length, 120)) : r.int(b.length);
    switch (r.int(10)) {
      case 0:
        b[at]! ^= 1 << r.int(8);
        break;
      case 1:
        b[at] = v1 ? V1_CHARS[r.int(V1_CHARS.length)]! : r.chance(0.5) ? r.pick(V2_BYTES) : r.int(256);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(4)), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + r.int(4))]);
        break;
      case 4:
        b = b.subarray(0, r.int(b.length));
        break;
      case 5:
        // The v2 length field: a random value or off by a little.
        if (b.length >= 16)
          b.writeUInt16BE(r.chance(0.5) ? r.int(0x10000) : (b.readUInt16BE(14) + r.int(9) - 4) & 0xffff, 14);
        break;
      case 6:
        // Some 16-bit field deeper in (often a TLV length).
        if (b.length >= 18) {
          const p = 16 + r.int(b.length - 17);
          b.writeUInt16BE(r.chance(0.5) ? r.int(0x10000) : (b.readUInt16BE(p) + r.int(5) - 2) & 0xffff, p);
        }
        break;
      case 7: {
        const from = r.int(b.length);
        const slice = b.subarray(from, from + 1 + r.int(8));
        b = Buffer.concat([b.subarray(0, at), slice, b.subarray(at)]);
        break;
      }
      case 9: {
        // Retype a TLV as a registered type, so the value decoders see foreign content.
        const offsets = v1 ? [] : tlvTypeOffsets(b);
        if (offsets.length > 0) b[r.pick(offsets)] = r.pick(REGISTERED);
        break;
      }
      case 8:
        // Byte 12/13 (v2 version/command, family) are worth hitting on purpose.
        if (!v1 && b.length > 13) b[12 + r.int(2)] = r.pick(V2_BYTES);
        else b[at] = r.int(256);
        break;
    }
  }
  return b;
}

function randomGarbage(r: Random): Buffer {
  const prefix = r.pick([
    Buffer.alloc(0),
    Buffer.from('P'),
    Buffer.from('PROXY '),
    Buffer.from('PROXY TCP4 '),
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
    Buffer.from('0d0a0d0a000d0a515549540a21', 'hex'),
  ]);
  return Buffer.concat([prefix, r.bytes(r.int(r.chance(0.05) ? 2000 : 140))]);
}

const OPTION_SETS: ProxyHeaderParserOptions[] = [
  {},
  {},
  {},
  { maxHeaderBytes: 107 },
  { maxHeaderBytes: 300 },
  { maxHeaderBytes: 65551 },
  { versions: ['v1'] },
  { versions: ['v2'] },
];

type Outcome =
  | { kind: 'done'; header: ProxyHeader; consumed: number }
  | { kind: 'more' }
  | { kind: 'error'; reason: ProxyHeaderErrorReason };

/** Feeds `input` in pieces, checking the parser's invariants after every push. */
function run(input: Buffer, cuts: readonly number[], options: ProxyHeaderParserOptions, where: string): Outcome {
  const parser = createProxyHeaderParser(options);
  const max = options.maxHeaderBytes ?? 4096;
  let start = 0;
  for (const end of [...cuts, input.length]) {
    const chunk = input.subarray(start, end);
    let step: ReturnType<typeof parser.push>;
    try {
      step = parser.push(chunk);
    } catch (err) {
      if (!(err instanceof RedirectError)) assert.fail(`${where}: threw a non-RedirectError: ${String(err)}`);
      assert.equal(err.code, 'ERR_REDIRECT_PROXY_HEADER', where);
      const reason = (err as { reason?: unknown }).reason as ProxyHeaderErrorReason;
      assert.ok(REASONS.has(reason), `${where}: unknown reason ${String(reason)}`);
      assert.equal(parser.state, 'failed', where);
      return { kind: 'error', reason };
    }
    if (step.done) {
      const consumed = end - step.leftover.length;
      assert.ok(consumed > start - 1 && consumed <= end, `${where}: header ends outside the last chunk`);
      assert.ok(step.header.raw.equals(input.subarray(0, consumed)), `${where}: raw is not the consumed prefix`);
      assert.ok(step.leftover.equals(input.subarray(consumed, end)), `${where}: leftover is not the rest of the chunk`);
      assert.ok(consumed <= Math.max(max, 107), `${where}: header longer than the limit`);
      return { kind: 'done', header: step.header, consumed };
    }
    // Not done and no error: every byte so far is held, nothing more.
    assert.equal(parser.bufferedBytes, end, `${where}: buffered ${parser.bufferedBytes} of ${end}`);
    assert.ok(parser.bufferedBytes <= max, `${where}: buffered ${parser.bufferedBytes} > ${max}`);
    start = end;
  }
  return { kind: 'more' };
}

function sameOutcome(a: Outcome, b: Outcome, where: string): void {
  // The message is built only on failure: stringifying headers on every call would dominate the run time.
  if (b.kind !== a.kind) assert.fail(`${where}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  if (a.kind === 'error' && b.kind === 'error') assert.equal(b.reason, a.reason, where);
  if (a.kind === 'done' && b.kind === 'done') {
    assert.equal(b.consumed, a.consumed, where);
    assert.deepEqual(b.header, a.header, where);
  }
}

/** Checks a parsed header: it re-parses alone to itself, and a v2 PROXY/IP one re-encodes to its bytes. */
function checkDone(header: ProxyHeader, options: ProxyHeaderParserOptions, where: string): void {
  const again = parseProxyHeader(header.raw, options);
  assert.ok(again.done && again.leftover.length === 0, `${where}: raw alone does not re-parse`);
  assert.deepEqual(again.header, header, `${where}: re-parse differs`);
  if (header.version === 2 && header.command === 'proxy' && header.source !== undefined) {
    const bytes = encodeProxyHeaderV2({
      transport: header.transport,
      source: header.source,
      destination: header.destination!,
      tlvs: header.tlvs,
    });
    assert.ok(bytes.equals(header.raw), `${where}: re-encoding differs`);
  }
}

function randomCuts(r: Random, length: number): number[] {
  if (length < 2) return [];
  const cuts = new Set<number>();
  for (let n = 1 + r.int(4); n > 0; n--) cuts.add(1 + r.int(length - 1));
  return [...cuts].sort((x, y) => x - y);
}

interface Stats {
  cases: number;
  parses: number;
  outcomes: Map<string, number>;
}

function fuzz(
  name: string,
  seed: number,
  cases: number,
  make: (r: Random) => { input: Buffer; valid: boolean },
): Stats {
  const r = makeRandom(seed);
  const stats: Stats = { cases: 0, parses: 0, outcomes: new Map() };
  for (let i = 0; i < cases; i++) {
    const where = `${name} seed=${seed} case=${i}`;
    const { input, valid } = make(r);
    const options = r.pick(OPTION_SETS);
    const whole = run(input, [], options, where);
    const split = run(input, randomCuts(r, input.length), options, `${where} split`);
    stats.parses += 2;
    sameOutcome(whole, split, where);
    if (i % EVERY_SPLIT_RATE === 0) {
      for (let cut = 1; cut < input.length; cut++) {
        sameOutcome(whole, run(input, [cut], options, `${where} cut=${cut}`), `${where} cut=${cut}`);
      }
      stats.parses += Math.max(0, input.length - 1);
    }
    if (whole.kind === 'done') checkDone(whole.header, options, where);
    if (valid && Object.keys(options).length === 0)
      assert.equal(whole.kind, 'done', `${where}: a valid header was refused`);
    const key = whole.kind === 'error' ? whole.reason : whole.kind;
    stats.outcomes.set(key, (stats.outcomes.get(key) ?? 0) + 1);
    stats.cases++;
  }
  return stats;
}

function report(t: import('ava').ExecutionContext, stats: Stats): void {
  const list = [...stats.outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`);
  t.log(`${stats.cases} cases, ${stats.parses} parses: ${list.join(' ')}`);
}

const PAYLOAD_MAX = 40;

test('fuzz: mutated v1 headers', (t) => {
  const stats = fuzz('v1', SEED, CASES, (r) => {
    const header = randomV1(r);
    const input = Buffer.concat([header, r.bytes(r.int(PAYLOAD_MAX))]);
    return r.chance(0.15) ? { input, valid: true } : { input: mutate(r, input, true), valid: false };
  });
  report(t, stats);
  for (const reason of [
    'done',
    'more',
    'v1-bad-address',
    'v1-bad-port',
    'v1-bad-format',
    'v1-bad-crlf',
    'v1-too-long',
  ]) {
    t.true(stats.outcomes.has(reason), `never saw ${reason}`);
  }
});

test('fuzz: mutated v2 headers', (t) => {
  const stats = fuzz('v2', SEED + 1, CASES, (r) => {
    const header = randomV2(r);
    const input = Buffer.concat([header, r.bytes(r.int(PAYLOAD_MAX))]);
    return r.chance(0.15) ? { input, valid: header.length <= 4096 } : { input: mutate(r, input, false), valid: false };
  });
  report(t, stats);
  for (const reason of [
    'done',
    'more',
    'v2-bad-version',
    'v2-bad-command',
    'v2-bad-family',
    'v2-length-mismatch',
    'tlv-overrun',
    'crc-mismatch',
    'header-too-large',
  ]) {
    t.true(stats.outcomes.has(reason), `never saw ${reason}`);
  }
});

test('fuzz: random bytes, with and without a signature in front', (t) => {
  const stats = fuzz('garbage', SEED + 2, CASES / 2, (r) => ({ input: randomGarbage(r), valid: false }));
  report(t, stats);
  t.true(stats.outcomes.has('bad-signature'));
});

test('a huge chunk costs nothing past the header: leftover is a view, not a copy', (t) => {
  const payload = Buffer.alloc(16 * 1024 * 1024, 0x61);
  for (const header of [
    Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'),
    encodeProxyHeaderV2({
      source: { address: '::1', port: 1 },
      destination: { address: '::2', port: 2 },
      crc32c: true,
    }),
  ]) {
    const input = Buffer.concat([header, payload]);
    const step = createProxyHeaderParser().push(input);
    if (!step.done) return t.fail();
    t.is(step.leftover.length, payload.length);
    // A view on the input, starting right after the header: nothing was copied.
    t.is(step.leftover.buffer, input.buffer);
    t.is(step.leftover.byteOffset, input.byteOffset + header.length);
  }
  // Garbage of any size is refused at its first byte.
  t.throws(() => createProxyHeaderParser().push(payload), { message: /bad-signature/ });
});
