#!/usr/bin/env node

require('../dist/lib/cli.js').run();
