import { type Observable, pipe } from 'rxjs';
import { RedirectError } from '../common/errors';
import type { ByteOperator, ConnectionContext, Middleware, MiddlewareOperators } from '../common/types';

/**
 * Calls each middleware once for a connection and joins their operators:
 * upstream in array order, downstream in reverse order.
 */
export function buildChain(middleware: readonly Middleware[], ctx: ConnectionContext): MiddlewareOperators {
  const up: ByteOperator[] = [];
  const down: ByteOperator[] = [];
  for (const m of middleware) {
    const ops = m(ctx);
    if (ops === undefined || ops === null) continue;
    if (typeof ops !== 'object') {
      throw new TypeError(`a middleware returned ${typeof ops}; return { upstream?, downstream? } or nothing`);
    }
    if (ops.upstream !== undefined) up.push(returnedOperator(ops.upstream, 'upstream'));
    if (ops.downstream !== undefined) down.push(returnedOperator(ops.downstream, 'downstream'));
  }
  down.reverse();
  const result: MiddlewareOperators = {};
  const upstream = join(up);
  const downstream = join(down);
  if (upstream) result.upstream = upstream;
  if (downstream) result.downstream = downstream;
  return result;
}

/** Makes one middleware out of many, with the same ordering rules as the server's array. */
export function compose(...middleware: Middleware[]): Middleware {
  for (const [i, m] of middleware.entries()) {
    if (typeof m !== 'function') {
      throw new RedirectError(
        'ERR_REDIRECT_INVALID_OPTION',
        `compose(): argument ${i} is ${describe(m)}, not a middleware function (ctx) => ({ upstream?, downstream? })`,
      );
    }
  }
  return (ctx) => buildChain(middleware, ctx);
}

/** Runs a plain RxJS operator on client → destination bytes. */
export function upstream(operator: ByteOperator): Middleware {
  checkOperator(operator, 'upstream');
  return () => ({ upstream: operator });
}

/** Runs a plain RxJS operator on destination → client bytes. */
export function downstream(operator: ByteOperator): Middleware {
  checkOperator(operator, 'downstream');
  return () => ({ downstream: operator });
}

/** Runs the same operator (a fresh application of it) on both directions. */
export function both(operator: ByteOperator): Middleware {
  checkOperator(operator, 'both');
  return () => ({ upstream: operator, downstream: operator });
}

/** The argument of upstream(), downstream() or both(): a mistake in the code that builds the chain. */
function checkOperator(op: unknown, where: string): ByteOperator {
  if (typeof op !== 'function') {
    throw new RedirectError(
      'ERR_REDIRECT_INVALID_OPTION',
      `${where}(operator): operator is ${describe(op)}, not an RxJS operator function (e.g. map(…))`,
    );
  }
  return op as ByteOperator;
}

/** What a middleware returned for one connection: its fault ends that connection (middleware-error). */
function returnedOperator(op: unknown, where: string): ByteOperator {
  if (typeof op !== 'function') throw new TypeError(`a middleware's ${where} must be an RxJS operator function`);
  return op as ByteOperator;
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

function join(ops: ByteOperator[]): ByteOperator | undefined {
  if (ops.length === 0) return undefined;
  if (ops.length === 1) return ops[0];
  return (pipe as (...fns: ByteOperator[]) => ByteOperator)(...ops);
}

/**
 * Applies a joined chain to its input. Shared by the pump and the test
 * harness, so a chain behaves the same with and without sockets.
 */
export function applyChain(operator: ByteOperator, input: Observable<Buffer>): Observable<Buffer> {
  const output = operator(input);
  if (!output || typeof output.subscribe !== 'function') {
    throw new TypeError('a middleware operator must return an Observable');
  }
  return output;
}
