import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { ExecutionContext } from 'ava';

/**
 * A listener that never accepts, with a backlog of one: once its queue is
 * full the kernel drops further SYNs, so a connect to it hangs until the
 * caller's own deadline. Node always accepts, so python3 holds the socket.
 */
export async function unansweringListener(t: ExecutionContext): Promise<{ port: number; fill: () => Promise<void> }> {
  const child = spawn(
    'python3',
    [
      '-c',
      'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: Socket[] = [];
  t.teardown(() => {
    for (const s of fillers) s.destroy();
    child.kill();
  });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  return {
    port,
    async fill() {
      // Fill the accept queue (backlog 0 admits one or two); later SYNs are dropped.
      for (let i = 0; i < 3; i++) {
        const s = connect({ port, host: '127.0.0.1' });
        s.on('error', () => {});
        fillers.push(s);
        // A dropped SYN has no event: 'connect' comes for the ones admitted, a cap for the rest.
        await Promise.race([once(s, 'connect'), new Promise((r) => setTimeout(r, 200))]);
      }
    },
  };
}
