import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import test from 'ava';
import { generateRules } from '../lib/tools/rules';
import { gatedTest, Netns, netnsUnavailable } from './helpers/netns';

/**
 * The faults example, transparent: inside a namespace, a client's plain HTTP requests to a
 * TEST-NET address are redirected by iptables to the example (resolve: 'netfilter') without
 * the client being told; one Host gets latency, another a reset, and a Toxiproxy API call made
 * inside the namespace removes the reset from the running proxy.
 */
const netnsTest = gatedTest(test, netnsUnavailable());
const EXAMPLE = join(__dirname, '..', 'examples', 'faults.js');

netnsTest('faults example, transparent: latency and reset by Host on real traffic, under the API', async (t) => {
  const ns = await Netns.create(t, 'flt');
  await ns.ip('addr', 'add', '198.51.100.10/32', 'dev', 'lo');
  const service = spawn(
    'ip',
    ['netns', 'exec', ns.name, 'python3', '-m', 'http.server', '80', '--bind', '198.51.100.10'],
    { stdio: 'ignore' },
  );
  const proxy = spawn('ip', ['netns', 'exec', ns.name, process.execPath, EXAMPLE], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TRANSPARENT: '1' },
  });
  t.teardown(() => {
    proxy.kill();
    service.kill();
  });
  let out = '';
  proxy.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  while (!out.includes('# teardown')) await once(proxy.stdout, 'data');
  const port = Number(/proxy on :(\d+)/.exec(out)?.[1]);
  t.true(port > 0, out);
  t.true(out.includes('-j REDIRECT --to-ports'), 'the example prints its rules');
  // The service answers directly before the rules go in (python starts slower than node).
  await ns.exec(
    'curl',
    '-s',
    '-o',
    '/dev/null',
    '--retry',
    '50',
    '--retry-connrefused',
    '--retry-delay',
    '0',
    '--retry-max-time',
    '20',
    'http://198.51.100.10/',
  );
  const rules = generateRules({ port, mark: 0x1, ports: [80] });
  await ns.apply(rules.setup);
  t.teardown(() => ns.apply(rules.teardown).catch(() => {}));

  const curl = async (host: string): Promise<{ code: string; seconds: number } | { error: string }> => {
    try {
      const text = await ns.exec(
        'curl',
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{time_total}',
        '-H',
        `Host: ${host}`,
        'http://198.51.100.10/',
      );
      const [code = '', seconds = ''] = text.trim().split(' ');
      return { code, seconds: Number(seconds) };
    } catch (err) {
      return { error: String(err) };
    }
  };
  const plain = await curl('plain.test');
  t.like(plain, { code: '200' }, JSON.stringify(plain));
  const slow = await curl('api.test');
  t.like(slow, { code: '200' });
  t.true('seconds' in slow && slow.seconds >= 0.19, JSON.stringify(slow));
  const flaky = await curl('flaky.test');
  t.true('error' in flaky, JSON.stringify(flaky)); // curl: connection reset (exit 56)

  // Any Toxiproxy client works on it; here plain HTTP from inside the namespace.
  await ns.exec('curl', '-s', '-f', '-X', 'DELETE', 'http://127.0.0.1:8474/proxies/app/toxics/flaky');
  t.like(await curl('flaky.test'), { code: '200' });
});
