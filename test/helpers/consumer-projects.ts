import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The four kinds of project a user installs rxredirect into, each with the same
 * small proxy: an echo upstream, a redirect server with a static resolver and
 * two middlewares from `rxredirect/middleware` (replace 'ping' by 'PONG' on the
 * way up, tap the byte counts), one client on loopback. The program prints one
 * JSON line: the reply, the close reason, the tapped bytes, whether the addon
 * loaded and which addon files the process has mapped.
 */

export type ConsumerKind = 'esm-ts' | 'cjs-ts' | 'cjs-js' | 'esm-js';

export interface ConsumerProject {
  readonly kind: ConsumerKind;
  readonly dir: string;
  /** The TypeScript project to type-check, if any. */
  readonly tsconfig: string | undefined;
  /** What `node` runs (after tsc for TypeScript). */
  readonly main: string;
}

export interface ProxyReport {
  readonly reply: string;
  readonly reason: string;
  readonly tapped: number;
  readonly addon: boolean;
  readonly loaded: readonly string[];
}

/** One source for all four: `ts` adds the type annotations (valid strict TypeScript, or plain JS). */
function program(kind: ConsumerKind): string {
  const ts = kind.endsWith('-ts');
  const esm = kind.startsWith('esm');
  const imports =
    esm || ts
      ? [
          "import { once } from 'node:events';",
          "import { readFileSync } from 'node:fs';",
          "import { connect, createServer } from 'node:net';",
          ts ? "import type { CloseSummary, RedirectServerOptions } from 'rxredirect';" : '',
          "import { createRedirectServer, zeroCopyStats } from 'rxredirect';",
          "import { replace, tap } from 'rxredirect/middleware';",
        ]
      : [
          "const { once } = require('node:events');",
          "const { readFileSync } = require('node:fs');",
          "const { connect, createServer } = require('node:net');",
          "const { createRedirectServer, zeroCopyStats } = require('rxredirect');",
          "const { replace, tap } = require('rxredirect/middleware');",
        ];
  return `${imports.filter(Boolean).join('\n')}

async function main()${ts ? ': Promise<void>' : ''} {
  const upstream = createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const address = upstream.address();
  if (address === null || typeof address === 'string') throw new Error('no upstream address');
  let tapped = 0;
  const options${ts ? ': RedirectServerOptions' : ''} = {
    resolve: { host: '127.0.0.1', port: address.port },
    middleware: [
      replace({ search: 'ping', replacement: 'PONG', direction: 'upstream' }),
      tap({ onEnd: (end) => { tapped += end.bytes; } }),
    ],
  };
  const server = createRedirectServer(options);
  const closed = new Promise${ts ? '<CloseSummary>' : ''}((resolve) => server.once('closed', resolve));
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let reply = '';
  client.on('data', (chunk) => { reply += chunk; });
  client.end('ping ping');
  await once(client, 'end');
  client.destroy();
  const summary = await closed;
  const loaded = readFileSync('/proc/self/maps', 'utf8')
    .split('\\n')
    .map((line) => line.slice(line.indexOf('/')))
    .filter((path) => path.endsWith('.node'));
  console.log(JSON.stringify({ reply, reason: summary.reason, tapped, addon: zeroCopyStats() !== undefined, loaded: [...new Set(loaded)] }));
  await server.close();
  upstream.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
`;
}

/** Writes a fresh project of `kind` under `parent` (no dependencies yet). */
export function writeConsumer(parent: string, kind: ConsumerKind, typeRoots: string): ConsumerProject {
  const dir = join(parent, kind);
  mkdirSync(join(dir, 'src'), { recursive: true });
  const esm = kind.startsWith('esm');
  const pkg = {
    name: `rxredirect-consumer-${kind}`,
    version: '1.0.0',
    private: true,
    ...(esm ? { type: 'module' } : {}),
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  const source = program(kind);
  if (!kind.endsWith('-ts')) {
    const main = join(dir, 'src', esm ? 'main.mjs' : 'main.js');
    writeFileSync(main, source);
    return { kind, dir, tsconfig: undefined, main };
  }
  writeFileSync(join(dir, 'src', 'main.ts'), source);
  // Node's types come from the repository (typeRoots) so that the install needs nothing but rxredirect.
  const common = {
    target: 'ES2022',
    strict: true,
    rootDir: 'src',
    outDir: 'out',
    types: ['node'],
    typeRoots: [typeRoots],
    // As most projects have it; checking all of @types/node and rxjs again would double the test's time.
    skipLibCheck: true,
  };
  const compilerOptions =
    kind === 'esm-ts'
      ? {
          ...common,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          exactOptionalPropertyTypes: true,
          verbatimModuleSyntax: true,
        }
      : { ...common, module: 'commonjs', moduleResolution: 'node10' };
  const tsconfig = join(dir, 'tsconfig.json');
  writeFileSync(tsconfig, `${JSON.stringify({ compilerOptions, include: ['src'] }, null, 2)}\n`);
  return { kind, dir, tsconfig, main: join(dir, 'out', 'main.js') };
}
