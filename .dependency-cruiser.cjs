// The dependency rule of docs/architecture.md, enforced in CI (`npm run check:deps`).
// A folder of lib/ may import only from its own folder and from the folders in the layers
// below it; folders in one layer do not import each other. middleware/ is a client of the
// core; nothing shipped imports benchmarks/, test/ or examples/.
const LAYERS = [
  ['lib/common'],
  ['lib/platform'],
  ['lib/proxy-protocol'],
  ['lib/net'],
  ['lib/zero-copy'],
  ['lib/capture', 'lib/egress'],
  ['lib/pipeline'],
  ['lib/config'],
  ['lib/connection'],
  ['lib/server'],
  ['middleware'],
  ['lib/fault-control', 'lib/workers', 'lib/metrics'],
  ['lib/runner'],
  ['lib/tools'],
  ['lib/index.ts'],
];

const esc = (s) => s.replace(/[.]/g, '\\.');
const asPath = (folder) => (folder.endsWith('.ts') ? `^${esc(folder)}$` : `^${esc(folder)}/`);

const layerRules = LAYERS.flatMap((layer, i) => {
  const higher = LAYERS.slice(i + 1).flat();
  return layer.flatMap((folder) => {
    const peers = layer.filter((f) => f !== folder);
    const forbidden = [...higher, ...peers];
    if (forbidden.length === 0) return [];
    return {
      name: `layer:${folder}`,
      comment: `${folder} may not import a folder of its own layer or of a higher one (docs/architecture.md)`,
      severity: 'error',
      from: { path: asPath(folder) },
      to: { path: forbidden.map(asPath) },
    };
  });
});

const config = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles, type-only imports included.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'shipped-code-stays-shipped',
      comment: 'lib/ and middleware/ never import benchmarks/, test/ or examples/.',
      severity: 'error',
      from: { path: '^(lib|middleware)/' },
      to: { path: '^(benchmarks|test|examples)/' },
    },
    {
      name: 'every-lib-folder-has-a-layer',
      comment: 'A new folder in lib/ gets its layer here and in docs/architecture.md before it is imported.',
      severity: 'error',
      from: {},
      to: { path: '^lib/', pathNot: LAYERS.flat().map(asPath) },
    },
    {
      name: 'every-lib-folder-has-a-layer-importing',
      comment: 'A new folder in lib/ gets its layer here and in docs/architecture.md.',
      severity: 'error',
      from: { path: '^lib/', pathNot: LAYERS.flat().map(asPath) },
      to: {},
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6', 'cjs'],
  },
};

// The layer table, for test/architecture.test.ts (which checks docs/architecture.md against it);
// not enumerable, so dependency-cruiser's schema never sees it.
Object.defineProperty(config, 'layers', { value: LAYERS, enumerable: false });
module.exports = config;
