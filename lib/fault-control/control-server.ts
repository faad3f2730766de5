import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ToxicSet } from '../../middleware/index';
import { createAddressMatcher } from '../common/ip-address';
import { RedirectError } from '../common/errors';
import { ApiError, badRequestBody } from './api-error';
import { ControlledProxy, type ProxyServerOptions } from './proxy';
import { type Answer, type ProxyRegistry, ROUTES } from './routes';

/** Toxiproxy's API port. */
export const DEFAULT_API_PORT = 8474;
/** Request bodies larger than this are refused (Toxiproxy's bodies are a few hundred bytes). */
const MAX_BODY_BYTES = 1024 * 1024;

export interface FaultControlOptions {
  /** Default '127.0.0.1'. Anything but loopback needs `allowRemote`. */
  host?: string;
  /** Default 8474 (Toxiproxy's); 0 picks a free port. */
  port?: number;
  /** Let the API listen beyond loopback: whoever reaches it can reset or stall your connections. */
  allowRemote?: boolean;
  /** Seed for the toxics of proxies made through the API (docs/faults.md, "Reproducible runs"). */
  seed?: number | string;
  /** Options for the redirect servers of proxies made through the API (limits, zeroCopy, …). */
  serverOptions?: ProxyServerOptions;
}

/**
 * A control server that speaks Toxiproxy's v2 HTTP API, so Toxiproxy's clients drive rxredirect
 * unchanged: proxies made through it are redirect servers of their own, and `attach()` puts the
 * toxics of a server the program runs (transparent, with `resolve: 'netfilter'`) under the same API.
 */
export class FaultControl implements ProxyRegistry {
  readonly proxies = new Map<string, ControlledProxy>();
  private readonly http: Server;
  private readonly options: FaultControlOptions;

  constructor(options: FaultControlOptions = {}) {
    const host = options.host ?? '127.0.0.1';
    const isLoopback = createAddressMatcher(['127.0.0.0/8', '::1/128'], 'faults.host');
    if (!options.allowRemote && !isLoopback(host === 'localhost' ? '127.0.0.1' : host)) {
      throw new RedirectError(
        'ERR_REDIRECT_INVALID_OPTION',
        `options.faults.host: ${host} is not loopback; set allowRemote: true to listen there`,
      );
    }
    this.options = { ...options, host };
    this.http = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) =>
        send(res, { status: 500, body: { error: String(err), status: 500 } }),
      );
    });
  }

  /** Starts the API; resolves with its address. */
  async listen(): Promise<{ host: string; port: number }> {
    this.http.listen(this.options.port ?? DEFAULT_API_PORT, this.options.host);
    await once(this.http, 'listening');
    const a = this.http.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stops the API and every proxy it made; attached servers stay the program's. */
  async close(): Promise<void> {
    this.http.close();
    this.http.closeAllConnections();
    await Promise.all([...this.proxies.values()].filter((p) => p.managed).map((p) => p.stop()));
  }

  /**
   * Puts the toxics of a server the program runs under the API as proxy `name`: clients add and
   * remove toxics on it like on any proxy; `listen` and `upstream` are only shown.
   */
  attach(name: string, toxics: ToxicSet, shown: { listen?: string; upstream?: string } = {}): void {
    if (this.proxies.has(name)) throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', `a proxy named ${name} exists`);
    if (!(toxics instanceof ToxicSet)) throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', 'attach(): a ToxicSet');
    this.proxies.set(
      name,
      new ControlledProxy(name, shown.listen ?? '', shown.upstream ?? 'redirect record', toxics, false),
    );
  }

  /** @internal */
  create(name: string, listen: string, upstream: string): ControlledProxy {
    const set = new ToxicSet(this.options.seed === undefined ? {} : { seed: this.options.seed });
    const proxy = new ControlledProxy(name, listen, upstream, set, true, this.options.serverOptions);
    this.proxies.set(name, proxy);
    return proxy;
  }

  /** @internal */
  async remove(proxy: ControlledProxy): Promise<void> {
    if (this.proxies.get(proxy.name) === proxy) this.proxies.delete(proxy.name);
    await proxy.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // As Toxiproxy: a browser page must not drive the API (a cross-site request could reset connections).
    if ((req.headers['user-agent'] ?? '').startsWith('Mozilla/')) {
      send(res, { status: 403, body: { error: 'User agent not allowed', status: 403 } });
      return;
    }
    const path = decodePath(req.url ?? '/');
    if (req.method === 'GET' && path === '/version') {
      send(res, { status: 200, body: { version: VERSION } });
      return;
    }
    let allowed = false;
    for (const [method, pattern, handler] of ROUTES) {
      const m = path === undefined ? null : pattern.exec(path);
      if (!m) continue;
      allowed = true;
      if (method !== req.method) continue;
      let answer: Answer;
      try {
        const text = await readBody(req);
        answer = await handler(this, m.slice(1), () => parse(text));
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        answer = { status: err.status, body: err };
      }
      send(res, answer);
      return;
    }
    const status = allowed ? 405 : 404;
    send(res, { status, body: { error: allowed ? 'method not allowed' : 'not found', status } });
  }
}

/** The library call: `await createFaultControl({ port: 0 }).listen()`. */
export function createFaultControl(options?: FaultControlOptions): FaultControl {
  return new FaultControl(options);
}

const VERSION = 'rxredirect (Toxiproxy API v2)';

function decodePath(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url, 'http://api').pathname).replace(/\/+$/, '') || '/';
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw badRequestBody(`over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parse(text: string): unknown {
  if (text.trim() === '') throw badRequestBody('EOF');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequestBody((err as Error).message);
  }
}

function send(res: ServerResponse, answer: Answer): void {
  if (res.headersSent) return;
  if (answer.status === 204 || answer.body === undefined) {
    res.writeHead(answer.status).end();
    return;
  }
  const body = `${JSON.stringify(answer.body)}\n`;
  res.writeHead(answer.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
