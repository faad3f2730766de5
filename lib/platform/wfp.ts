import { RedirectError } from '../common/errors';
import { loadAddon, type NativeEndpoint } from './addon';
import { createRecord } from '../common/record';
import type { Endpoint, RedirectRecord } from '../common/types';

/**
 * Windows WFP redirect records (docs/windows.md). The addon queries an
 * accepted socket with SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS / _CONTEXT
 * and SO_ORIGINAL_DST and hands back one outcome; this module turns it into a
 * RedirectRecord or a coded error. The negotiation itself is portable C++
 * (native/wfp-logic.cc) and is exported on every OS for tests.
 */

export type WfpStatus = 'ok' | 'not-redirected' | 'error';

/** What the addon returns for one accepted socket (native/wfp-napi.cc, WfpRecordObject). */
export interface WfpNativeOutcome {
  readonly status: WfpStatus;
  /** Present when status is 'ok': SO_ORIGINAL_DST. */
  readonly destination?: NativeEndpoint;
  /** Present when status is 'ok': the opaque redirect records, never empty. */
  readonly records?: Uint8Array;
  /** The callout's redirect context, when it set one. */
  readonly context?: Uint8Array;
  /** Windows error of the failing call (WSAGetLastError), 0 when none. */
  readonly error: number;
  /** 'WSAEINVAL', 'WSAEOPNOTSUPP', … or 'WIN<n>'. */
  readonly errorName: string;
  /** 'WSAIoctl' or 'getsockopt' when a call failed, '' otherwise. */
  readonly syscall: string;
  /** Short reason: 'records: provider-lacks-ioctl', 'original-destination', … */
  readonly reason: string;
}

/** One scripted WSAIoctl reply for the test-only negotiation export. */
export interface WfpScriptedReply {
  readonly error: number;
  readonly bytesReturned: number;
  /** Bytes the fake provider writes into the output buffer (clipped to its size). */
  readonly fill?: Uint8Array;
}

/** Result of one buffer-size negotiation (native/wfp-logic.h, Outcome). */
export interface WfpNegotiation {
  readonly status: WfpStatus;
  readonly bytes: Uint8Array;
  readonly error: number;
  readonly errorName: string;
  readonly reason: string;
  /** Output buffer size offered on each call, in order. */
  readonly asks: readonly number[];
}

/** The portable WFP logic the addon exports on every OS, for tests (not public API). */
export interface WfpLogicExports {
  wfpNegotiate(replies: readonly WfpScriptedReply[], maxBytes?: number): WfpNegotiation;
  wfpParseSockaddr(bytes: Uint8Array): NativeEndpoint | undefined;
  wfpBuildRecord(
    records: readonly WfpScriptedReply[],
    context: readonly WfpScriptedReply[],
    originalDstError: number,
    sockaddr: Uint8Array,
  ): WfpNativeOutcome;
}

/** Windows error values the mapping needs (winerror.h / winsock2.h). */
export const WFP_ERRORS = Object.freeze({
  ERROR_INSUFFICIENT_BUFFER: 122,
  ERROR_MORE_DATA: 234,
  WSAEACCES: 10013,
  WSAEFAULT: 10014,
  WSAEINVAL: 10022,
  WSAENOTSOCK: 10038,
  WSAEOPNOTSUPP: 10045,
  WSAENOBUFS: 10055,
  WSAENOTCONN: 10057,
});

/** The addon's portable WFP exports, or undefined when the addon (or a build with them) is missing. */
export function wfpLogic(): WfpLogicExports | undefined {
  const addon = loadAddon() as (Partial<WfpLogicExports> & object) | undefined;
  return typeof addon?.wfpNegotiate === 'function' ? (addon as WfpLogicExports) : undefined;
}

/**
 * Turns the addon's outcome into a record. Throws ERR_REDIRECT_NOT_REDIRECTED
 * (no records: not redirected, or the provider lacks the ioctl) or
 * ERR_REDIRECT_NATIVE (a fault on this socket only); both end the one
 * connection, never the server.
 */
export function wfpRecordFromNative(outcome: WfpNativeOutcome, source?: Endpoint): RedirectRecord {
  if (outcome === null || typeof outcome !== 'object') {
    throw new RedirectError('ERR_REDIRECT_NATIVE', 'WFP query: the addon returned no outcome');
  }
  if (outcome.status !== 'ok') throw wfpError(outcome);
  const { destination, records, context } = outcome;
  if (destination === undefined) {
    throw new RedirectError('ERR_REDIRECT_NATIVE', 'WFP query: no original destination in a redirected outcome');
  }
  if (!(records instanceof Uint8Array) || records.length === 0) {
    throw new RedirectError('ERR_REDIRECT_NATIVE', 'WFP query: a redirected outcome without redirect records');
  }
  return createRecord(
    {
      mechanism: 'wfp',
      destination: { address: destination.address, port: destination.port },
      records,
      ...(context !== undefined && context.length > 0 ? { context } : {}),
    },
    source,
  );
}

/** The coded error for an outcome that is not 'ok'. */
export function wfpError(outcome: WfpNativeOutcome): RedirectError {
  const syscallCode = outcome.error !== 0 ? outcome.errorName : undefined;
  const detail = `${outcome.reason}${syscallCode ? ` (${outcome.syscall || 'WSAIoctl'} ${syscallCode})` : ''}`;
  if (outcome.status === 'not-redirected') {
    return new RedirectError(
      'ERR_REDIRECT_NOT_REDIRECTED',
      `the connection has no WFP redirect records: ${detail}`,
      syscallCode === undefined ? {} : { syscallCode },
    );
  }
  if (outcome.error === WFP_ERRORS.WSAEACCES) {
    return new RedirectError(
      'ERR_REDIRECT_PERMISSION',
      `WFP query failed: ${detail}. Run the proxy with the rights the callout driver grants to its redirect target.`,
      { syscallCode: outcome.errorName },
    );
  }
  return new RedirectError(
    'ERR_REDIRECT_NATIVE',
    `WFP query failed: ${detail}`,
    syscallCode === undefined ? {} : { syscallCode },
  );
}
