// What the built CLI parses before it runs a command: `borgkeep borg-serve` starts once per SSH
// session, and every module its entry imports statically is read and compiled for every backup
// (zod alone, pulled in once by the retention command, was 850 KB of the entry's 1.1 MB). The
// entry stays small and free of the libraries only some commands need; the forced command's own
// modules (the guard, its runtime, the store) bring no validation or scheduling library either.
// Read from dist/ as the bundler wrote it: static imports are followed, `import()` is not.

import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect, test } from 'vitest';

import { ROOT } from '../helpers/borgkeep-env.js';

const DIST = join(ROOT, 'dist', 'cli');

/** Every file a module loads through its static imports, itself included. */
function staticClosure(file: string): string[] {
  const seen = new Set<string>();
  const todo = [file];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*"(\.[^"]+)"|^import\s*"(\.[^"]+)"/gms)) todo.push(join(dirname(f), m[1] ?? m[2]));
  }
  return [...seen];
}

/** The npm packages bundled into these files (esbuild marks each module with a path comment). */
function packagesIn(files: string[]): string[] {
  const names = files.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/^\/\/ (?:\S*\/)?node_modules\/((?:@[^/]+\/)?[^/]+)\//gm)].map((m) => m[1]));
  return [...new Set(names)].sort();
}

const entry = join(DIST, 'borgkeep.mjs');
/** The chunk `borgkeep.mjs` loads with import() for `name` (guard, guard-runtime, database). */
function dynamicChunk(name: string): string {
  const m = new RegExp(`"\\./chunks/(${name}-[A-Z0-9]+\\.mjs)"`).exec(readFileSync(entry, 'utf8'));
  if (!m) throw new Error(`no chunk '${name}' in ${entry}`);
  return join(DIST, 'chunks', m[1]);
}

test("the CLI's entry loads only commander, in under 400 KB", () => {
  const files = staticClosure(entry);
  expect(packagesIn(files)).toEqual(['commander']);
  const bytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
  expect(bytes).toBeLessThan(400 * 1024);
});

test('the forced command loads no zod or croner: its guard, runtime and store', () => {
  const files = ['guard', 'guard-runtime', 'database'].flatMap((name) => staticClosure(dynamicChunk(name)));
  const packages = packagesIn(files);
  expect(packages).toContain('kysely'); // the check sees the bundled packages at all
  expect(packages).not.toContain('zod');
  expect(packages).not.toContain('croner');
});
