import type { CloseSummary, Endpoint, RedirectRecord, ResolvedTarget } from '../common/types';
import type { ServerConfig } from '../config/options';
import type { EgressPlugin } from '../egress/types';
import type { Transport } from '../net/transport';

/** An upstream made by the platform (Windows WFP): records set before connect. */
export type NativeUpstream = Transport & { connected(): Promise<void> };

/** What a connection needs from its server (`C` is the Connection, named here without importing it). */
export interface ConnectionHost<C = unknown> {
  readonly config: ServerConfig;
  readonly listenAddress: Endpoint | undefined;
  /**
   * `local>remote` of our own live upstream sockets, for loop detection;
   * undefined when the resolver never yields kernel records (nothing to match).
   */
  readonly egressEndpoints: Set<string> | undefined;
  /** The egress plugin that makes outbound sockets, if any. */
  readonly socketMaker: (EgressPlugin & Required<Pick<EgressPlugin, 'createSocket'>>) | undefined;
  opened(conn: C): void;
  closed(conn: C, summary: CloseSummary): void;
  /** `transport: 'native'` (Windows WFP): makes the upstream, records set before connect. */
  connectNative?(target: ResolvedTarget, record: RedirectRecord): NativeUpstream;
}
