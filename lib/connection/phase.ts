/**
 * Where a connection is in its lifecycle (docs/design.md, "Lifecycle of a connection").
 * One field replaces the flags that used to say it piecemeal; every transition is in
 * Connection and moves forward only:
 *
 *   accepted → resolving → building → [choosing] → connecting → open → closing → closed
 *
 * `choosing` only when a middleware deferred the connect (`ctx.deferConnect()`); any phase
 * before `closing` may jump to it (a fault, a deadline, `destroy()`); `closing` waits for both
 * sockets to close, and `closed` is final (the summary was emitted). Half-closed directions are
 * a property of the pumps, not a phase of the connection: one direction may end while the other
 * keeps flowing.
 */
export type ConnectionPhase =
  | 'accepted'
  | 'resolving'
  | 'building'
  | 'choosing'
  | 'connecting'
  | 'open'
  | 'closing'
  | 'closed';

const ORDER: Readonly<Record<ConnectionPhase, number>> = {
  accepted: 0,
  resolving: 1,
  building: 2,
  choosing: 3,
  connecting: 4,
  open: 5,
  closing: 6,
  closed: 7,
};

/** True once the flow is ending or ended: its reason is set, nothing new may start. */
export function isEnding(phase: ConnectionPhase): boolean {
  return ORDER[phase] >= ORDER.closing;
}

/** The phase after `from` on the way to `to`, or `from` if `to` would go backwards. */
export function advance(from: ConnectionPhase, to: ConnectionPhase): ConnectionPhase {
  return ORDER[to] > ORDER[from] ? to : from;
}
