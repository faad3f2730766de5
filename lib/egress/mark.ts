import { closeSync } from 'node:fs';
import { isIP, Socket, type SocketConstructorOpts } from 'node:net';
import { invalidOption, RedirectError } from '../common/errors';
import { nativeError, requireLinux } from '../platform/addon';
import { openTcpHandle } from '../platform/node-internals';
import type { EgressPlugin } from './types';
import type { RedirectRecord, ResolvedTarget } from '../common/types';
import {
  type CooperatingMarks,
  MARK_PERMISSION_REMEDY,
  checkMark,
  checkCooperating,
  cooperatingMask,
} from '../common/marks';

export interface MarkEgressOptions {
  /** This proxy's mark (1 – 0xffffffff); its bits are set on every outbound socket. */
  mark: number;
  /**
   * Every proxy that may handle a flow before or after this one. The bits of
   * these (and only these) that the arriving flow carried are kept on the
   * outbound socket, so proxies upstream of us still recognise the flow.
   */
  cooperating?: CooperatingMarks;
}

/**
 * Egress plugin that creates every outbound socket with SO_MARK set before
 * connect: mark = (the flow's cooperating bits) | options.mark.
 */
export function markEgress(options: MarkEgressOptions): EgressPlugin {
  if (options === null || typeof options !== 'object') throw invalidOption('egress', 'markEgress needs { mark }');
  const mark = checkMark(options.mark, 'egress.mark');
  const cooperating =
    options.cooperating === undefined ? undefined : checkCooperating(options.cooperating, 'egress.cooperating');
  const inheritable = cooperatingMask(cooperating);

  return {
    name: 'mark',
    check() {
      const addon = requireLinux('Marked egress (egress.mark)');
      // A throw-away socket proves SO_MARK is allowed here before any flow depends on it.
      let fd: number;
      try {
        fd = addon.createMarkedSocket(4, mark);
      } catch (err) {
        throw nativeError(err, `cannot set SO_MARK 0x${mark.toString(16)}`, MARK_PERMISSION_REMEDY);
      }
      closeSync(fd);
    },
    createSocket(target: ResolvedTarget, record: RedirectRecord): Socket {
      const version = isIP(target.host);
      if (version === 0) {
        throw new RedirectError('ERR_REDIRECT_INVALID_OPTION', `egress target "${target.host}" must be an IP literal`);
      }
      const addon = requireLinux('Marked egress (egress.mark)');
      const socketMark = (((record.mark ?? 0) & inheritable) | mark) >>> 0;
      let fd: number;
      try {
        fd = addon.createMarkedSocket(version === 6 ? 6 : 4, socketMark);
      } catch (err) {
        throw nativeError(
          err,
          `cannot create an outbound socket with mark 0x${socketMark.toString(16)}`,
          MARK_PERMISSION_REMEDY,
        );
      }
      return wrapUnconnected(fd);
    },
  };
}

/**
 * Wraps an unconnected fd for the core to connect. `manualStart` (a Node
 * internal option) keeps the constructor from starting to read: reading an
 * unconnected socket fails with ENOTCONN on the next loop turn, and a later
 * connect() would then silently open a new, unmarked socket.
 */
function wrapUnconnected(fd: number): Socket {
  // As the acceptor does: a TCP handle of Node's own class spares the fd's type guess (4 syscalls).
  const handle = openTcpHandle(fd) as { close?(): void } | undefined;
  const options: SocketConstructorOpts & { manualStart: boolean; handle?: object } = {
    ...(handle ? { handle } : { fd }),
    allowHalfOpen: true,
    readable: true,
    writable: true,
    manualStart: true,
  };
  try {
    return new Socket(options);
  } catch (err) {
    // The handle owns the fd once opened: closing it closes the fd.
    if (handle) handle.close?.();
    else closeSync(fd);
    throw nativeError(err, 'cannot wrap the outbound socket');
  }
}
