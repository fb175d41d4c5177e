#!/usr/bin/env node
// `npm run fuzz`: bundles the fuzzer (test/fuzz, with the src/ code it drives) into dist/fuzz and
// runs it; see test/fuzz/fuzz.ts for the settings. Never part of `npm test`.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const esbuild = await import('esbuild');
try {
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: { fuzz: 'test/fuzz/fuzz.ts', worker: 'test/fuzz/worker.ts' },
    outdir: 'dist/fuzz',
    bundle: true,
    outExtension: { '.js': '.mjs' },
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'warning',
  });
} catch {
  console.error('bundling the fuzzer failed; see the errors above.');
  process.exit(2);
}
// --expose-gc: the workers measure the heap after a full collection (a leak across inputs).
const r = spawnSync(process.execPath, ['--expose-gc', '--enable-source-maps', join(root, 'dist/fuzz/fuzz.mjs'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 2);
