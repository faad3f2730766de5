import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createFaultControl, DEFAULT_API_PORT } from './control-server';
import { joinHostPort, splitHostPort } from '../common/host-port';

interface Io {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/**
 * `rxredirect faults`: the control API as a process of its own, the way `toxiproxy-server` runs.
 * Prints the API's address, then serves until SIGINT or SIGTERM (exit code 0).
 */
export async function runFaults(args: string[], io: Io, usage: (message: string) => Error): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      api: { type: 'string' },
      config: { type: 'string' },
      seed: { type: 'string' },
      'allow-remote': { type: 'boolean' },
    },
  });
  let api: { host: string; port: number };
  try {
    api = splitHostPort(values.api ?? `127.0.0.1:${DEFAULT_API_PORT}`, '--api');
  } catch (err) {
    throw usage((err as Error).message);
  }
  const seed = values.seed === undefined ? undefined : /^\d+$/.test(values.seed) ? Number(values.seed) : values.seed;
  const control = createFaultControl({
    host: api.host || '127.0.0.1',
    port: api.port,
    allowRemote: values['allow-remote'] ?? false,
    ...(seed === undefined ? {} : { seed }),
  });
  const bound = await control.listen();
  const url = `http://${joinHostPort(bound.host, bound.port)}`;
  if (values.config !== undefined) {
    const body = await readFile(values.config, 'utf8');
    const res = await fetch(`${url}/populate`, { method: 'POST', body });
    if (!res.ok) {
      await control.close();
      throw new Error(`--config ${values.config}: ${(await res.text()).trim()}`);
    }
  }
  io.stdout.write(`faults: Toxiproxy API on ${url}${seed === undefined ? '' : ` (seed ${String(seed)})`}\n`);
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  await control.close();
  return 0;
}
