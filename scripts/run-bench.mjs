#!/usr/bin/env node
// `npm run bench`: builds, then runs the benchmarks in bench/ one after the other (never
// concurrently: they would measure each other). Never part of `npm test`.
// `npm run bench -- frame-splitter` runs only the benchmarks whose file name contains the word.
// Settings come from the environment; see the header of each bench/*.bench.mjs.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from './build.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const buildError = await build();
if (buildError) {
  console.error(`build failed: ${buildError}.`);
  process.exit(1);
}

const filters = process.argv.slice(2);
const order = ['frame-splitter.bench.mjs', 'borg-create.bench.mjs', 'audit.bench.mjs'];
const benches = readdirSync(join(root, 'bench'))
  .filter((f) => f.endsWith('.bench.mjs') && (filters.length === 0 || filters.some((w) => f.includes(w))))
  .sort((x, y) => (order.indexOf(x) >>> 0) - (order.indexOf(y) >>> 0) || x.localeCompare(y));
if (benches.length === 0) {
  console.error(`no benchmark matches ${filters.join(', ')}`);
  process.exit(1);
}

let failed = 0;
for (const f of benches) {
  console.log(`\n=== ${f} ===`);
  // --expose-gc: a benchmark may collect garbage between timed passes, so one pass's garbage is
  // not collected on the next one's clock.
  const r = spawnSync(process.execPath, ['--expose-gc', join(root, 'bench', f)], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`${f} failed (${r.status ?? r.signal})`);
    failed++;
  }
}
process.exit(failed === 0 ? 0 : 1);
