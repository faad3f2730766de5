import type { Transport } from '../net/transport';
import type { Ending } from './middleware-ending';

/** How a flow's two connections end: RST, FIN after what was written, or closed as they are. */
export type FlowEnding = Ending | 'destroy';

/**
 * Ends both connections of a flow the same way; `upstream` is undefined before it is dialled.
 * Both drivers of the pipeline end their flows through here (the server's Connection and
 * testMiddleware's MemoryFlow), so they cannot drift apart.
 */
export function endConnections(how: FlowEnding, client: Transport, upstream: Transport | undefined): void {
  if (how === 'reset') {
    client.reset();
    upstream?.reset();
  } else if (how === 'close') {
    closeWhenFlushed(client);
    if (upstream) closeWhenFlushed(upstream);
  } else {
    client.destroy();
    upstream?.destroy();
  }
}

/**
 * close(2) once the kernel has taken every byte written: the peer gets them, then FIN (or RST if
 * it sent bytes we never read, as with any close). An empty write's callback runs after the rest.
 */
function closeWhenFlushed(transport: Transport): void {
  if (transport.destroyed) return;
  if (transport.writableLength === 0) transport.destroy();
  else transport.write(EMPTY, () => transport.destroy());
}

const EMPTY = Buffer.alloc(0);
