import { invalidOption, RedirectError } from '../common/errors';
import { checkCooperating, checkMark, withOwnBit } from '../common/marks';
import { markEgress } from '../egress/mark';
import { type ProxyProtocolEgressOptions, proxyProtocolEgress } from '../egress/proxy-protocol';
import { PROXY_ID_PATTERN } from '../common/record';
import { createResolver } from '../capture/resolvers';
import type { EgressPlugin } from '../egress/types';
import type { Limits, Middleware, RedirectRecord, TargetAddress } from '../common/types';
import type { RedirectServerOptions, TargetOption } from './types';
import type { Resolver } from '../capture/types';
import { checkTargetAddress } from '../common/target-address';
import { MAX_TIMER_MS } from '../common/deadlines';
import type { ZeroCopyMode } from '../zero-copy/engine';

export interface ServerConfig {
  readonly id: string;
  readonly resolver: Resolver;
  readonly target: ((record: RedirectRecord) => TargetAddress) | undefined;
  readonly middleware: readonly Middleware[];
  readonly limits: Required<Limits>;
  readonly egress: readonly EgressPlugin[];
  readonly localAddress: string | undefined;
  readonly zeroCopy: ZeroCopyMode;
  /** 'native': the addon's engine owns the sockets (Windows WFP). */
  readonly transport: 'net' | 'native';
}

/** The size of Node's own socket reads. */
const NODE_READ_SIZE = 64 * 1024;
const MAX_READ_BYTES = 64 * 1024 * 1024;

export const DEFAULT_LIMITS: Readonly<Required<Limits>> = Object.freeze({
  // Derived from the open-file limit at listen() (lib/server/connection-budget.ts).
  maxConnections: 'auto',
  connectTimeoutMs: 10_000,
  // As Envoy's TCP proxy: a flow nobody closes (a peer gone without FIN or RST) is not held forever.
  idleTimeoutMs: 3_600_000,
  highWaterMark: 512 * 1024,
  maxReadBytes: 1024 * 1024,
  resolveTimeoutMs: 5_000,
  closeTimeoutMs: 5_000,
});

const KNOWN_OPTIONS = new Set([
  'resolve',
  'target',
  'middleware',
  'limits',
  'id',
  'egress',
  'cooperating',
  'notRedirected',
  'transparent',
  'proxyProtocol',
  'zeroCopy',
  'transport',
]);
const KNOWN_LIMITS = new Set(Object.keys(DEFAULT_LIMITS));
const KNOWN_EGRESS = new Set(['plugins', 'localAddress', 'mark', 'proxyProtocol']);

/** Checks every option at once and throws a coded error that says what to fix. */
export function normaliseOptions(options: RedirectServerOptions): ServerConfig {
  if (options === null || typeof options !== 'object') {
    throw new RedirectError(
      'ERR_REDIRECT_INVALID_OPTION',
      'createRedirectServer(options) needs an options object with at least `resolve`',
    );
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw invalidOption(key, `unknown option (known: ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  const id = options.id ?? 'rxredirect';
  if (typeof id !== 'string' || !PROXY_ID_PATTERN.test(id)) {
    throw invalidOption('id', 'must be 1–64 characters of A–Z a–z 0–9 . _ : -');
  }
  const localAddress = normaliseEgress(options.egress);
  const mark = options.egress?.mark === undefined ? undefined : checkMark(options.egress.mark, 'egress.mark');
  const cooperating =
    options.cooperating === undefined
      ? undefined
      : withOwnBit(checkCooperating(options.cooperating, 'cooperating'), id, mark);
  // The named resolvers check these again under their own names; checked here, a
  // message names the option as written: `notRedirected`, not `resolve.notRedirected`.
  const notRedirected = normaliseNotRedirected(options.notRedirected);
  const transparent = normaliseTransparent(options.transparent);
  const egress = [...normaliseEgressPlugins(options.egress?.plugins)];
  if (mark !== undefined) {
    if (egress.some((p) => p.createSocket)) {
      throw invalidOption('egress.mark', 'cannot be combined with an egress plugin that creates the socket');
    }
    egress.unshift(markEgress({ mark, ...(cooperating ? { cooperating } : {}) }));
  }
  if (options.egress?.proxyProtocol !== undefined) egress.push(proxyProtocolEgressOf(options.egress.proxyProtocol, id));
  checkEgressProxyIds(options.egress?.plugins ?? [], id);
  if (options.proxyProtocol !== undefined && options.resolve !== 'proxy-protocol') {
    throw invalidOption(
      'proxyProtocol',
      "is only read with resolve: 'proxy-protocol' (a proxyProtocolResolver({ … }) object takes its own options)",
    );
  }
  const resolver = createResolver(options.resolve, {
    id,
    cooperating,
    notRedirected,
    transparent,
    proxyProtocol: options.proxyProtocol,
  });
  const transport = normaliseTransport(options.transport, options.resolve, resolver, egress);
  return {
    id,
    resolver,
    target: normaliseTarget(options.target),
    middleware: normaliseMiddleware(options.middleware),
    limits: normaliseLimits(options.limits),
    egress: Object.freeze(egress),
    localAddress,
    zeroCopy: normaliseZeroCopy(options.zeroCopy),
    transport,
  };
}

/** 'native' (the default with resolve: 'wfp') needs a resolver that reads native flows and no socket-making plugin. */
function normaliseTransport(
  value: unknown,
  resolve: unknown,
  resolver: Resolver,
  egress: readonly EgressPlugin[],
): 'net' | 'native' {
  if (value !== undefined && value !== 'net' && value !== 'native') {
    throw invalidOption('transport', `must be 'net' or 'native', got ${String(value)}`);
  }
  const transport = value ?? (resolve === 'wfp' ? 'native' : 'net');
  if (transport === 'net') {
    if (resolve === 'wfp') throw invalidOption('transport', "resolve: 'wfp' needs transport: 'native'");
    return 'net';
  }
  if (typeof resolver.resolveNative !== 'function') {
    throw invalidOption(
      'transport',
      `'native' needs a resolver that reads native flows ('wfp', { host, port } or one with resolveNative); "${String(resolver.name)}" has none`,
    );
  }
  if (egress.some((p) => p.createSocket)) {
    throw invalidOption('transport', "'native' cannot be combined with an egress plugin that creates the socket");
  }
  return 'native';
}

function normaliseTarget(target: TargetOption | undefined): ServerConfig['target'] {
  if (target === undefined) return undefined;
  if (typeof target === 'function') {
    return (record) => checkTargetAddress(target(record), 'target(record)');
  }
  const fixed = checkTargetAddress(target, 'target');
  return () => fixed;
}

function normaliseMiddleware(middleware: readonly Middleware[] | undefined): readonly Middleware[] {
  if (middleware === undefined) return [];
  if (!Array.isArray(middleware)) throw invalidOption('middleware', 'must be an array of middleware functions');
  middleware.forEach((m, i) => {
    if (typeof m !== 'function') {
      throw invalidOption(
        `middleware[${i}]`,
        'must be a function (ctx) => ({ upstream?, downstream? }); wrap a plain RxJS operator with upstream(op), downstream(op) or both(op)',
      );
    }
  });
  return Object.freeze([...middleware]);
}

function normaliseLimits(limits: Limits | undefined): Required<Limits> {
  if (limits === undefined) return { ...DEFAULT_LIMITS };
  if (limits === null || typeof limits !== 'object') throw invalidOption('limits', 'must be an object');
  for (const key of Object.keys(limits)) {
    if (!KNOWN_LIMITS.has(key))
      throw invalidOption(`limits.${key}`, `unknown limit (known: ${[...KNOWN_LIMITS].join(', ')})`);
  }
  const out = { ...DEFAULT_LIMITS, ...stripUndefined(limits) };
  const positive = (key: keyof Limits, allowZero: boolean, allowInfinity: boolean): void => {
    const v = out[key];
    const ok =
      typeof v === 'number' &&
      (Number.isInteger(v) || (allowInfinity && v === Number.POSITIVE_INFINITY)) &&
      (allowZero ? v >= 0 : v > 0);
    if (!ok) {
      throw invalidOption(
        `limits.${key}`,
        `must be ${allowZero ? 'a non-negative' : 'a positive'} integer${allowInfinity ? ' or Infinity' : ''}, got ${String(v)}`,
      );
    }
  };
  if (out.maxConnections !== 'auto') positive('maxConnections', false, true);
  positive('connectTimeoutMs', false, false);
  positive('idleTimeoutMs', true, false);
  positive('highWaterMark', false, false);
  positive('resolveTimeoutMs', false, false);
  positive('closeTimeoutMs', true, false);
  // Node runs a longer timer after 1 ms (and warns): a deadline past that would fire at once, and a
  // re-armed idle check would spin. 2^31 - 1 ms is about 24.8 days.
  for (const key of ['connectTimeoutMs', 'idleTimeoutMs', 'resolveTimeoutMs', 'closeTimeoutMs'] as const) {
    if (out[key] > MAX_TIMER_MS) {
      throw invalidOption(
        `limits.${key}`,
        `must be at most ${MAX_TIMER_MS} ms (about 24.8 days; 0 turns a timeout off where allowed), got ${out[key]}`,
      );
    }
  }
  if (out.highWaterMark < 1024) throw invalidOption('limits.highWaterMark', 'must be at least 1024 bytes');
  positive('maxReadBytes', false, false);
  if (out.maxReadBytes < NODE_READ_SIZE || out.maxReadBytes > MAX_READ_BYTES) {
    throw invalidOption(
      'limits.maxReadBytes',
      `must be ${NODE_READ_SIZE}–${MAX_READ_BYTES} bytes (${NODE_READ_SIZE} keeps Node's own reads), got ${String(out.maxReadBytes)}`,
    );
  }
  return out;
}

function normaliseEgressPlugins(plugins: readonly EgressPlugin[] | undefined): readonly EgressPlugin[] {
  if (plugins === undefined) return [];
  if (!Array.isArray(plugins)) throw invalidOption('egress.plugins', 'must be an array');
  let makers = 0;
  plugins.forEach((p, i) => {
    if (p === null || typeof p !== 'object' || typeof p.name !== 'string') {
      throw invalidOption(`egress.plugins[${i}]`, 'must be an object with a name and optional hooks');
    }
    if (p.createSocket) makers++;
  });
  if (makers > 1) throw invalidOption('egress.plugins', 'only one plugin may create the outbound socket');
  return Object.freeze([...plugins]);
}

function normaliseEgress(egress: RedirectServerOptions['egress']): string | undefined {
  if (egress === undefined) return undefined;
  if (egress === null || typeof egress !== 'object') throw invalidOption('egress', 'must be an object');
  for (const key of Object.keys(egress)) {
    if (!KNOWN_EGRESS.has(key))
      throw invalidOption(`egress.${key}`, `unknown option (known: ${[...KNOWN_EGRESS].join(', ')})`);
  }
  if (egress.localAddress !== undefined && typeof egress.localAddress !== 'string') {
    throw invalidOption('egress.localAddress', 'must be an IP address string');
  }
  return egress.localAddress;
}

function normaliseNotRedirected(value: unknown): 'refuse' | TargetAddress | undefined {
  if (value === undefined || value === 'refuse') return value;
  if (typeof value === 'string')
    throw invalidOption('notRedirected', `must be 'refuse' or { host, port }, got "${value}"`);
  return checkTargetAddress(value, 'notRedirected');
}

function normaliseTransparent(value: unknown): boolean | 'try' | undefined {
  if (value === undefined || value === true || value === false || value === 'try') return value;
  throw invalidOption('transparent', `must be true, false or 'try', got ${String(value)}`);
}

function normaliseZeroCopy(value: unknown): ZeroCopyMode {
  if (value === undefined) return 'auto';
  if (value !== 'auto' && value !== 'off' && value !== 'always') {
    throw invalidOption('zeroCopy', `must be 'auto', 'always' or 'off', got ${String(value)}`);
  }
  return value;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The `egress.proxyProtocol` shorthand: the plugin, writing this server's id. */
function proxyProtocolEgressOf(option: unknown, id: string): EgressPlugin {
  if (option === 'v1' || option === 'v2') return proxyProtocolEgress({ version: option, id });
  if (option === null || typeof option !== 'object') {
    throw invalidOption('egress.proxyProtocol', "must be 'v1', 'v2' or { version: 'v1' | 'v2', … }");
  }
  const given = option as ProxyProtocolEgressOptions;
  if (given.id !== undefined && given.id !== id) {
    throw invalidOption('egress.proxyProtocol.id', 'is taken from the server `id` option; leave it out');
  }
  return proxyProtocolEgress({ ...given, id });
}

/** A plugin that writes a proxy id into headers must write ours, or loop detection breaks. */
function checkEgressProxyIds(plugins: readonly EgressPlugin[], id: string): void {
  plugins.forEach((p, i) => {
    const proxyId = (p as { proxyId?: unknown }).proxyId;
    if (proxyId !== undefined && proxyId !== id) {
      throw invalidOption(
        `egress.plugins[${i}]`,
        `writes proxy id "${String(proxyId)}" but this server's id is "${id}"; pass id: "${id}" to the plugin`,
      );
    }
  });
}
