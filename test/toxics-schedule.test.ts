import test from 'ava';
import { Observable } from 'rxjs';
import { testMiddleware } from '../lib/index';
import { toxics } from '../middleware/index';

// The random choices: the same seed gives the same schedule; toxicity 0 and 1 are what they say.

const INPUT = Buffer.alloc(64 * 1024, 7);

async function sliceSizes(seed: number | string, id = 1): Promise<number[]> {
  const r = await testMiddleware(
    toxics.slicer({ average_size: 1000, size_variation: 400, delay: 0, direction: 'upstream', seed }),
    { upstream: [INPUT], id },
  );
  return r.upstream.filter((c) => c.length > 0).map((c) => c.length);
}

test('the same seed cuts the same slices; another seed, or another connection, cuts others', async (t) => {
  const a = await sliceSizes(42);
  const b = await sliceSizes(42);
  t.deepEqual(a, b);
  t.is(
    a.reduce((x, y) => x + y, 0),
    INPUT.length,
  );
  t.true(a.length > 40, `only ${a.length} slices`);
  t.notDeepEqual(await sliceSizes(43), a);
  t.notDeepEqual(await sliceSizes(42, 2), a);
});

/** When each chunk left a latency toxic with jitter, relative to the start (ms). */
async function jitterSchedule(seed: number): Promise<number[]> {
  const chunks = Array.from({ length: 6 }, (_, i) => Buffer.from([i]));
  const times: number[] = [];
  const started = performance.now();
  await testMiddleware(
    [
      toxics.latency({ latency: 100, jitter: 80, direction: 'upstream', seed }),
      // records the time each chunk comes out of the toxic
      () => ({
        upstream: (source) =>
          new Observable<Buffer>((sub) =>
            source.subscribe({
              next: (c) => {
                if (c.length > 0) times.push(performance.now() - started);
                sub.next(c);
              },
              error: (e) => sub.error(e),
              complete: () => sub.complete(),
            }),
          ),
      }),
    ],
    { upstream: chunks },
  );
  return times;
}

test('jitter comes from the seeded stream of its connection and direction; chunks never overtake each other', async (t) => {
  // The draws the latency toxic makes (one per chunk) repeat with the seed, and differ per connection.
  const draws = (seed: number, id: number) => {
    const r = toxics.createRandom(seed, 'latency', id, 'upstream');
    r.next(); // the toxicity draw comes first
    return Array.from({ length: 6 }, () => r.below(160) - 80);
  };
  t.deepEqual(draws(7, 1), draws(7, 1));
  t.notDeepEqual(draws(7, 1), draws(7, 2));
  t.notDeepEqual(draws(7, 1), draws(8, 1));
  const a = await jitterSchedule(7);
  t.is(a.length, 6);
  for (let i = 1; i < a.length; i++) t.true((a[i] as number) >= (a[i - 1] as number), `${a}`);
  // Each chunk waits at least its drawn delay (100 ± 80 ms), less a timer's rounding.
  const first = 100 + (draws(7, 1)[0] as number);
  t.true((a[0] as number) >= first - 2, `first chunk after ${a[0]} ms, drawn ${first}`);
});

async function delayedConnections(toxicity: number, seed: number, n = 20): Promise<number[]> {
  const hit: number[] = [];
  for (let id = 1; id <= n; id++) {
    const r = await testMiddleware(toxics.limitData({ bytes: 0, direction: 'upstream', toxicity, seed }), {
      upstream: ['x'],
      id,
    });
    if (r.ended === 'error') hit.push(id);
  }
  return hit;
}

test('toxicity 1 hits every connection, 0 none; in between, the same seed hits the same ones', async (t) => {
  t.deepEqual(await delayedConnections(0, 1), []);
  t.is((await delayedConnections(1, 1)).length, 20);
  const half = await delayedConnections(0.5, 99);
  t.deepEqual(await delayedConnections(0.5, 99), half);
  t.true(half.length > 2 && half.length < 18, `hit ${half.length} of 20`);
  const r = await testMiddleware(toxics.limitData({ bytes: 0, direction: 'upstream' }), { upstream: ['x'] });
  t.is(r.error?.code, 'ERR_REDIRECT_FAULT_LIMIT');
});
