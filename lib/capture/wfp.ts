import { RedirectError } from '../common/errors';
import { checkTargetAddress } from '../common/target-address';
import { requireNative } from '../platform/addon';
import { createRecord, makeEndpoint } from '../common/record';
import type { NativeTransport, WfpAcceptInfo } from '../net/windows-transport';
import type { WfpEngineAddon } from '../platform/addon';
import { WfpEngine } from '../net/windows-transport';
import type { Endpoint, RedirectRecord, ResolvedTarget, TargetAddress } from '../common/types';
import type { NativeResolverContext, Resolver, ResolveResult } from './types';
import { wfpRecordFromNative } from '../platform/wfp';

/**
 * Windows WFP in the server: `resolve: 'wfp'` (docs/windows.md). The addon's
 * engine owns the sockets, so the server listens with WfpEngine instead of
 * net.Server, the record is the one the engine read at accept, and the
 * outbound SOCKET gets the flow's redirect records before connect.
 */

let engine: WfpEngine | undefined;

/** The process's one WFP engine, or ERR_REDIRECT_ADDON_UNAVAILABLE (other OS, addon missing or stale). */
function wfpEngine(feature: string): WfpEngine {
  if (engine !== undefined) return engine;
  if (process.platform !== 'win32') {
    throw new RedirectError(
      'ERR_REDIRECT_ADDON_UNAVAILABLE',
      `${feature} works on Windows only, with the addon's WFP engine (this is ${process.platform})`,
    );
  }
  const addon = requireNative(feature) as Partial<WfpEngineAddon> & { platform?: string };
  if (addon.platform !== 'win32' || typeof addon.wfpListen !== 'function') {
    throw new RedirectError(
      'ERR_REDIRECT_ADDON_UNAVAILABLE',
      `${feature}: the loaded addon has no WFP engine (not a Windows build?)`,
    );
  }
  engine = new WfpEngine(addon as WfpEngineAddon);
  return engine;
}

/** Tests only: run the native transport on a stand-in engine (any OS). `undefined` restores the default. */
export function useWfpEngineForTests(replacement: WfpEngine | undefined): void {
  engine = replacement;
}

export interface WfpResolverOptions {
  /** A connection without redirect records: 'refuse' (default) or send it to `{ host, port }`. */
  readonly notRedirected?: 'refuse' | TargetAddress;
}

/** `resolve: 'wfp'`: the record from the WFP query the engine ran at accept. */
export function wfpResolver(options: WfpResolverOptions = {}): Resolver {
  const notRedirected =
    options.notRedirected === undefined || options.notRedirected === 'refuse'
      ? 'refuse'
      : checkTargetAddress(options.notRedirected, 'notRedirected');
  return {
    name: 'wfp',
    async resolve() {
      throw new RedirectError(
        'ERR_REDIRECT_INVALID_OPTION',
        "resolve: 'wfp' needs the native listener (transport: 'native'); a net.Socket carries no WFP records",
      );
    },
    async resolveNative(ctx: NativeResolverContext): Promise<ResolveResult> {
      const source = ctx.transport.remoteEndpoint;
      try {
        return { record: wfpRecordFromNative(ctx.accepted as WfpAcceptInfo, source) };
      } catch (err) {
        if (!(err instanceof RedirectError) || err.code !== 'ERR_REDIRECT_NOT_REDIRECTED') throw err;
        if (notRedirected === 'refuse') {
          throw new RedirectError(
            'ERR_REDIRECT_NOT_REDIRECTED',
            `${err.message}; set notRedirected: { host, port } to serve such flows`,
            { cause: err, ...(err.syscallCode ? { syscallCode: err.syscallCode } : {}) },
          );
        }
        const local = ctx.transport.localEndpoint ?? ctx.listenAddress;
        if (local === undefined) throw err;
        return { record: createRecord({ mechanism: 'wfp', destination: local }, source), target: notRedirected };
      }
    },
  };
}

/** Native listener of the server: WfpEngine.listen with the server's listen options. */
export function listenNative(
  options: { host?: string; port?: number; backlog?: number; fd?: number },
  onAccept: (transport: NativeTransport, info: WfpAcceptInfo) => void,
): { address: Endpoint; close(): void } {
  if (options.fd !== undefined) {
    throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', "listen(): fd cannot be used with transport: 'native'");
  }
  const listener = wfpEngine("transport: 'native'").listen(
    {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      ...(options.backlog ? { backlog: options.backlog } : {}),
    },
    onAccept,
  );
  const address = makeEndpoint({ address: options.host ?? '127.0.0.1', port: listener.port }, 'listenAddress');
  return { address, close: () => listener.close() };
}

/** The native upstream: a SOCKET with the flow's redirect records set before connect. */
export function connectNative(
  target: ResolvedTarget,
  record: RedirectRecord,
  localAddress: string | undefined,
): NativeTransport {
  return wfpEngine("transport: 'native'").connect(target, record.records, localAddress);
}
