import test from 'ava';
import { type DataPath, zeroCopyStats } from '../../lib/index';
import { gatedTest } from './gate';

/**
 * The core's TCP semantics must hold on both data paths: the JS pump, and the
 * kernel (zeroCopy 'always' with an empty chain: from the first byte) where the splice engine is loaded.
 */
export interface Mode {
  readonly name: string;
  readonly path: DataPath;
  readonly options: { readonly zeroCopy: 'always' | 'off' };
}

export const MODES: readonly Mode[] = [
  { name: 'js', path: 'js', options: { zeroCopy: 'off' } },
  ...(zeroCopyStats() ? [{ name: 'zero-copy', path: 'zero-copy', options: { zeroCopy: 'always' } } as const] : []),
];

/** Why the splice engine cannot run here, or undefined when it is loaded. */
export function engineUnavailable(): string | undefined {
  if (zeroCopyStats()) return undefined;
  if (process.platform !== 'linux') return 'the splice engine is Linux only';
  return 'the splice engine is not loaded (addon not built, or RXREDIRECT_NATIVE=0)';
}

/**
 * A test of the splice engine itself: serial, as the engine's counters and
 * budget are process-wide; skipped with the reason where the engine is not
 * loaded, failed instead under CI=true.
 */
export const zeroCopyTest = gatedTest(test.serial, engineUnavailable());

/** Under CI the engine must be there: a missing one fails instead of silently halving the matrix. */
export function requireEngineUnderCi(): void {
  if (!zeroCopyStats() && process.env.CI === 'true') {
    test('the splice engine is loaded (required under CI)', (t) =>
      t.fail('zeroCopyStats() is undefined: the addon or its engine did not load'));
  }
}
