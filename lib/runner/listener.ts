import { closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { fdOf, optionalLinux } from '../platform/addon';
import type { ListenOptions } from '../server/server';

/**
 * The runner's listening socket, bound once and kept for the runner's life. Each generation
 * listens on its own duplicate of it (the server closes its descriptor when it stops, the socket
 * stays), so a reload never unbinds the port and never refuses a connection.
 */
export interface RunnerListener {
  /** ListenOptions for the next generation. */
  next(): ListenOptions;
  /** False without the addon: each generation binds (and a reload briefly unbinds) the address. */
  readonly shared: boolean;
  close(): void;
}

export async function openListener(host: string, port: number): Promise<RunnerListener> {
  const addon = optionalLinux();
  if (addon === undefined || typeof addon.dupFd !== 'function') {
    return { next: () => ({ host, port }), shared: false, close() {} };
  }
  const probe = createServer();
  // The 'listening' callback runs before the event loop polls again: the probe accepts nothing;
  // connections that arrive before the first generation wait in the kernel's queue.
  const fd = await new Promise<number>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host, port, backlog: 511 }, () => {
      try {
        resolve(addon.dupFd(fdOf(probe)));
      } catch (err) {
        reject(err);
      } finally {
        probe.close();
      }
    });
  });
  let closed = false;
  return {
    next: () => ({ fd: addon.dupFd(fd) }),
    shared: true,
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}
