import { randomBytes } from 'node:crypto';
import test from 'ava';
import { configureZeroCopy, DEFAULT_ZERO_COPY_BUDGET, zeroCopyStats } from '../lib/index';
import { optionalLinux } from '../lib/platform/addon';
import { zeroCopyTest } from './helpers/modes';
import { closedAtLeast, dial, drain, echoUpstream, sendRandom, sha256, startRedirect } from './helpers/net';
import { throwsCode } from './helpers/expect';

// Own worker: the budget is process-wide.
const available = zeroCopyStats() !== undefined;
const zcTest = zeroCopyTest;
const KiB = 1024;
const MiB = 1024 * KiB;

test.after.always(() => {
  if (available) configureZeroCopy(DEFAULT_ZERO_COPY_BUDGET);
});

test('configureZeroCopy() checks its fields with a code', (t) => {
  const bad = [{ threads: 0 }, { pipeSize: 100 }, { maxPipes: -1 }, { colour: 1 }, { maxPipeBytes: 1.5 }];
  for (const budget of bad) {
    throwsCode(t, () => configureZeroCopy(budget as never), 'ERR_REDIRECT_INVALID_OPTION');
  }
});

test('configureZeroCopy() checks maxPipeSize: an integer 4 KiB–1 GiB, never below pipeSize', (t) => {
  const before = zeroCopyStats();
  const bad: [object, string][] = [
    [{ maxPipeSize: 1000 }, 'zeroCopyBudget.maxPipeSize'],
    [{ maxPipeSize: 2 ** 31 }, 'zeroCopyBudget.maxPipeSize'],
    [{ maxPipeSize: 65_536.5 }, 'zeroCopyBudget.maxPipeSize'],
    [{ maxPipeSize: '1M' }, 'zeroCopyBudget.maxPipeSize'],
    // below the default (or current) pipeSize of 64 KiB
    [{ maxPipeSize: 32 * KiB }, 'zeroCopyBudget.maxPipeSize'],
    // above the default (or current) maxPipeSize of 1 MiB
    [{ pipeSize: 2 * MiB }, 'zeroCopyBudget.pipeSize'],
    [{ pipeSize: 256 * KiB, maxPipeSize: 128 * KiB }, 'zeroCopyBudget.maxPipeSize'],
  ];
  for (const [budget, field] of bad) {
    throwsCode(
      t,
      () => configureZeroCopy(budget as never),
      'ERR_REDIRECT_INVALID_OPTION',
      { message: (m) => m.includes(field) },
      JSON.stringify(budget),
    );
  }
  // a refused budget changed nothing
  t.deepEqual(zeroCopyStats(), before);
});

zcTest('pipeSize and maxPipeSize move together; the engine itself refuses maxPipeSize < pipeSize', (t) => {
  configureZeroCopy({ pipeSize: 2 * MiB, maxPipeSize: 2 * MiB });
  t.is(zeroCopyStats()?.pipeSize, 2 * MiB);
  t.is(zeroCopyStats()?.maxPipeSize, 2 * MiB);
  configureZeroCopy({ pipeSize: 64 * KiB });
  t.is(zeroCopyStats()?.maxPipeSize, 2 * MiB);
  configureZeroCopy({ maxPipeSize: 64 * KiB });
  t.is(zeroCopyStats()?.maxPipeSize, 64 * KiB);
  // the native side checks too (spliceConfigure is reachable without the JS checks)
  const addon = optionalLinux();
  const current = zeroCopyStats()!;
  const budget = {
    threads: current.maxThreads,
    maxPipes: current.maxPipes,
    maxPipeBytes: current.maxPipeBytes,
    pipeSize: 128 * KiB,
    maxPipeSize: 64 * KiB,
  };
  t.throws(() => addon?.spliceConfigure(budget), { instanceOf: RangeError });
  t.is(zeroCopyStats()?.pipeSize, 64 * KiB);
  configureZeroCopy(DEFAULT_ZERO_COPY_BUDGET);
  t.deepEqual(
    { pipeSize: zeroCopyStats()?.pipeSize, maxPipeSize: zeroCopyStats()?.maxPipeSize },
    { pipeSize: DEFAULT_ZERO_COPY_BUDGET.pipeSize, maxPipeSize: DEFAULT_ZERO_COPY_BUDGET.maxPipeSize },
  );
});

zcTest(
  'when the pipe budget runs out mid-load, relays copy instead: every direction stays spliced, bytes intact, budget kept',
  async (t) => {
    t.timeout(30_000);
    configureZeroCopy({ maxPipes: 12 });
    const copiedBefore = zeroCopyStats()?.copiedBytes ?? 0;
    const up = await echoUpstream(t);
    const { server, port } = await startRedirect(t, {
      resolve: { host: '127.0.0.1', port: up.port },
      zeroCopy: 'always',
    });
    let peakPipes = 0;
    const watcher = setInterval(() => {
      peakPipes = Math.max(peakPipes, zeroCopyStats()?.pipes ?? 0);
    }, 2);
    // All 40 connections are open and have moved bytes before any of them ends,
    // so 80 directions are spliced while 12 pipes may exist.
    let opened = 0;
    let allOpen: () => void = () => {};
    // Every connection comes to the barrier, its head echoed or its socket closed
    // (a failed one shows up in the assertions below).
    const barrier = new Promise<void>((resolve) => {
      allOpen = resolve;
    });
    const runs = Array.from({ length: 40 }, async (_, i) => {
      const c = await dial(port);
      const got = drain(c);
      const data = randomBytes(576 * 1024 + i * 101);
      c.write(data.subarray(0, 64 * 1024));
      // the head's echo is back: both directions of this connection are set up
      await new Promise<void>((resolve) => {
        let n = 0;
        const onData = (d: Buffer): void => {
          n += d.length;
          if (n >= 64 * 1024) {
            c.off('data', onData);
            resolve();
          }
        };
        c.on('data', onData);
        c.once('close', () => resolve());
      });
      if (++opened === 40) allOpen();
      await barrier;
      c.end(data.subarray(64 * 1024));
      const r = await got;
      return r.sha256 === sha256(data) && r.bytes === data.length;
    });
    const ok = await Promise.all(runs);
    clearInterval(watcher);
    t.is(ok.filter(Boolean).length, 40, `opened ${opened}`);
    await closedAtLeast(server, 40);
    const stats = server.stats();
    t.is(stats.total.closed, 40);
    t.true(peakPipes <= 12, `peak pipes ${peakPipes}`);
    // a pipe is held only while bytes are in flight, and a relay that finds none copies: no
    // direction goes back to JS
    t.is(stats.dataPaths.upstream['zero-copy'], 40, JSON.stringify(stats.dataPaths));
    t.is(stats.dataPaths.downstream['zero-copy'], 40, JSON.stringify(stats.dataPaths));
    t.is(stats.dataPaths.jsBytes, 0);
    t.is(stats.reasons['client-end'], 40);
    t.log(`peak pipes ${peakPipes}, copied ${(zeroCopyStats()?.copiedBytes ?? 0) - copiedBefore} bytes`);
    t.is(zeroCopyStats()?.pipesInUse, 0);
    configureZeroCopy({});
    t.is(zeroCopyStats()?.pipes, 0);
    t.is(zeroCopyStats()?.pipeBytes, 0);
  },
);

zcTest('a budget of zero pipes keeps everything on the JS path', async (t) => {
  configureZeroCopy({ maxPipes: 0 });
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, {
    resolve: { host: '127.0.0.1', port: up.port },
    zeroCopy: 'always',
  });
  const c = await dial(port);
  const got = drain(c);
  const sent = await sendRandom(c, 2 * 1024 * 1024);
  t.is((await got).sha256, sent);
  await closedAtLeast(server, 1);
  t.is(server.stats().paths.js, 1);
  configureZeroCopy({ maxPipes: DEFAULT_ZERO_COPY_BUDGET.maxPipes });
});
