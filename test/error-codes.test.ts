import test from 'ava';
import { RedirectError } from '../lib/common/errors';
import { socketFault } from '../lib/connection/faults';
import type { CloseReason, EgressPlugin, Middleware, RedirectErrorCode } from '../lib/index';
import { dialRaw, drain, echoUpstream, nextClose, startRedirect } from './helpers/net';

/** One code per cause: each fault a flow can end with says which side and what. */

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code} from the kernel`), { code });
}

test('socket faults: each side and each kind has its own code and reason', (t) => {
  const cases: [
    side: 'client' | 'upstream',
    errno: string,
    connected: boolean,
    reason: CloseReason,
    code: RedirectErrorCode,
  ][] = [
    ['client', 'ECONNRESET', true, 'client-reset', 'ERR_REDIRECT_CLIENT_RESET'],
    ['client', 'EPIPE', true, 'client-reset', 'ERR_REDIRECT_CLIENT_RESET'],
    ['client', 'ECONNRESET', false, 'client-reset', 'ERR_REDIRECT_CLIENT_RESET'],
    ['client', 'EIO', true, 'client-error', 'ERR_REDIRECT_CLIENT_FAILED'],
    ['upstream', 'ECONNRESET', true, 'upstream-reset', 'ERR_REDIRECT_UPSTREAM_RESET'],
    ['upstream', 'ECONNABORTED', true, 'upstream-reset', 'ERR_REDIRECT_UPSTREAM_RESET'],
    // A reset reported by connect(): the upstream had accepted.
    ['upstream', 'ECONNRESET', false, 'upstream-reset', 'ERR_REDIRECT_UPSTREAM_RESET'],
    ['upstream', 'EIO', true, 'upstream-error', 'ERR_REDIRECT_UPSTREAM_FAILED'],
    ['upstream', 'EPROTO', false, 'upstream-error', 'ERR_REDIRECT_UPSTREAM_FAILED'],
    ['upstream', 'ECONNREFUSED', false, 'upstream-refused', 'ERR_REDIRECT_UPSTREAM_REFUSED'],
    ['upstream', 'EHOSTUNREACH', false, 'upstream-unreachable', 'ERR_REDIRECT_UPSTREAM_UNREACHABLE'],
  ];
  for (const [side, code, connected, reason, expected] of cases) {
    const fault = socketFault(side, errno(code), connected);
    const what = `${side} ${code}${connected ? '' : ' before connect'}`;
    t.is(fault.reason, reason, what);
    t.is(fault.error.code, expected, what);
    t.is(fault.error.syscallCode, code, what);
    t.true(fault.error.message.includes(side) && fault.error.message.includes(code), fault.error.message);
  }
});

function failingPlugin(hook: 'createSocket' | 'preamble', err: unknown): EgressPlugin {
  const fail = (): never => {
    throw err;
  };
  return hook === 'createSocket' ? { name: 'failing', createSocket: fail } : { name: 'failing', preamble: fail };
}

for (const hook of ['createSocket', 'preamble'] as const)
  test(`an egress plugin whose ${hook} throws ends the flow with ERR_REDIRECT_EGRESS_FAILED`, async (t) => {
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      egress: { plugins: [failingPlugin(hook, new Error('plugin bug'))] },
    });
    const closed = nextClose(server);
    const seen = drain(dialRaw(port));
    const summary = await closed;
    t.is(summary.reason, 'upstream-error');
    t.is(summary.error?.code, 'ERR_REDIRECT_EGRESS_FAILED');
    t.regex(summary.error?.message ?? '', /plugin bug/);
    t.is((await seen).error?.code, 'ECONNRESET');
  });

test('an egress plugin that recognises a loop keeps its code: loop-detected', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    egress: {
      plugins: [failingPlugin('createSocket', new RedirectError('ERR_REDIRECT_LOOP_DETECTED', 'our own mark'))],
    },
  });
  const closed = nextClose(server);
  drain(dialRaw(port));
  const summary = await closed;
  t.is(summary.reason, 'loop-detected');
  t.is(summary.error?.code, 'ERR_REDIRECT_LOOP_DETECTED');
});

test('deferConnect() after the chain was built ends the flow with ERR_REDIRECT_DEFER_CONNECT', async (t) => {
  const up = await echoUpstream(t);
  const late: Middleware = (ctx) => ({
    upstream: (source) => {
      ctx.deferConnect();
      return source;
    },
  });
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    middleware: [late],
  });
  const closed = nextClose(server);
  const client = dialRaw(port);
  const seen = drain(client);
  client.write('x');
  const summary = await closed;
  t.is(summary.reason, 'middleware-error');
  t.is(summary.error?.code, 'ERR_REDIRECT_DEFER_CONNECT');
  await seen;
});
