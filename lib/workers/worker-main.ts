import type { Server } from 'node:net';
import { createRedirectServer, type RedirectServer } from '../server/server';
import type { CloseSummary } from '../common/types';
import { configureZeroCopy, zeroCopyStats } from '../zero-copy/engine';
import { loadSetupHook, serverOptionsFrom } from './config-module';
import { type FromWorker, isProtocolMessage, type StartMessage, type ToWorker, wireError } from './protocol';

/**
 * A worker process of lib/workers/host.ts (forked with an IPC channel): waits
 * for 'start' and the listening handle, builds the server from the config
 * module and listens on the handle; answers stats/budget requests; on 'drain'
 * closes and exits. docs/workers.md has the protocol.
 */

let server: RedirectServer | undefined;
let summaries = false;
/** What the setup hook returned to answer cluster.request() (e.g. its metrics registry's JSON). */
let onRequest: ((payload: unknown) => unknown) | undefined;
/** The start in progress: a drain that arrives meanwhile (a reload right after a restart) waits for it. */
let starting: Promise<void> | undefined;

function send(message: FromWorker): void {
  // The channel is gone when the primary died: nothing to tell it.
  if (process.connected) process.send?.(message);
}

async function start(message: StartMessage, handle: unknown): Promise<void> {
  const info = { worker: message.slot, generation: message.generation };
  try {
    configureZeroCopy(message.budget);
    const options = await serverOptionsFrom(message.module, info);
    server = createRedirectServer(options);
    summaries = message.summaries;
    server.on('closed', onClosed);
    // A listener fault (accept failing) is counted in stats; the worker keeps serving.
    server.on('error', () => {});
    if (message.setup !== undefined) {
      const hooks = (await (await loadSetupHook(message.setup))(server, info)) as { onRequest?: unknown } | undefined;
      if (typeof hooks?.onRequest === 'function') onRequest = hooks.onRequest.bind(hooks) as typeof onRequest;
    }
    const address = await server.listen({ handle: handle as Server, backlog: message.backlog });
    send({ rxr: 1, type: 'listening', address });
  } catch (err) {
    send({ rxr: 1, type: 'failed', error: wireError(err) });
    // Give the message to the channel before going.
    setImmediate(() => process.exit(1));
  }
}

function onClosed(summary: CloseSummary): void {
  if (!summaries) return;
  send({ rxr: 1, type: 'closed', summary: { ...summary, error: summary.error && wireError(summary.error) } });
}

async function answer(id: number, payload: unknown): Promise<void> {
  try {
    if (onRequest === undefined) throw new Error('this worker has no setup hook that returned { onRequest }');
    send({ rxr: 1, type: 'reply', id, reply: await onRequest(payload) });
  } catch (err) {
    send({ rxr: 1, type: 'reply', id, error: wireError(err) });
  }
}

/** The drain in progress: a second 'drain' (the primary hastening it) only brings its deadline forward. */
let draining: Promise<void> | undefined;

function drainOnce(timeoutMs: number): void {
  if (draining === undefined) draining = drain(timeoutMs);
  // close() again with a shorter timeoutMs moves the deadline forward; the first drain goes on.
  else void Promise.resolve(starting).then(() => server?.close({ timeoutMs }));
}

async function drain(timeoutMs: number): Promise<void> {
  await starting;
  // close() shuts the listener before its first await: the primary hears that it accepts no more.
  const closing = server?.close({ timeoutMs });
  send({ rxr: 1, type: 'unbound' });
  await closing;
  send({ rxr: 1, type: 'drained', server: server?.stats() ?? null });
  process.disconnect?.();
  // Anything a user's setup left running (a timer, a socket) must not keep a drained worker alive.
  setImmediate(() => process.exit(0));
}

process.on('message', (message: unknown, handle: unknown) => {
  if (!isProtocolMessage<ToWorker>(message)) return;
  switch (message.type) {
    case 'start':
      starting = start(message, handle);
      break;
    case 'stats':
      // Asked before its server exists (still starting): answer anyway, the primary waits for it.
      send({
        rxr: 1,
        type: 'stats',
        id: message.id,
        server: server?.stats() ?? null,
        zeroCopy: zeroCopyStats() ?? null,
      });
      break;
    case 'freeze': {
      // No new pipes, no growth: the limits become what is in use now.
      const now = zeroCopyStats();
      const pipes = now?.pipes ?? 0;
      const pipeBytes = now?.pipeBytes ?? 0;
      configureZeroCopy({ maxPipes: pipes, maxPipeBytes: pipeBytes });
      send({ rxr: 1, type: 'frozen', id: message.id, pipes, pipeBytes });
      break;
    }
    case 'budget':
      configureZeroCopy({ maxPipes: message.maxPipes, maxPipeBytes: message.maxPipeBytes });
      break;
    case 'drain':
      drainOnce(message.timeoutMs);
      break;
    case 'request':
      void answer(message.id, message.payload);
      break;
  }
});

// The primary went away (crashed or was killed): stop accepting, drain like a close (the server's
// limits.closeTimeoutMs), and go, whatever a setup hook left running: no orphan keeps serving.
process.on('disconnect', () => {
  if (!server?.listening) return;
  void server.close().then(() => process.exit(0));
});
