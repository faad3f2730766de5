import type { ExecutionContext } from 'ava';
import { RedirectError, type RedirectErrorCode } from '../../lib/index';

/**
 * What a coded error must look like besides its code. The code itself is typed
 * as RedirectErrorCode, so a misspelt or retired code fails the type check
 * instead of an expectation that can never match.
 */
export interface CodedExpectation {
  readonly message?: string | RegExp | ((message: string) => boolean);
}

/** Asserts that fn throws a RedirectError with this code; returns it for further checks. */
export function throwsCode(
  t: ExecutionContext,
  fn: () => unknown,
  code: RedirectErrorCode,
  expectation: CodedExpectation = {},
  note?: string,
): RedirectError | undefined {
  return t.throws(fn, { instanceOf: RedirectError, code, ...expectation }, note);
}

/** Asserts that the promise (or the one fn returns) rejects with a RedirectError with this code. */
export function throwsCodeAsync(
  t: ExecutionContext,
  pending: PromiseLike<unknown> | (() => PromiseLike<unknown>),
  code: RedirectErrorCode,
  expectation: CodedExpectation = {},
  note?: string,
): Promise<RedirectError | undefined> {
  const expected = { instanceOf: RedirectError, code, ...expectation };
  return typeof pending === 'function'
    ? t.throwsAsync(pending, expected, note)
    : t.throwsAsync(pending, expected, note);
}
