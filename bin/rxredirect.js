#!/usr/bin/env node
// The composition root: the library's commands, plus `bench` from the benchmark
// harness (dist/benchmarks), which the library itself never imports.
const { run } = require('../dist/lib/tools/cli.js');

let extra = {};
try {
  extra = { bench: require('../dist/benchmarks/cli-command.js').benchCommand };
} catch (err) {
  if (err.code !== 'MODULE_NOT_FOUND') throw err;
}
run(extra);
