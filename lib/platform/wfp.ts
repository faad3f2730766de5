import { RedirectError } from '../common/errors';
import { loadAddon, type WfpLogicExports, type WfpNativeOutcome } from './addon';
import { createRecord } from '../common/record';
import type { Endpoint, RedirectRecord } from '../common/types';

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
