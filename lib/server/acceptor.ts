import { closeSync } from 'node:fs';
import { type Server, Socket, type SocketConstructorOpts } from 'node:net';
import { EMPTY_DIRECTION } from '../pipeline/close-summary';
import { errnoOf, RedirectError } from '../common/errors';
import { fdOf, optionalLinux } from '../platform/addon';
import { learnTcpHandleClass, openTcpHandle } from '../platform/node-internals';
import { endpointKey, makeEndpoint } from '../common/record';
import type { CloseSummary, Endpoint } from '../common/types';

/**
 * The accept loop (Linux, with the addon). Node's own loop hides failures:
 * out of descriptors (EMFILE/ENFILE), libuv accepts the pending connections
 * and closes them at once, with no event and no counter. Here the addon polls
 * the listener on Node's event loop and every failed accept(2) reaches the
 * server with its errno (and the peer of a connection it had to reset).
 * Without the addon, Node keeps accepting (see docs/errors.md).
 */

/** What a failed accept(2) did (the addon's FaultKind). */
export type AcceptFault = 'dropped' | 'failed' | 'paused';

export interface AcceptorHooks {
  /** A new connection: its socket is paused (nothing read); `peer` is what accept(2) returned. */
  accepted(socket: Socket, peer: Endpoint | undefined): void;
  /**
   * accept(2) failed with errno `code`: 'dropped', out of descriptors, the connection at the head
   * of the queue was reset (its peer is known); 'failed', that one connection was lost; 'paused',
   * nothing could be freed and accepting stops for ACCEPT_RETRY_MS (connections wait in the queue).
   */
  failed(code: string, fault: AcceptFault, peer: Endpoint | undefined): void;
}

export interface Acceptor {
  /** Stops accepting and closes the listening socket before returning. */
  close(): void;
}

/** How long accepting pauses after a fault that freed nothing (no descriptor, no memory). */
const ACCEPT_RETRY_MS = 100;

const FAULTS: readonly AcceptFault[] = ['dropped', 'failed', 'paused'];

/**
 * Takes accept(2) over for a bound, listening net.Server: the addon polls a
 * dup of its descriptor and the net.Server is closed (the socket stays
 * listening through the dup). Call it in the tick the server started
 * listening, or connections the loop accepted before arrive through Node.
 * undefined when the addon cannot (not Linux, not loaded): Node accepts.
 */
export function takeOverAccept(server: Server, hooks: AcceptorHooks): Acceptor | undefined {
  const addon = optionalLinux();
  if (addon === undefined || typeof addon.acceptorOpen !== 'function') return undefined;
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  // Read while the server still has its handle (closed below).
  learnTcpHandleClass(server);
  const id = addon.acceptorOpen(
    fdOf(server),
    (fd, address, port, family) => {
      const peer = peerEndpoint(address, port, family);
      // Once a handle has opened the fd, the handle owns it: closing the handle closes the fd.
      const handle = openTcpHandle(fd) as { close?(): void } | undefined;
      let socket: Socket;
      try {
        socket = wrapAccepted(fd, handle);
      } catch (err) {
        if (handle) handle.close?.();
        else closeSync(fd);
        hooks.failed(errnoOf(err) ?? 'EUNKNOWN', 'dropped', peer);
        return;
      }
      hooks.accepted(socket, peer);
    },
    (code, kind, address, port, family) => {
      const fault = FAULTS[kind] ?? 'failed';
      if (fault === 'paused' && !closed) {
        retry = setTimeout(() => {
          retry = undefined;
          if (!closed) addon.acceptorResume(id);
        }, ACCEPT_RETRY_MS);
      }
      hooks.failed(code, fault, peerEndpoint(address, port, family));
    },
  );
  server.close();
  return {
    close() {
      closed = true;
      clearTimeout(retry);
      addon.acceptorClose(id);
    },
  };
}

/**
 * A net.Socket over an accepted descriptor, paused like `pauseOnConnect`
 * (`pauseOnCreate` is the option Node's own server uses for that). Through a TCP handle made as
 * Node's server makes one where the running Node allows it: `{ fd }` alone costs four syscalls
 * to learn that the descriptor is a TCP socket.
 */
function wrapAccepted(fd: number, handle: object | undefined): Socket {
  const options: SocketConstructorOpts & { pauseOnCreate: boolean; handle?: object } = {
    ...(handle ? { handle } : { fd }),
    allowHalfOpen: true,
    readable: true,
    writable: true,
    pauseOnCreate: true,
  };
  return new Socket(options);
}

function peerEndpoint(
  address: string | undefined,
  port: number | undefined,
  family: 4 | 6 | undefined,
): Endpoint | undefined {
  if (address === undefined || port === undefined) return undefined;
  // inet_ntop's IPv4 text is canonical; IPv6 may be v4-mapped, which makeEndpoint strips.
  if (family === 4) return Object.freeze({ address, port, family: 'IPv4' as const });
  try {
    return makeEndpoint({ address, port }, 'source');
  } catch {
    return undefined;
  }
}

/**
 * A failed accept(2) as the server reports it: the 'error' event's error and, for a
 * connection that was reset ('dropped'), its close summary (reason 'accept-failed').
 */
export function acceptFailure(
  code: string,
  fault: AcceptFault,
  peer: Endpoint | undefined,
  id: number,
): { error: RedirectError; summary: CloseSummary | undefined } {
  const error = new RedirectError('ERR_REDIRECT_ACCEPT_FAILED', acceptFailureMessage(code, fault, peer), {
    syscallCode: code,
  });
  if (fault !== 'dropped') return { error, summary: undefined };
  const summary: CloseSummary = {
    id,
    peer,
    record: undefined,
    target: undefined,
    reason: 'accept-failed',
    error,
    durationMs: 0,
    connectMs: undefined,
    upstream: EMPTY_DIRECTION,
    downstream: EMPTY_DIRECTION,
    path: 'none',
  };
  return { error, summary };
}

const SHORTAGE: Readonly<Record<string, string>> = {
  EMFILE:
    'this process is out of file descriptors; raise its limit (ulimit -n, systemd LimitNOFILE=) or set limits.maxConnections below it',
  ENFILE: 'the system is out of file descriptors (fs.file-max)',
  ENOBUFS: 'the kernel is out of socket memory',
  ENOMEM: 'the kernel is out of memory',
};

function acceptFailureMessage(code: string, fault: AcceptFault, peer: Endpoint | undefined): string {
  const why = SHORTAGE[code];
  const head = `accept() failed with ${code}${why ? ` (${why})` : ''}`;
  if (fault === 'dropped')
    return `${head}: the connection from ${peer ? endpointKey(peer) : 'an unknown peer'} was reset`;
  if (fault === 'paused') {
    return `${head}: accepting pauses for ${ACCEPT_RETRY_MS} ms; new connections wait in the listen queue`;
  }
  return why ? head : `${head}: that connection was lost before it was accepted`;
}
