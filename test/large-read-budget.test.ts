import type { Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { type CloseSummary, configureLargeReads, largeReadStats, type RedirectServer } from '../lib/index';
import { slabPool } from '../lib/net/slab-pool';
import { zeroCopyTest } from './helpers/modes';
import {
  dial,
  drain,
  echoUpstream,
  eachTurnUntil,
  pollUntil,
  readAtLeast,
  sendRandom,
  startRedirect,
} from './helpers/net';

// The large-read slab pool (docs/design.md, "The slab budget") and splicing only bulk
// directions under zeroCopy 'auto' (docs/zero-copy.md, "When to splice"). Serial: the pool
// and the engine are process-wide and the tests read their counters.

const MiB = 1024 * 1024;
const NODE_READ = 64 * 1024;
const DEFAULT_BUDGET = largeReadStats().maxBytes;

function restoreBudget(t: ExecutionContext): void {
  t.teardown(() => configureLargeReads({ maxBytes: DEFAULT_BUDGET }));
}

/** Every close summary of `server`, as they come. */
function summaries(server: RedirectServer): CloseSummary[] {
  const list: CloseSummary[] = [];
  server.on('closed', (s: CloseSummary) => list.push(s));
  return list;
}

/** `bytes` random bytes to an echo upstream and back through `port`: true when both hashes match. */
async function echoIntact(port: number, bytes: number, chunk = 256 * 1024): Promise<boolean> {
  const client = await dial(port);
  const back = drain(client);
  const sent = await sendRandom(client, bytes, chunk);
  const got = await back;
  return got.bytes === bytes && got.sha256 === sent;
}

test.serial('the slab budget is never exceeded under many bulk streams, and every stream arrives intact', async (t) => {
  restoreBudget(t);
  const budget = 2.5 * MiB; // two full slabs and a half: most of the 24 streams are refused
  configureLargeReads({ maxBytes: budget });
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port }, zeroCopy: 'off' });
  const closed = summaries(server);
  const before = largeReadStats();
  let peakLeased = 0;
  let peakSlabs = 0;
  let running = true;
  // Sampled every turn of the event loop; the pool reserves and checks in one step, so no
  // lease can be seen past the budget at any turn.
  const sample = (): void => {
    const s = largeReadStats();
    peakLeased = Math.max(peakLeased, s.leasedBytes);
    peakSlabs = Math.max(peakSlabs, s.slabs);
    if (running) setImmediate(sample);
  };
  sample();
  const results = await Promise.all(Array.from({ length: 24 }, () => echoIntact(port, 8 * MiB)));
  running = false;
  t.deepEqual(
    results.filter((ok) => !ok),
    [],
    'every stream intact both ways',
  );
  const after = largeReadStats();
  t.true(peakLeased <= budget, `peak ${peakLeased} bytes leased`);
  t.true(peakLeased > 0 && after.leases > before.leases, 'some directions read large');
  t.true(after.denied > before.denied, 'some directions were refused a slab');
  t.true(peakSlabs > 2, `${peakSlabs} slabs at once: with no room for a whole one the pool grants a part`);
  await eachTurnUntil(() => closed.length === 24);
  t.is(largeReadStats().leasedBytes, 0, 'every slab went back after the flows closed');
  t.is(largeReadStats().slabs, 0);
  t.log(
    `peak ${peakLeased / 1024} KiB in ${peakSlabs} slabs; leases ${after.leases - before.leases}, refusals ${after.denied - before.denied}`,
  );
});

test.serial('a direction denied a slab reads at Node’s size and relays every byte intact', async (t) => {
  restoreBudget(t);
  configureLargeReads({ maxBytes: 0 });
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port }, zeroCopy: 'off' });
  const closed = summaries(server);
  const before = largeReadStats();
  t.true(await echoIntact(port, 32 * MiB));
  await eachTurnUntil(() => closed.length === 1);
  const after = largeReadStats();
  t.is(after.leases, before.leases, 'no slab was leased');
  t.true(after.denied > before.denied);
  const s = closed[0] as CloseSummary;
  for (const side of ['upstream', 'downstream'] as const) {
    t.is(s[side].bytesWritten, 32 * MiB);
    t.true(s[side].reads >= (32 * MiB) / NODE_READ, `${side}: ${s[side].reads} reads, none above 64 KiB`);
  }
});

test.serial('a quiet direction gives its slab back while its connection stays open; an ended one too', async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port }, zeroCopy: 'off' });
  const closed = summaries(server);
  const client: Socket = await dial(port);
  const back = drain(client);
  const before = largeReadStats();
  const bulk = (bytes: number) => {
    const echoed = readAtLeast(client, bytes);
    return sendRandom(client, bytes, 256 * 1024, false).then(() => echoed);
  };
  await bulk(8 * MiB);
  t.true(largeReadStats().leases > before.leases, 'the bulk leased slabs');
  // A short message after the bulk: its read is under 64 KiB, so both directions go quiet.
  const pinged = readAtLeast(client, 4);
  client.write('ping');
  await pinged;
  await eachTurnUntil(() => largeReadStats().slabs === 0);
  t.is(largeReadStats().leasedBytes, 0, 'quiet directions hold no slab');
  t.false(client.destroyed);
  const again = largeReadStats().leases;
  // Bulk again leases again; the end gives it back.
  const echoed = readAtLeast(client, 8 * MiB);
  await sendRandom(client, 8 * MiB, 256 * 1024, false);
  await echoed;
  t.true(largeReadStats().leases > again, 'bulk again, slabs again');
  client.end();
  await back;
  await eachTurnUntil(() => closed.length === 1);
  t.is(largeReadStats().slabs, 0);
  t.is(largeReadStats().leasedBytes, 0);
});

test.serial('configureLargeReads checks its budget with a coded error', (t) => {
  for (const bad of [-1, 1.5, '16M', Number.NaN]) {
    const err = t.throws(() => configureLargeReads({ maxBytes: bad as number }));
    t.is((err as { code?: string }).code, 'ERR_REDIRECT_INVALID_OPTION');
    t.regex(err?.message ?? '', /maxBytes/);
  }
  t.is(
    (t.throws(() => configureLargeReads({ slabs: 4 } as never)) as { code?: string }).code,
    'ERR_REDIRECT_INVALID_OPTION',
  );
  t.is(largeReadStats().maxBytes, DEFAULT_BUDGET, 'a refused budget changes nothing');
});

zeroCopyTest("zeroCopy 'auto': request/response flows stay on the JS path while a bulk flow is spliced", async (t) => {
  const up = await echoUpstream(t);
  const { server, port } = await startRedirect(t, { resolve: { host: '127.0.0.1', port: up.port } });
  const closed = summaries(server);
  const bulk = echoIntact(port, 32 * MiB);
  const small = Promise.all(
    Array.from({ length: 20 }, async () => {
      const c = await dial(port);
      const back = drain(c);
      const sent = await sendRandom(c, 64, 64);
      const got = await back;
      return got.sha256 === sent;
    }),
  );
  t.true(await bulk, 'the bulk flow intact both ways');
  t.deepEqual(
    (await small).filter((ok) => !ok),
    [],
  );
  await eachTurnUntil(() => closed.length === 21);
  const big = closed.filter((s) => s.upstream.bytesRead === 32 * MiB);
  t.is(big.length, 1);
  for (const side of ['upstream', 'downstream'] as const) {
    const d = (big[0] as CloseSummary)[side];
    // The read that showed bulk (and what Node buffered behind it) went through JS first.
    t.is(d.path, 'mixed', `bulk ${side}`);
    t.true(d.zeroCopyBytes > 16 * MiB, `bulk ${side}: ${d.zeroCopyBytes} bytes spliced`);
  }
  for (const s of closed.filter((x) => x.upstream.bytesRead === 64)) {
    t.is(s.upstream.path, 'js');
    t.is(s.downstream.path, 'js');
    t.is(s.upstream.zeroCopyBytes + s.downstream.zeroCopyBytes, 0);
  }
  t.is(closed.filter((x) => x.upstream.bytesRead === 64).length, 20);
});

test.serial(
  'a released slab serves the next lease; kept slabs go once no lease has been live for a while',
  async (t) => {
    restoreBudget(t);
    // A budget of 0 drops what earlier tests left kept: the pool starts empty.
    configureLargeReads({ maxBytes: 0 });
    configureLargeReads({ maxBytes: 4 * MiB });
    t.like(largeReadStats(), { pooledBytes: 0, leasedBytes: 0 });
    const slab = slabPool.lease(MiB);
    if (slab === undefined) return t.fail('a 1 MiB lease under a 4 MiB budget was refused');
    slabPool.release(slab, true);
    t.is(largeReadStats().pooledBytes, MiB, 'kept for the next lease');
    const again = slabPool.lease(MiB);
    t.is(again, slab, 'the next lease gets the kept slab instead of a new allocation');
    t.is(largeReadStats().pooledBytes, 0);
    // A slab whose bytes a chain may still hold is never reused: the pool forgets it.
    slabPool.release(again as Buffer, false);
    t.is(largeReadStats().pooledBytes, 0);
    t.is(largeReadStats().leasedBytes, 0);
    // The linger: kept slabs are dropped once no lease is live (after POOL_LINGER_MS; no bound asserted).
    const third = slabPool.lease(MiB) as Buffer;
    t.not(third, slab);
    slabPool.release(third, true);
    t.is(largeReadStats().pooledBytes, MiB);
    await pollUntil(() => largeReadStats().pooledBytes === 0, 'the pool to drop its kept slabs');
    t.is(largeReadStats().slabs, 0);
    // Lowering the budget under kept slabs drops what no longer fits, at once.
    slabPool.release(slabPool.lease(MiB) as Buffer, true);
    configureLargeReads({ maxBytes: 512 * 1024 });
    t.is(largeReadStats().pooledBytes, 0);
  },
);
