import { lookup } from 'node:dns/promises';
import { isIP, type Socket } from 'node:net';
import { invalidOption, RedirectError } from '../common/errors';
import { createRecord, EMPTY_CHAIN, makeEndpoint, UNKNOWN_SOURCE } from '../common/record';
import { autoResolver } from './auto';
import { netfilterResolver } from './netfilter';
import { type ProxyProtocolResolverOptions, proxyProtocolResolver } from './proxy-protocol';
import { tproxyResolver } from './tproxy';
import { wfpResolver } from './wfp';
import type { Endpoint, RedirectRecord, RedirectRecordInit, TargetAddress } from '../common/types';
import type { ResolveOption, Resolver, ResolveResult } from './types';

/** Server options the named resolvers take. */
export interface NamedResolverOptions {
  id: string;
  cooperating: Readonly<Record<string, number>> | undefined;
  notRedirected: 'refuse' | TargetAddress | undefined;
  transparent: boolean | 'try' | undefined;
  /** The top-level `proxyProtocol` option, for 'proxy-protocol'. */
  proxyProtocol?: ProxyProtocolResolverOptions | undefined;
}

/** Resolvers known by name; the Linux ones load the addon only when used. */
const named: Record<string, (o: NamedResolverOptions) => Resolver> = {
  netfilter: (o) => netfilterResolver(linuxOptions(o)),
  tproxy: (o) => tproxyResolver({ ...linuxOptions(o), transparent: o.transparent !== false }),
  auto: (o) => autoResolver({ ...linuxOptions(o), transparent: o.transparent ?? 'try' }),
  // Windows: the engine is loaded at listen(), which fails with ERR_REDIRECT_ADDON_UNAVAILABLE elsewhere.
  wfp: (o) => wfpResolver(o.notRedirected !== undefined ? { notRedirected: o.notRedirected } : {}),
  'proxy-protocol': (o) => {
    if (o.proxyProtocol === undefined) {
      throw invalidOption(
        'proxyProtocol.trust',
        "resolve: 'proxy-protocol' needs proxyProtocol: { trust: ['10.0.0.0/8', …] } listing the load balancers allowed to send a header",
      );
    }
    return proxyProtocolResolver(o.proxyProtocol, 'proxyProtocol');
  },
};

function linuxOptions(o: NamedResolverOptions) {
  return {
    ...(o.notRedirected !== undefined ? { notRedirected: o.notRedirected } : {}),
    ...(o.cooperating !== undefined ? { cooperating: o.cooperating, id: o.id } : {}),
  };
}

/** Turns the `resolve` option into a Resolver, or throws a coded error. */
export function createResolver(
  option: ResolveOption | string | undefined,
  options: NamedResolverOptions = {
    id: 'rxredirect',
    cooperating: undefined,
    notRedirected: undefined,
    transparent: undefined,
  },
): Resolver {
  if (option === undefined || option === null) {
    throw invalidOption('resolve', 'is required: { host, port }, a function (socket) => record, or a resolver');
  }
  if (typeof option === 'string') {
    const factory = Object.hasOwn(named, option) ? named[option] : undefined;
    if (!factory) {
      const known = ['{ host, port }', 'a function', 'a resolver object', ...Object.keys(named)].join(', ');
      throw invalidOption('resolve', `"${option}" is not a known mechanism here (known: ${known})`);
    }
    return factory(options);
  }
  if (typeof option === 'function') return functionResolver(option);
  if (typeof option === 'object' && typeof (option as Resolver).resolve === 'function') return option as Resolver;
  if (typeof option === 'object' && 'host' in option) return staticResolver(option.host, option.port);
  throw invalidOption('resolve', 'must be { host, port }, a function (socket) => record, or a resolver object');
}

/** Every flow goes to one fixed destination (mechanism 'static'). */
export function staticResolver(host: string, port: number): Resolver {
  if (typeof host !== 'string' || host === '') throw invalidOption('resolve.host', 'must be a non-empty string');
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidOption('resolve.port', `must be an integer 1–65535, got ${String(port)}`);
  }
  let address = isIP(host) ? host : undefined;
  return {
    name: 'static',
    kernelRecords: false,
    async prepareListener() {
      // A host name is looked up once, at listen(), so every flow sees the same record.
      if (address === undefined) {
        try {
          address = (await lookup(host)).address;
        } catch (err) {
          throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', `options.resolve.host: cannot look up "${host}"`, {
            cause: err,
          });
        }
      }
    },
    resolve({ socket, peer }) {
      // Synchronous once the address is known (always, after listen()): no promise per flow.
      if (address !== undefined) return { record: staticRecord(address, port, peer ?? peerOf(socket)) };
      return lookup(host).then((found) => {
        address = found.address;
        return { record: staticRecord(found.address, port, peer ?? peerOf(socket)) };
      });
    },
    async resolveNative({ transport }) {
      if (address === undefined) address = (await lookup(host)).address;
      return {
        record: createRecord({ mechanism: 'static', destination: { address, port } }, transport.remoteEndpoint),
      };
    },
  };
}

type RecordFunction = (
  socket: Socket,
) => RedirectRecordInit | RedirectRecord | Promise<RedirectRecordInit | RedirectRecord>;

/** A user function finds the record (mechanism 'function' unless it says otherwise). */
export function functionResolver(fn: RecordFunction): Resolver {
  return {
    name: 'function',
    async resolve({ socket, peer }): Promise<ResolveResult> {
      const init = await fn(socket);
      return { record: createRecord(init, peer ?? peerOf(socket)) };
    },
  };
}

export function peerOf(socket: Socket): Endpoint | undefined {
  const address = socket.remoteAddress;
  const port = socket.remotePort;
  if (address === undefined || port === undefined) return undefined;
  // Node's own text of a peer is canonical (lower case, from inet_ntop): IPv4 needs no
  // check; IPv6 only the v4-mapped prefix, which makeEndpoint strips.
  if (socket.remoteFamily === 'IPv4') return Object.freeze({ address, port, family: 'IPv4' as const });
  return makeEndpoint({ address, port }, 'source');
}

/** The destination endpoint of a static resolver, made once per address rather than per flow. */
let lastStatic: Endpoint | undefined;

function staticRecord(address: string, port: number, source: Endpoint | undefined): RedirectRecord {
  let destination = lastStatic;
  if (destination === undefined || destination.port !== port || destination.address !== address) {
    destination = makeEndpoint({ address, port }, 'destination');
    if (destination.address === address) lastStatic = destination;
  }
  // What createRecord makes of { mechanism: 'static', destination }, without normalising it again.
  return Object.freeze({ mechanism: 'static', source: source ?? UNKNOWN_SOURCE, destination, chain: EMPTY_CHAIN });
}
