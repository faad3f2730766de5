import { joinHostPort, splitHostPort } from '../common/host-port';
import type { RedirectServerOptions } from '../config/types';
import { createRedirectServer, type RedirectServer } from '../server/server';
import { sniff, type ToxicSet, type ToxicInfo } from '../../middleware/index';

/** A proxy as Toxiproxy's API shows it. */
export interface ProxyJson {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
  toxics: ToxicInfo[];
}

/** Server options for proxies made through the API, besides `resolve` and `middleware`. */
export type ProxyServerOptions = Omit<RedirectServerOptions, 'resolve' | 'middleware'>;

/**
 * One named proxy: either made through the API (Toxiproxy's listen → upstream, a redirect server
 * of its own that starts and stops with `enabled`), or attached by the program (a server it runs,
 * e.g. with `resolve: 'netfilter'`: only its toxics are controlled here).
 */
export class ControlledProxy {
  readonly name: string;
  readonly toxics: ToxicSet;
  /** False for a proxy attached by the program. */
  readonly managed: boolean;
  listen: string;
  upstream: string;
  private server: RedirectServer | undefined;
  private readonly serverOptions: ProxyServerOptions;

  constructor(
    name: string,
    listen: string,
    upstream: string,
    toxics: ToxicSet,
    managed: boolean,
    serverOptions: ProxyServerOptions = {},
  ) {
    this.name = name;
    this.listen = listen;
    this.upstream = upstream;
    this.toxics = toxics;
    this.managed = managed;
    this.serverOptions = serverOptions;
  }

  get enabled(): boolean {
    return !this.managed || this.server !== undefined;
  }

  toJSON(): ProxyJson {
    return {
      name: this.name,
      listen: this.listen,
      upstream: this.upstream,
      enabled: this.enabled,
      toxics: this.toxics.list(),
    };
  }

  /** Listens (Toxiproxy's "start"); the bound address replaces a port 0 in `listen`. */
  async start(): Promise<void> {
    if (!this.managed || this.server) return;
    const listen = splitHostPort(this.listen, 'listen');
    const upstream = splitHostPort(this.upstream, 'upstream');
    const set = this.toxics;
    // sniff() only while some toxic is scoped by SNI or Host: it holds the first bytes until it knows.
    const sniffer = sniff();
    const server = createRedirectServer({
      ...this.serverOptions,
      resolve: { host: upstream.host, port: upstream.port },
      middleware: [(ctx) => (set.sniffs ? sniffer(ctx) : undefined), set.middleware],
    });
    const bound = await server.listen({ host: listen.host, port: listen.port });
    this.server = server;
    this.listen = joinHostPort(listen.host === '' ? bound.address : listen.host, bound.port);
  }

  /** Stops listening and ends its connections (Toxiproxy's "stop"). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.close({ timeoutMs: 0 });
  }
}
