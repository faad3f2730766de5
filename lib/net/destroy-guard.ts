import type { Socket } from 'node:net';

/**
 * Runs hooks inside a socket's `destroy()` before Node closes its fd.
 *
 * Node closes the fd synchronously in `destroy()` (`_destroy` →
 * `handle.close()` or `handle.reset()` → `uv_close` → `close(fd)`), well before
 * 'close' is emitted. The splice engine uses Node's fds without dups, so it
 * must be done with them by then: once the number is free, the next socket or
 * file gets it (docs/zero-copy.md, "No dups").
 */

type DestroyFn = (this: Socket, err: Error | null, cb: (err?: Error | null) => void) => void;

interface Guard {
  readonly hooks: Set<() => void>;
  readonly wrapper: DestroyFn;
  /** An own `_destroy` the socket had before the guard (normally none: the prototype's). */
  readonly own: DestroyFn | undefined;
}

const guards = new WeakMap<Socket, Guard>();

type WithDestroy = { _destroy: DestroyFn };

/** Adds `hook` (run once, synchronously, before the fd is closed); returns its removal. */
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
