import { invalidOption } from '../../lib/common/errors';
import type { ConnectionContext, Middleware } from '../../lib/common/types';
import { checkSeed, createRandom, type Random, randomSeed } from './random';
import { TOXIC_TYPES } from './registry';
import { type AppliedStage, ToxicRunner } from './runner';
import { compileScope, type ScopeCheck, type ToxicScope } from './scope';
import type { ToxicStage } from './stage';
import { applyStage, checkToxicity, type ToxicType } from './toxic';

export type ToxicStream = 'upstream' | 'downstream';

/** A toxic as Toxiproxy's API writes it, plus the optional `scope` (an extension). */
export interface ToxicSpec {
  /** Default `<type>_<stream>`. */
  name?: string;
  type: string;
  /** Default 'downstream'. */
  stream?: ToxicStream;
  /** Default 1. */
  toxicity?: number;
  attributes?: Record<string, unknown>;
  scope?: ToxicScope;
}

/** A toxic in a set, as the control API shows it. */
export interface ToxicInfo {
  readonly name: string;
  readonly type: string;
  readonly stream: ToxicStream;
  readonly toxicity: number;
  readonly attributes: Readonly<Record<string, number>>;
  readonly scope?: ToxicScope;
}

interface Entry {
  info: ToxicInfo;
  readonly kind: ToxicType<object>;
  scope: ScopeCheck;
}

interface Live {
  readonly ctx: ConnectionContext;
  readonly runners: Record<ToxicStream, ToxicRunner>;
  /** This connection's copy of each toxic, by name. */
  readonly applied: Map<string, { applied: AppliedStage; random: Random }>;
}

/**
 * Toxics that can change while connections are open, as Toxiproxy's proxies do: `middleware`
 * puts one runner per direction on every connection, and `add`, `update` and `remove` reach the
 * connections already open (a removed toxic lets what it held go on at once). Each connection
 * draws its own toxicity for each toxic, from `seed`, its id and the toxic's name.
 */
export class ToxicSet {
  readonly seed: number | string;
  private readonly entries = new Map<string, Entry>();
  private readonly live = new Set<Live>();

  constructor(options: { seed?: number | string } = {}) {
    this.seed = checkSeed('toxics.seed', options.seed) ?? randomSeed();
  }

  /** The toxics, upstream ones first, each stream in the order added (as Toxiproxy lists them). */
  list(): ToxicInfo[] {
    const all = [...this.entries.values()].map((e) => e.info);
    return [...all.filter((t) => t.stream === 'upstream'), ...all.filter((t) => t.stream === 'downstream')];
  }

  get(name: string): ToxicInfo | undefined {
    return this.entries.get(name)?.info;
  }

  /** True when some toxic is scoped by SNI or Host (then `sniff()` must run first). */
  get sniffs(): boolean {
    return [...this.entries.values()].some((e) => e.info.scope?.sni !== undefined || e.info.scope?.host !== undefined);
  }

  /** Live connections (for tests and stats). */
  get connections(): number {
    return this.live.size;
  }

  /** Adds a toxic; it applies to open connections too. Bad specs throw ERR_REDIRECT_INVALID_OPTION. */
  add(spec: ToxicSpec): ToxicInfo {
    if (spec === null || typeof spec !== 'object') throw invalidOption('toxic', 'must be an object');
    const kind = TOXIC_TYPES.get(String(spec.type));
    if (kind === undefined) throw invalidOption('toxic.type', `unknown toxic type ${String(spec.type)}`);
    const stream = spec.stream ?? 'downstream';
    if (stream !== 'upstream' && stream !== 'downstream') {
      throw invalidOption('toxic.stream', `must be 'upstream' or 'downstream', got ${String(stream)}`);
    }
    const name = spec.name === undefined || spec.name === '' ? `${kind.type}_${stream}` : spec.name;
    if (typeof name !== 'string') throw invalidOption('toxic.name', 'must be a string');
    if (this.entries.has(name)) throw invalidOption('toxic.name', `a toxic named ${name} exists`);
    const toxicity = checkToxicity('toxic.toxicity', spec.toxicity ?? 1);
    const attributes = kind.attributes(spec.attributes) as Record<string, number>;
    const scope = compileScope(spec.scope, 'toxic.scope');
    const info: ToxicInfo = { name, type: kind.type, stream, toxicity, attributes, ...scopeField(spec.scope) };
    const entry: Entry = { info, kind, scope };
    this.entries.set(name, entry);
    for (const live of this.live) this.attach(live, entry);
    return info;
  }

  /** Changes attributes (fields not given keep their value) and/or toxicity; open connections draw again. */
  update(
    name: string,
    patch: { attributes?: Record<string, unknown>; toxicity?: number; scope?: ToxicScope },
  ): ToxicInfo {
    const entry = this.entries.get(name);
    if (entry === undefined) throw invalidOption('toxic.name', `no toxic named ${name}`);
    if (patch === null || typeof patch !== 'object') throw invalidOption('toxic', 'must be an object');
    const attributes = entry.kind.attributes(patch.attributes ?? {}, entry.info.attributes) as Record<string, number>;
    const toxicity =
      patch.toxicity === undefined ? entry.info.toxicity : checkToxicity('toxic.toxicity', patch.toxicity);
    const scope = patch.scope === undefined ? entry.scope : compileScope(patch.scope, 'toxic.scope');
    const scopeSpec = patch.scope === undefined ? entry.info.scope : patch.scope;
    entry.info = { ...entry.info, attributes, toxicity, ...scopeField(scopeSpec) };
    entry.scope = scope;
    for (const live of this.live) {
      const mine = live.applied.get(name);
      if (mine === undefined) continue;
      // Toxiproxy restarts the toxic on every link: a new draw, the same stage state (limit_data's count).
      const drawn = mine.random.next() < toxicity;
      const wasActive = mine.applied.active;
      const next = applyStage(mine.applied.stage, drawn, scope, live.ctx);
      mine.applied.active = next.active;
      if (next.active && !wasActive) mine.applied.stage.start?.(live.runners[entry.info.stream].fail);
      mine.applied.stage.update?.();
    }
    return entry.info;
  }

  /** Removes a toxic; what it held on open connections goes on at once. False if there was none. */
  remove(name: string): boolean {
    const entry = this.entries.get(name);
    if (entry === undefined) return false;
    this.entries.delete(name);
    for (const live of this.live) {
      const mine = live.applied.get(name);
      if (mine === undefined) continue;
      live.applied.delete(name);
      live.runners[entry.info.stream].remove(mine.applied.stage);
    }
    return true;
  }

  /** Removes every toxic (Toxiproxy's reset). */
  clear(): void {
    for (const name of [...this.entries.keys()]) this.remove(name);
  }

  readonly middleware: Middleware = (ctx) => {
    const live: Live = {
      ctx,
      runners: { upstream: new ToxicRunner(), downstream: new ToxicRunner() },
      applied: new Map(),
    };
    for (const entry of this.entries.values()) this.attach(live, entry);
    this.live.add(live);
    ctx.signal.addEventListener('abort', () => this.live.delete(live), { once: true });
    return { upstream: live.runners.upstream.operator, downstream: live.runners.downstream.operator };
  };

  private attach(live: Live, entry: Entry): void {
    const { name, stream, toxicity } = entry.info;
    const random = createRandom(this.seed, name, live.ctx.id, stream);
    const stage: ToxicStage = entry.kind.stage(() => entry.info.attributes, random);
    const applied = applyStage(stage, random.next() < toxicity, entry.scope, live.ctx);
    live.applied.set(name, { applied, random });
    live.runners[stream].add(applied);
  }
}

function scopeField(scope: ToxicScope | undefined): { scope?: ToxicScope } {
  return scope === undefined ? {} : { scope };
}
