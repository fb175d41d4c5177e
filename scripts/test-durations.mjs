#!/usr/bin/env node
// Writes test/durations.json (test file -> seconds), which test/sequencer.ts orders the suite by
// (longest first). Run it after a full `npm test` and commit the result:
//   node scripts/test-durations.mjs                       # from test-results/file-durations.json
//   node scripts/test-durations.mjs path/to/results.json  # or from vitest's own results cache
// Input: scripts/durations-reporter.mjs's file-durations.json ({file: seconds}), or vitest's
// results cache (node_modules/.vite/vitest/<hash>/results.json: {results: [[":file", {duration: ms}]]}).
// Files in the input replace their old times; files not in it keep theirs (a partial run updates
// only what it ran); files that no longer exist are dropped. It never touches a test.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const input = process.argv[2] ?? join(root, 'test-results', 'file-durations.json');
const target = join(root, 'test', 'durations.json');

/** file -> seconds from either input format. */
function readDurations(text) {
  const data = JSON.parse(text);
  const out = {};
  if (Array.isArray(data?.results)) {
    for (const [key, value] of data.results) {
      // The cache's keys are "<project>:<file relative to the root>"; one unnamed project here.
      const file = String(key).replace(/^[^:]*:/, '');
      if (Number.isFinite(value?.duration)) out[file] = Math.round(value.duration / 100) / 10;
    }
    return out;
  }
  for (const [file, seconds] of Object.entries(data ?? {})) if (Number.isFinite(seconds)) out[file] = seconds;
  return out;
}

if (!existsSync(input)) {
  console.error(`${input} does not exist: run npm test first (it writes it), or name vitest's results.json`);
  process.exit(1);
}
const fresh = readDurations(readFileSync(input, 'utf8'));
const old = existsSync(target) ? JSON.parse(readFileSync(target, 'utf8')) : {};
const merged = {};
for (const [file, seconds] of Object.entries({ ...old, ...fresh })) if (existsSync(join(root, file))) merged[file] = seconds;
const sorted = Object.fromEntries(Object.entries(merged).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1)));
writeFileSync(target, `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`${Object.keys(fresh).length} file times read, ${Object.keys(sorted).length} in test/durations.json`);
