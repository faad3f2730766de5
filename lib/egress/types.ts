import type { Socket } from 'node:net';
import type { RedirectRecord, ResolvedTarget } from '../common/types';

/**
 * Egress plugins pass the record on to the next hop. Each hook is optional;
 * they run in array order.
 */
export interface EgressPlugin {
  readonly name: string;
  /** Checked once at listen(); throw a coded error if the plugin cannot work here. */
  check?(): void | Promise<void>;
  /**
   * Makes the outbound socket (e.g. with a mark set before connect). Only one
   * plugin may provide it. The socket must not be connected yet.
   */
  createSocket?(target: ResolvedTarget, record: RedirectRecord): Socket;
  /** Bytes written to the upstream before any payload (e.g. a PROXY header). */
  preamble?(record: RedirectRecord, target: ResolvedTarget): Buffer | undefined;
}
