import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import test from 'ava';
import { map } from 'rxjs';
import {
  both,
  compose,
  createRecord,
  createRedirectServer,
  downstream,
  RedirectError,
  type RedirectServerOptions,
  upstream,
} from '../lib/index';
import { throwsCode, throwsCodeAsync } from './helpers/expect';

const ok: RedirectServerOptions = { resolve: { host: '127.0.0.1', port: 80 } };

const bad: Array<[string, unknown, RegExp]> = [
  ['no options', undefined, /options object/],
  ['no resolve', {}, /resolve: is required/],
  ['unknown option', { ...ok, limit: {} }, /options\.limit: unknown option/],
  ['unknown mechanism', { resolve: 'magic' }, /"magic" is not a known mechanism/],
  ['bad static port', { resolve: { host: 'x', port: 70000 } }, /resolve\.port/],
  ['bad target', { ...ok, target: { host: '', port: 1 } }, /target\.host/],
  ['middleware not an array', { ...ok, middleware: () => {} }, /middleware: must be an array/],
  ['middleware entry not a function', { ...ok, middleware: [42] }, /middleware\[0\]: must be a function/],
  ['negative timeout', { ...ok, limits: { connectTimeoutMs: -1 } }, /limits\.connectTimeoutMs/],
  // Past 2^31 - 1 ms Node runs a timer after 1 ms: a one-month idle timeout would end flows at once.
  ['timeout past a timer', { ...ok, limits: { idleTimeoutMs: 2 ** 31 } }, /limits\.idleTimeoutMs: must be at most/],
  ['tiny highWaterMark', { ...ok, limits: { highWaterMark: 10 } }, /limits\.highWaterMark/],
  ['unknown limit', { ...ok, limits: { foo: 1 } }, /limits\.foo: unknown limit/],
  ['bad id', { ...ok, id: 'has spaces' }, /options\.id/],
  ['bad egress key', { ...ok, egress: { nope: 1 } }, /egress\.nope/],
  [
    'two socket makers',
    {
      ...ok,
      egress: {
        plugins: [
          { name: 'a', createSocket() {} },
          { name: 'b', createSocket() {} },
        ],
      },
    },
    /only one plugin/,
  ],
];

for (const [name, options, message] of bad) {
  test(`bad options throw synchronously with a code: ${name}`, (t) => {
    const err = t.throws(() => createRedirectServer(options as RedirectServerOptions), { instanceOf: RedirectError });
    t.is(err?.code, 'ERR_REDIRECT_INVALID_OPTION');
    t.regex(err?.message ?? '', message);
  });
}

test('listen() rejects bad arguments and a second call with coded errors', async (t) => {
  const server = createRedirectServer(ok);
  await throwsCodeAsync(t, server.listen({ port: -1 }), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => server.close({ timeoutMs: 2 ** 31 }), 'ERR_REDIRECT_INVALID_OPTION');
  throwsCode(t, () => server.close({ timeoutMs: -1 }), 'ERR_REDIRECT_INVALID_OPTION');
  await server.listen({ port: 0 });
  await throwsCodeAsync(t, server.listen({ port: 0 }), 'ERR_REDIRECT_SERVER_STATE');
  await server.close();
});

test('records normalise IPv4-mapped addresses and are frozen; bad records are coded errors', (t) => {
  const r = createRecord({
    destination: { address: '::FFFF:192.0.2.7', port: 443 },
    source: { address: '2001:DB8::1', port: 5000 },
  });
  t.deepEqual(r.destination, { address: '192.0.2.7', port: 443, family: 'IPv4' });
  t.deepEqual(r.source, { address: '2001:db8::1', port: 5000, family: 'IPv6' });
  t.true(Object.isFrozen(r) && Object.isFrozen(r.destination) && Object.isFrozen(r.chain));
  throwsCode(
    t,
    () => createRecord({ destination: { address: '1.2.3.4', port: 99999 } }),
    'ERR_REDIRECT_INVALID_RECORD',
  );
  throwsCode(
    t,
    () => createRecord({ destination: { address: '1.2.3.4', port: 1 }, chain: [{ id: '' }] }),
    'ERR_REDIRECT_INVALID_RECORD',
  );
});

test('the package loads through require and import, with the middleware subpath', (t) => {
  const root = join(__dirname, '..', '..');
  const cjs = execFileSync(
    process.execPath,
    [
      '-e',
      "const r = require('rxredirect'); const m = require('rxredirect/middleware'); console.log(typeof r.createRedirectServer, typeof m.compose)",
    ],
    { cwd: root },
  ).toString();
  t.is(cjs.trim(), 'function function');
  const esm = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      "import { createRedirectServer, RedirectError } from 'rxredirect'; import { upstream } from 'rxredirect/middleware'; console.log(typeof createRedirectServer, typeof RedirectError, typeof upstream)",
    ],
    { cwd: root },
  ).toString();
  t.is(esm.trim(), 'function function function');
});

test('messages name each option as it was written: no argument, notRedirected, transparent, cooperating', (t) => {
  const message = (options: unknown): string =>
    t.throws(() => createRedirectServer(options as RedirectServerOptions), { instanceOf: RedirectError })?.message ??
    '';
  const noArgument = t.throws(() => (createRedirectServer as () => unknown)(), { instanceOf: RedirectError });
  t.is(noArgument?.message, 'createRedirectServer(options) needs an options object with at least `resolve`');
  t.regex(message({ resolve: 'netfilter', notRedirected: { host: '', port: 1 } }), /^options\.notRedirected\.host: /);
  t.regex(message({ resolve: 'netfilter', notRedirected: 'drop' }), /^options\.notRedirected: /);
  t.regex(message({ resolve: 'auto', transparent: 'yes' }), /^options\.transparent: /);
  // Without egress.mark the own bit cannot be inferred: the top-level name, not resolve.cooperating.
  t.regex(
    message({ id: 'a', resolve: 'netfilter', cooperating: { b: 0x2 } }),
    /^options\.cooperating: has no bit for this proxy's own id "a"/,
  );
});

test('cooperating: the own bit is inferred from id + egress.mark; only a contradiction is refused', (t) => {
  const base = { id: 'a', resolve: 'netfilter' as const };
  // Inferred, or repeated consistently: both fine.
  t.notThrows(() => createRedirectServer({ ...base, cooperating: { b: 0x2 }, egress: { mark: 0x1 } }));
  t.notThrows(() => createRedirectServer({ ...base, cooperating: { a: 0x1, b: 0x2 }, egress: { mark: 0x1 } }));
  t.notThrows(() => createRedirectServer({ ...base, cooperating: { a: 0x1, b: 0x2 }, egress: { mark: 0x101 } }));
  const refused: Array<[unknown, RegExp]> = [
    [
      { ...base, cooperating: { a: 0x4, b: 0x2 }, egress: { mark: 0x1 } },
      /^options\.cooperating\.a: is 0x4, but egress\.mark 0x1/,
    ],
    [
      { ...base, cooperating: { b: 0x1 }, egress: { mark: 0x1 } },
      /^options\.cooperating\.b: uses 0x1, the bit of egress\.mark/,
    ],
    [
      { ...base, cooperating: { b: 0x2 }, egress: { mark: 0x5 } },
      /^options\.cooperating: .*egress\.mark 0x5 has several bits/,
    ],
  ];
  for (const [options, expected] of refused) {
    const err = t.throws(() => createRedirectServer(options as RedirectServerOptions), { instanceOf: RedirectError });
    t.is(err?.code, 'ERR_REDIRECT_INVALID_OPTION');
    t.regex(err?.message ?? '', expected);
  }
});

test('upstream(), downstream(), both() and compose() refuse a non-function with ERR_REDIRECT_INVALID_OPTION', (t) => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['upstream', () => upstream(42 as never), /^upstream\(operator\): operator is number/],
    ['downstream', () => downstream(undefined as never), /^downstream\(operator\): operator is undefined/],
    ['both', () => both({} as never), /^both\(operator\): operator is object/],
    ['compose', () => compose(upstream(map((c: Buffer) => c)), null as never), /^compose\(\): argument 1 is null/],
  ];
  for (const [name, make, message] of cases) {
    const err = t.throws(make, { instanceOf: RedirectError }, name);
    t.is(err?.code, 'ERR_REDIRECT_INVALID_OPTION', name);
    t.regex(err?.message ?? '', message, name);
  }
});
