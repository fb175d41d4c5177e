#!/usr/bin/env node
// `npm run build`: type-checks and compiles src/ to dist/ (tsc), then bundles the CLI into one
// file, dist/cli/borgkeep.mjs, which bin/borgkeep runs, then builds the web console into
// dist/web (Vite). The bundle is what sshd starts for every
// backup session: one file instead of hundreds of ES modules (Kysely alone has ~400) halves the
// start-up time of `borgkeep borg-serve` (measured: 0.17 s -> 0.09 s wall). better-sqlite3, ssh2
// and pino stay outside (native addons, worker files).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

/** Builds dist/; returns null, or why it failed (the tools have printed the details). */
export async function build() {
  const require = createRequire(import.meta.url);
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (tsc.status !== 0) return 'the TypeScript build failed; see the errors above';
  const esbuild = await import('esbuild');
  let result;
  try {
    result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: { borgkeep: 'src/cli/main.ts' },
      outdir: 'dist/cli',
      // What a command imports dynamically is its own chunk, compiled only when that command
      // runs: the forced command and the audit do not parse the API server or zod.
      splitting: true,
      chunkNames: 'chunks/[name]-[hash]',
      bundle: true,
      outExtension: { '.js': '.mjs' },
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // Loaded at run time from node_modules: native addons (better-sqlite3, ssh2's optional
      // crypto binding), pino's worker-thread files and xz-decompress's WebAssembly stay in node_modules.
      external: ['better-sqlite3', 'ssh2', 'pino', 'xz-decompress', '@node-rs/argon2'],
      logLevel: 'warning',
      // Bundled CommonJS dependencies call require() for node's own modules.
      banner: { js: "import { createRequire as __borgkeepRequire } from 'node:module'; const require = __borgkeepRequire(import.meta.url);" },
      write: false,
    });
  } catch {
    return 'bundling the CLI failed; see the errors above';
  }
  writeOutput(result.outputFiles);
  buildNative();
  return buildConsole();
}

/**
 * The native object checker (native/objcheck.c, what `--verify-objects` runs per object) into
 * dist/native/objcheck.node, with the C compiler and the headers Node.js installs beside itself;
 * it links against the OpenSSL that Node.js exports, nothing else. Without a compiler borgkeep
 * still works (src/native/objcheck.ts falls back to JavaScript, several times slower), so a
 * failure is a warning here; the suite's test of the module says it is missing.
 */
export function buildNative() {
  const source = join(root, 'native', 'objcheck.c');
  const target = join(root, 'dist', 'native', 'objcheck.node');
  if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) return;
  const include = join(dirname(dirname(process.execPath)), 'include', 'node');
  if (!existsSync(join(include, 'node_api.h'))) {
    console.warn(`build: warning: Node.js's headers are not in ${include}; --verify-objects runs in JavaScript.`);
    return;
  }
  mkdirSync(dirname(target), { recursive: true });
  const temp = `${target}.tmp-${process.pid}`;
  // OpenSSL 3 marks SHA256_Init and friends deprecated; they are what runs without an allocation per object.
  const cc = spawnSync(process.env.CC ?? 'cc', ['-std=c11', '-O3', '-fPIC', '-shared', '-Wall', '-Wextra', '-Wno-deprecated-declarations', '-fvisibility=hidden', `-I${include}`, '-o', temp, source], { cwd: root, stdio: 'inherit' });
  if (cc.status !== 0) {
    rmSync(temp, { force: true });
    console.warn('build: warning: the native object checker did not compile (see above); --verify-objects runs in JavaScript.');
    return;
  }
  renameSync(temp, target);
}

/**
 * The web console (web/: React + Vite) into dist/web, which `borgkeep serve` serves at `/`.
 * Type-checked first (Vite only strips types). Its code never enters the CLI bundle: the
 * server reads the built files (src/api/console-static.ts).
 */
export async function buildConsole() {
  const require = createRequire(import.meta.url);
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'web/tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (tsc.status !== 0) return 'the console (web/) does not type-check; see the errors above';
  const vite = await import('vite');
  try {
    await vite.build({ configFile: join(root, 'web', 'vite.config.ts'), logLevel: 'warn' });
  } catch (error) {
    console.error(error);
    return 'building the console (web/) failed; see the errors above';
  }
  return null;
}

/**
 * Writes the bundle so that a borgkeep process running meanwhile (a backup session, the server,
 * a test) never finds its entry file naming a chunk that is not there: the chunks first (their
 * names carry a hash of their content), then the entry file by rename, then chunks of earlier
 * builds, once they are old enough that no process started before can still be loading them.
 */
function writeOutput(files) {
  const chunksDir = join(root, 'dist', 'cli', 'chunks');
  mkdirSync(chunksDir, { recursive: true });
  const put = (f) => {
    writeFileSync(`${f.path}.tmp-${process.pid}`, f.contents);
    renameSync(`${f.path}.tmp-${process.pid}`, f.path);
  };
  const chunks = files.filter((f) => dirname(f.path) === chunksDir);
  chunks.forEach(put);
  files.filter((f) => dirname(f.path) !== chunksDir).forEach(put);
  const written = new Set(chunks.map((f) => f.path));
  const stale = Date.now() - STALE_CHUNK_MS;
  for (const name of readdirSync(chunksDir)) {
    const path = join(chunksDir, name);
    if (!written.has(path) && statSync(path).mtimeMs < stale) rmSync(path, { force: true });
  }
}

/** Chunks of an earlier build are removed once they are this old. */
const STALE_CHUNK_MS = 10 * 60 * 1000;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const error = await build();
  if (error) {
    console.error(`build: ${error}.`);
    process.exit(1);
  }
}
