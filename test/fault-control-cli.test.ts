import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Toxiproxy } from 'toxiproxy-node-client';
import { main } from '../lib/tools/cli';
import { echoUpstream } from './helpers/net';

const BIN = join(__dirname, '..', '..', 'bin', 'rxredirect.js');

test('rxredirect faults serves the API until SIGTERM, with proxies from --config', async (t) => {
  const up = await echoUpstream(t);
  const config = join(tmpdir(), `rxredirect-faults-${process.pid}.json`);
  t.teardown(() => rm(config, { force: true }));
  await writeFile(config, JSON.stringify([{ name: 'svc', listen: '127.0.0.1:0', upstream: `127.0.0.1:${up.port}` }]));
  const child = spawn(process.execPath, [BIN, 'faults', '--api', '127.0.0.1:0', '--config', config, '--seed', '7'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill();
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  while (!out.includes('\n')) await once(child.stdout, 'data');
  const url = /http:\/\/\S+/.exec(out)?.[0];
  t.truthy(url, out);
  t.regex(out, /seed 7/);
  const client = new Toxiproxy(url as string);
  const svc = await client.get('svc');
  t.is(svc.upstream, `127.0.0.1:${up.port}`);
  await svc.addToxic({
    name: 'l',
    type: 'latency',
    stream: 'downstream',
    toxicity: 1,
    attributes: { latency: 5, jitter: 0 },
  });
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.is(code, 0);
});

test('rxredirect faults: a bad --api is a usage error (exit 2), a remote one needs --allow-remote', async (t) => {
  let stderr = '';
  const io = { stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) } };
  t.is(await main(['faults', '--api', 'nonsense'], io), 2);
  t.regex(stderr, /--api: expected host:port/);
  stderr = '';
  t.is(await main(['faults', '--api', '0.0.0.0:0'], io), 2);
  t.regex(stderr, /allowRemote/);
});
