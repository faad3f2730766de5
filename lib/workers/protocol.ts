import type { SpliceEngineStats } from '../platform/addon';
import type { ServerStats } from '../server/server-stats';
import type { Endpoint } from '../common/types';

/**
 * The messages between the primary and its workers over Node's IPC channel
 * (docs/workers.md, "Messages"). Every one carries `rxr: 1`, so a user's own
 * process.send traffic on the same channel is left alone.
 */

export interface WorkerBudget {
  readonly maxPipes: number;
  readonly maxPipeBytes: number;
}

/** What the primary sends with the listening handle. */
export interface StartMessage {
  readonly rxr: 1;
  readonly type: 'start';
  readonly slot: number;
  readonly generation: number;
  readonly module: string;
  readonly setup: string | undefined;
  /** The rest of the zero-copy budget (per worker: threads, pipeSize, maxPipeSize) and this worker's share. */
  readonly budget: Readonly<Record<string, number>>;
  readonly summaries: boolean;
  readonly backlog: number | undefined;
}

export type ToWorker =
  | StartMessage
  | { readonly rxr: 1; readonly type: 'stats'; readonly id: number }
  | { readonly rxr: 1; readonly type: 'freeze'; readonly id: number }
  | ({ readonly rxr: 1; readonly type: 'budget' } & WorkerBudget)
  | { readonly rxr: 1; readonly type: 'drain'; readonly timeoutMs: number }
  | { readonly rxr: 1; readonly type: 'request'; readonly id: number; readonly payload: unknown };

export interface WireError {
  readonly code: string | undefined;
  readonly message: string;
}

export type FromWorker =
  | { readonly rxr: 1; readonly type: 'listening'; readonly address: Endpoint }
  | { readonly rxr: 1; readonly type: 'failed'; readonly error: WireError }
  | {
      readonly rxr: 1;
      readonly type: 'stats';
      readonly id: number;
      /** null while the worker is still starting. */
      readonly server: ServerStats | null;
      readonly zeroCopy: SpliceEngineStats | null;
    }
  | {
      readonly rxr: 1;
      readonly type: 'frozen';
      readonly id: number;
      readonly pipes: number;
      readonly pipeBytes: number;
    }
  /** Its final counters, after close(): the primary keeps them, so totals survive a reload. */
  | { readonly rxr: 1; readonly type: 'drained'; readonly server: ServerStats | null }
  | { readonly rxr: 1; readonly type: 'closed'; readonly summary: Record<string, unknown> }
  /** The setup hook's onRequest answer (`error` when it threw or there is none). */
  | {
      readonly rxr: 1;
      readonly type: 'reply';
      readonly id: number;
      readonly reply?: unknown;
      readonly error?: WireError;
    };

export function isProtocolMessage<T extends { rxr: 1 }>(message: unknown): message is T {
  return (
    message !== null &&
    typeof message === 'object' &&
    (message as { rxr?: unknown }).rxr === 1 &&
    typeof (message as { type?: unknown }).type === 'string'
  );
}

/** An error as it crosses the channel: its code and message (JSON drops the rest). */
export function wireError(err: unknown): WireError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { code: typeof code === 'string' ? code : undefined, message: err.message };
  }
  return { code: undefined, message: String(err) };
}
