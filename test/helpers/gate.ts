import type { ExecutionContext } from 'ava';

type Impl<Context> = (t: ExecutionContext<Context>) => Promise<void> | void;

/** What gatedTest needs of ava's `test` or `test.serial`. */
interface Registrar<Context> {
  (title: string, impl: Impl<Context>): void;
  skip(title: string, impl: Impl<Context>): void;
}

/**
 * Test gating for tests that need something this machine may lack (root,
 * namespaces, the splice engine, a tool). Outside CI a test whose
 * precondition is missing is skipped with the reason in its title; in CI
 * (CI=true) it fails instead, so a broken runner never passes silently.
 */
export function gatedTest<Context = unknown>(test: Registrar<Context>, reason: string | undefined) {
  return (title: string, impl: Impl<Context>): void => {
    if (reason === undefined) {
      test(title, impl);
    } else if (process.env.CI === 'true') {
      test(title, (t) => {
        t.fail(`cannot run in CI: ${reason}`);
      });
    } else {
      test.skip(`${title} (skipped: ${reason})`, impl);
    }
  };
}
