import type { Server, Socket } from 'node:net';

/**
 * Every use of Node's undocumented socket internals, in one place (docs/architecture.md,
 * "Node internals"). Each one is feature-detected where it is used, so a Node that moved one
 * degrades to the documented behaviour (Node's own reads, pause() instead of readStop); and
 * `checkNodeInternals()` names whichever moved: test/node-internals.test.ts runs it against the
 * running Node, so CI fails loudly on a Node version where one of them changed.
 *
 *  - `socket._handle`: the libuv TCP handle (fd, readStop/readStart, useUserBuffer,
 *    getsockname); `server._handle` (fd, setNoDelay).
 *  - `handle.reading`: Node's own flag of whether the handle reads; kept true to libuv's state
 *    when we stop or start it behind the stream's back.
 *  - the `kBuffer`/`kBufferCb`/`kBufferGen` symbols: the `onread` user-buffer path, for large
 *    reads into our own buffers.
 *  - `socket._readableState.ended`: Node read the FIN but has not emitted 'end' yet.
 *  - `socket._read`: replaced by a no-op while the splice engine owns the descriptor, so that
 *    Readable's read-ahead cannot restart libuv.
 *  - `socket._destroy`: wrapped while the splice engine uses the socket's own fd, so the engine
 *    lets go inside destroy(), before Node closes the fd (`_destroy` → `handle.close()`/`reset()`
 *    → `uv_close` → `close(fd)`, synchronously). Without it the engine is not used at all.
 *  - `server._handle.constructor`: Node's TCP handle class, to wrap a descriptor the addon made
 *    (an accepted connection, a marked egress socket) the way Node's own server wraps one
 *    (`new TCP(SOCKET)`, `open(fd)`, `new Socket({ handle })`); `new Socket({ fd })` would first
 *    ask libuv what the fd is (isatty, fstat, getsockname, SO_TYPE: four syscalls per
 *    connection for a fact we already know).
 *  - passing `socket._handle` itself to `child.send(message, handle)`: Node's IPC sends a raw
 *    TCP handle as its 'net.Native' type (SCM_RIGHTS; the sender keeps its copy, the child gets
 *    the handle for `server.listen(handle)`). lib/workers/ passes the listening sockets so.
 */

/** The parts of a libuv TCP handle we use. */
export interface LibuvHandle {
  fd?: number;
  reading?: boolean;
  readStop?(): number;
  readStart?(): number;
  useUserBuffer?(buf: Uint8Array): void;
  getsockname?(out: object): number;
  setNoDelay?(on: boolean): number;
}

/** tcp_wrap's SocketType: a connection's handle (a listener's is SERVER, 1). */
const TCP_SOCKET = 0;

/** A TCP handle class as `server._handle.constructor` has it. */
type TcpHandleClass = new (type: number) => { open?(fd: number): number; close?(): void };

/** Node's TCP handle class once a listening server showed it (null: this Node has none we can use). */
let tcpHandleClass: TcpHandleClass | null | undefined;

/**
 * Learns Node's TCP handle class from a listening server (the class is the process's: any one
 * server teaches it). True when openTcpHandle() can now be used.
 */
export function learnTcpHandleClass(server: Server): boolean {
  if (tcpHandleClass) return true;
  const Handle = (handleOf(server) as { constructor?: unknown } | null | undefined)?.constructor as
    | TcpHandleClass
    | undefined;
  const usable = typeof Handle === 'function' && Handle.name === 'TCP' && typeof Handle.prototype?.open === 'function';
  tcpHandleClass = usable ? Handle : null;
  return usable;
}

/**
 * A TCP handle over `fd`, made as Node's own server makes one for `new Socket({ handle })`.
 * undefined before learnTcpHandleClass() or when the handle cannot open the fd: use
 * `new Socket({ fd })` then (which reports why).
 */
export function openTcpHandle(fd: number): object | undefined {
  if (!tcpHandleClass) return undefined;
  const handle = new tcpHandleClass(TCP_SOCKET);
  if (handle.open?.(fd) === 0) return handle;
  handle.close?.();
  return undefined;
}

/** The libuv handle under a socket or server (null once closed). */
function handleOf(owner: Socket | Server): LibuvHandle | null | undefined {
  return (owner as unknown as { _handle?: LibuvHandle | null })._handle;
}

/**
 * The handle to pass to `child.send(message, handle)` so the child gets the socket itself (not a
 * net.Socket around it, which would start reading a listener); undefined once closed.
 */
export function passableHandleOf(s: Socket): object | undefined {
  return handleOf(s) ?? undefined;
}

/** The descriptor under a socket or server, or undefined (closed, or not a TCP socket). */
export function descriptorOf(owner: Socket | Server): number | undefined {
  const fd = handleOf(owner)?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/** Stops the handle reading (pause() alone lets libuv keep filling the stream). True if it was reading. */
export function stopHandle(s: Socket): boolean {
  const handle = handleOf(s);
  if (!handle?.reading || typeof handle.readStop !== 'function' || s.destroyed) return false;
  handle.reading = false;
  handle.readStop();
  return true;
}

/** Restarts a handle stopped behind the stream's back (Node may still think a read is pending). */
export function restartHandle(s: Socket): void {
  const handle = handleOf(s);
  if (handle && !handle.reading && !s.connecting && !s.destroyed && typeof handle.readStart === 'function') {
    handle.reading = true;
    handle.readStart();
  }
}

/** The local endpoint as the kernel has it now (Node caches `localAddress` on first use). */
export function boundAddressOf(s: Socket): { address?: string; port?: number } | undefined {
  const handle = handleOf(s);
  if (typeof handle?.getsockname !== 'function') return undefined;
  const out: { address?: string; port?: number } = {};
  return handle.getsockname(out) === 0 ? out : undefined;
}

/** TCP_NODELAY on a listening socket, inherited by what it accepts (Linux). False if not possible. */
export function setListenerNoDelay(server: Server): boolean {
  const handle = handleOf(server);
  return typeof handle?.setNoDelay === 'function' && handle.setNoDelay(true) === 0;
}

interface UserBufferKeys {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}
let userBufferKeys: UserBufferKeys | null | undefined;

/**
 * The keys under which a net.Socket keeps its `onread` user buffer, its callback and its
 * generator (Node sets all three, null, on every socket). Found by description once.
 */
function userBufferKeysOf(s: Socket): UserBufferKeys | undefined {
  if (userBufferKeys === undefined) {
    const byName = new Map<string, symbol>();
    for (const sym of Object.getOwnPropertySymbols(s)) if (sym.description) byName.set(sym.description, sym);
    const buffer = byName.get('kBuffer');
    const callback = byName.get('kBufferCb');
    const generator = byName.get('kBufferGen');
    userBufferKeys = buffer && callback && generator ? { buffer, callback, generator } : null;
  }
  return userBufferKeys ?? undefined;
}

/**
 * Switches a socket to Node's user-buffer reads: each read lands in the buffer `next()`
 * returns, and `onRead(n, buffer)` gets it instead of a 'data' event. False when the running
 * Node has no such path (the socket keeps Node's reads).
 */
export function readIntoOwnBuffers(
  s: Socket,
  first: Buffer,
  onRead: (n: number, buffer: Buffer) => void,
  next: () => Buffer,
): boolean {
  const handle = handleOf(s);
  const keys = userBufferKeysOf(s);
  if (!keys || typeof handle?.useUserBuffer !== 'function' || s.destroyed) return false;
  const target = s as unknown as Record<symbol, unknown>;
  target[keys.buffer] = first;
  target[keys.callback] = onRead;
  target[keys.generator] = next;
  handle.useUserBuffer(first);
  return true;
}

/** True when Node has read the FIN but the stream has not emitted 'end' yet (or has). */
export function finReadByNode(s: Socket): boolean {
  const state = (s as unknown as { _readableState?: { ended?: boolean } })._readableState;
  return state?.ended === true || s.readableEnded;
}

function noRead(): void {}

/** Makes Readable's read-ahead a no-op, so it cannot restart libuv under the splice engine. */
export function disableReadAhead(s: Socket): void {
  (s as unknown as { _read: (n: number) => void })._read = noRead;
}

/** Undoes disableReadAhead: back to net.Socket.prototype._read. */
export function restoreReadAhead(s: Socket): void {
  delete (s as unknown as { _read?: unknown })._read;
}

type DestroyFn = (this: Socket, err: Error | null, cb: (err?: Error | null) => void) => void;

interface Guard {
  readonly hooks: Set<() => void>;
  readonly wrapper: DestroyFn;
  /** An own `_destroy` the socket had before the guard (normally none: the prototype's). */
  readonly own: DestroyFn | undefined;
}

const guards = new WeakMap<Socket, Guard>();

type WithDestroy = { _destroy: DestroyFn };

/** Whether beforeFdClose() can guard this socket on the running Node. */
export function canGuardFdClose(socket: Socket): boolean {
  return typeof (Object.getPrototypeOf(socket) as Partial<WithDestroy>)._destroy === 'function';
}

/**
 * Runs `hook` once, synchronously, inside the socket's destroy() before Node closes its fd (the
 * splice engine uses Node's fds without dups: once the number is free, the next socket or file
 * gets it; docs/zero-copy.md, "No dups"). Returns its removal; check canGuardFdClose() first.
 */
export function beforeFdClose(socket: Socket, hook: () => void): () => void {
  let guard = guards.get(socket);
  if (guard === undefined) {
    const target = socket as unknown as WithDestroy;
    const own = Object.hasOwn(socket, '_destroy') ? target._destroy : undefined;
    const hooks = new Set<() => void>();
    const wrapper: DestroyFn = function (this: Socket, err, cb) {
      const pending = [...hooks];
      uninstall(this);
      try {
        for (const run of pending) run();
      } finally {
        // Whatever a hook did, the socket still closes (else its fd would leak).
        (own ?? (Object.getPrototypeOf(this) as WithDestroy)._destroy).call(this, err, cb);
      }
    };
    guard = { hooks, wrapper, own };
    guards.set(socket, guard);
    target._destroy = wrapper;
  }
  const hooks = guard.hooks;
  hooks.add(hook);
  return () => {
    hooks.delete(hook);
    if (hooks.size === 0 && guards.get(socket)?.hooks === hooks) uninstall(socket);
  };
}

function uninstall(socket: Socket): void {
  const guard = guards.get(socket);
  if (guard === undefined) return;
  guards.delete(socket);
  const target = socket as unknown as Partial<WithDestroy>;
  // Only undo our own wrapper (someone may have wrapped it again since).
  if (target._destroy !== guard.wrapper) return;
  if (guard.own) target._destroy = guard.own;
  else delete target._destroy;
}

/**
 * Which of the internals above the running Node lacks, checked on a connected socket (and its
 * server): an empty list means every fast path is available.
 */
export function checkNodeInternals(s: Socket, server?: Server): string[] {
  const missing: string[] = [];
  const handle = handleOf(s);
  if (!handle) return ['socket._handle'];
  if (typeof handle.fd !== 'number') missing.push('socket._handle.fd');
  if (typeof handle.reading !== 'boolean') missing.push('socket._handle.reading');
  if (typeof handle.readStop !== 'function') missing.push('socket._handle.readStop');
  if (typeof handle.readStart !== 'function') missing.push('socket._handle.readStart');
  if (typeof handle.useUserBuffer !== 'function') missing.push('socket._handle.useUserBuffer');
  if (typeof handle.getsockname !== 'function') missing.push('socket._handle.getsockname');
  if (!userBufferKeysOf(s)) missing.push('socket[kBuffer, kBufferCb, kBufferGen]');
  const state = (s as unknown as { _readableState?: { ended?: unknown } })._readableState;
  if (typeof state?.ended !== 'boolean') missing.push('socket._readableState.ended');
  if (typeof (s as unknown as { _read?: unknown })._read !== 'function') missing.push('socket._read');
  if (!canGuardFdClose(s)) missing.push('socket._destroy');
  if (server !== undefined) {
    const listener = handleOf(server);
    if (typeof listener?.fd !== 'number') missing.push('server._handle.fd');
    if (process.platform === 'linux' && typeof listener?.setNoDelay !== 'function')
      missing.push('server._handle.setNoDelay');
    if (!learnTcpHandleClass(server)) missing.push('server._handle.constructor (TCP)');
  }
  return missing;
}
