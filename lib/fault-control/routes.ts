import { RedirectError } from '../common/errors';
import { type ToxicInfo, type ToxicSpec, toxics } from '../../middleware/index';
import {
  ApiError,
  badRequestBody,
  INVALID_STREAM,
  INVALID_TOXIC_TYPE,
  missingField,
  PROXY_EXISTS,
  PROXY_NOT_FOUND,
  TOXIC_EXISTS,
  TOXIC_NOT_FOUND,
} from './api-error';
import type { ControlledProxy, ProxyJson } from './proxy';

/** What a route answers: a status and a JSON body (none for 204). */
export interface Answer {
  status: number;
  body?: unknown;
}

/** What the routes need from the control server. */
export interface ProxyRegistry {
  readonly proxies: Map<string, ControlledProxy>;
  create(name: string, listen: string, upstream: string): ControlledProxy;
  remove(proxy: ControlledProxy): Promise<void>;
}

type Handler = (registry: ProxyRegistry, params: string[], body: () => unknown) => Promise<Answer> | Answer;

/** Toxiproxy's v2 API: [method, path pattern, handler]. POST and PATCH both update. */
export const ROUTES: readonly [string, RegExp, Handler][] = [
  ['POST', /^\/reset$/, reset],
  ['GET', /^\/proxies$/, (r) => ({ status: 200, body: Object.fromEntries([...r.proxies].map(([n, p]) => [n, p])) })],
  ['POST', /^\/proxies$/, (r, _, body) => createProxy(r, body())],
  ['POST', /^\/populate$/, (r, _, body) => populate(r, body())],
  ['GET', /^\/proxies\/([^/]+)$/, (r, [name]) => ({ status: 200, body: proxyOf(r, name) })],
  ['POST', /^\/proxies\/([^/]+)$/, (r, [name], body) => updateProxy(proxyOf(r, name), body())],
  ['PATCH', /^\/proxies\/([^/]+)$/, (r, [name], body) => updateProxy(proxyOf(r, name), body())],
  ['DELETE', /^\/proxies\/([^/]+)$/, deleteProxy],
  ['GET', /^\/proxies\/([^/]+)\/toxics$/, (r, [name]) => ({ status: 200, body: proxyOf(r, name).toxics.list() })],
  ['POST', /^\/proxies\/([^/]+)\/toxics$/, (r, [name], body) => addToxic(proxyOf(r, name), body())],
  ['GET', /^\/proxies\/([^/]+)\/toxics\/([^/]+)$/, (r, [p, t]) => ({ status: 200, body: toxicOf(r, p, t) })],
  ['POST', /^\/proxies\/([^/]+)\/toxics\/([^/]+)$/, (r, [p, t], body) => updateToxic(r, p, t, body())],
  ['PATCH', /^\/proxies\/([^/]+)\/toxics\/([^/]+)$/, (r, [p, t], body) => updateToxic(r, p, t, body())],
  ['DELETE', /^\/proxies\/([^/]+)\/toxics\/([^/]+)$/, deleteToxic],
];

function proxyOf(r: ProxyRegistry, name: string | undefined): ControlledProxy {
  const proxy = r.proxies.get(name ?? '');
  if (proxy === undefined) throw PROXY_NOT_FOUND();
  return proxy;
}

function toxicOf(r: ProxyRegistry, proxy: string | undefined, toxic: string | undefined): ToxicInfo {
  const found = proxyOf(r, proxy).toxics.get(toxic ?? '');
  if (found === undefined) throw TOXIC_NOT_FOUND();
  return found;
}

async function reset(r: ProxyRegistry): Promise<Answer> {
  for (const proxy of r.proxies.values()) {
    proxy.toxics.clear();
    await startOrFail(proxy);
  }
  return { status: 204 };
}

interface ProxyInput {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
}

function proxyInput(input: unknown, base?: ControlledProxy): ProxyInput {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badRequestBody('expected an object');
  const o = input as Record<string, unknown>;
  for (const key of ['name', 'listen', 'upstream'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'string') throw badRequestBody(`${key} must be a string`);
  }
  if (o.enabled !== undefined && typeof o.enabled !== 'boolean') throw badRequestBody('enabled must be a boolean');
  const name = (o.name as string | undefined) ?? base?.name ?? '';
  const upstream = (o.upstream as string | undefined) ?? base?.upstream ?? '';
  if (name === '') throw missingField('name');
  if (upstream === '') throw missingField('upstream');
  return {
    name,
    upstream,
    listen: (o.listen as string | undefined) || base?.listen || '127.0.0.1:0',
    enabled: (o.enabled as boolean | undefined) ?? base?.enabled ?? true,
  };
}

async function createProxy(r: ProxyRegistry, input: unknown): Promise<Answer> {
  const p = proxyInput(input);
  if (r.proxies.has(p.name)) throw PROXY_EXISTS();
  const proxy = made(() => r.create(p.name, p.listen, p.upstream));
  if (p.enabled) {
    try {
      await startOrFail(proxy);
    } catch (err) {
      await r.remove(proxy);
      throw err;
    }
  }
  return { status: 201, body: proxy };
}

/** Creates or replaces each proxy (one that did not change is left alone, with its connections). */
async function populate(r: ProxyRegistry, input: unknown): Promise<Answer> {
  if (!Array.isArray(input)) throw badRequestBody('expected an array of proxies');
  const wanted = input.map((p) => proxyInput(p));
  const done: ProxyJson[] = [];
  for (const p of wanted) {
    const old = r.proxies.get(p.name);
    if (old && old.listen === p.listen && old.upstream === p.upstream) {
      await startOrFail(old);
      done.push(old.toJSON());
      continue;
    }
    if (old) await r.remove(old);
    const proxy = made(() => r.create(p.name, p.listen, p.upstream));
    try {
      await startOrFail(proxy);
    } catch (err) {
      await r.remove(proxy);
      const e = err as ApiError;
      return { status: e.status, body: { ...e.toJSON(), proxies: done } };
    }
    done.push(proxy.toJSON());
  }
  return { status: 201, body: { proxies: done } };
}

async function updateProxy(proxy: ControlledProxy, input: unknown): Promise<Answer> {
  const p = proxyInput(input, proxy);
  if (!proxy.managed) {
    if (p.listen !== proxy.listen || p.upstream !== proxy.upstream || !p.enabled) {
      throw badRequestBody(`proxy ${proxy.name} belongs to the program: only its toxics can change`);
    }
    return { status: 200, body: proxy };
  }
  const moved = p.listen !== proxy.listen || p.upstream !== proxy.upstream;
  if (moved || !p.enabled) await proxy.stop();
  made(() => {
    proxy.listen = p.listen;
    proxy.upstream = p.upstream;
  });
  if (p.enabled) await startOrFail(proxy);
  return { status: 200, body: proxy };
}

async function deleteProxy(r: ProxyRegistry, [name]: string[]): Promise<Answer> {
  const proxy = proxyOf(r, name);
  if (!proxy.managed) throw badRequestBody(`proxy ${proxy.name} belongs to the program and cannot be deleted here`);
  await r.remove(proxy);
  return { status: 204 };
}

function addToxic(proxy: ControlledProxy, input: unknown): Answer {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badRequestBody('expected an object');
  const spec = input as ToxicSpec;
  const stream = spec.stream ?? 'downstream';
  if (stream !== 'upstream' && stream !== 'downstream') throw INVALID_STREAM();
  if (!toxics.TOXIC_TYPES.has(String(spec.type))) throw INVALID_TOXIC_TYPE();
  const name = spec.name || `${spec.type}_${stream}`;
  if (proxy.toxics.get(name) !== undefined) throw TOXIC_EXISTS();
  return { status: 200, body: made(() => proxy.toxics.add({ ...spec, name, stream })) };
}

function updateToxic(r: ProxyRegistry, p: string | undefined, t: string | undefined, input: unknown): Answer {
  const toxic = toxicOf(r, p, t);
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badRequestBody('expected an object');
  return { status: 200, body: made(() => proxyOf(r, p).toxics.update(toxic.name, input as ToxicSpec)) };
}

function deleteToxic(r: ProxyRegistry, [p, t]: string[]): Answer {
  const toxic = toxicOf(r, p, t);
  proxyOf(r, p).toxics.remove(toxic.name);
  return { status: 204 };
}

/** Bad values found by the library become Toxiproxy's "bad request body". */
function made<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof RedirectError && err.code === 'ERR_REDIRECT_INVALID_OPTION') throw badRequestBody(err.message);
    throw err;
  }
}

/** A listen failure (address in use, bad address) is Toxiproxy's 500 with the system's message. */
async function startOrFail(proxy: ControlledProxy): Promise<void> {
  try {
    await proxy.start();
  } catch (err) {
    if (err instanceof RedirectError && err.code === 'ERR_REDIRECT_INVALID_OPTION') throw badRequestBody(err.message);
    throw new ApiError(err instanceof Error ? err.message : String(err), 500);
  }
}
