import type { RedirectError } from '../common/errors';
import type { PumpHooks } from '../pipeline/pump';

/** What a direction reports to its connection. */
export interface DirectionOwner {
  noteActivity(): void;
  noteEnd(side: 'client' | 'upstream', atNs: number): void;
  middlewareFailed(err: RedirectError): void;
  directionFinished(): void;
  fault(side: 'client' | 'upstream', err: Error): void;
}

/** A pump's hooks into its connection: one object per direction, with no closures. */
export class DirectionHooks implements PumpHooks {
  constructor(
    private readonly conn: DirectionOwner,
    /** The side this direction reads from. */
    private readonly side: 'client' | 'upstream',
  ) {}

  activity(): void {
    this.conn.noteActivity();
  }

  failed(err: RedirectError): void {
    this.conn.middlewareFailed(err);
  }

  finished(): void {
    this.conn.directionFinished();
  }

  sourceEnded(atNs: number): void {
    this.conn.noteEnd(this.side, atNs);
  }

  relayFailed(err: Error, which: 'source' | 'sink'): void {
    const other = this.side === 'client' ? 'upstream' : 'client';
    this.conn.fault(which === 'source' ? this.side : other, err);
  }
}
