// Shared pieces of the benchmarks: child processes, fresh random source data, the two BORG_RSH
// scripts (plain `borg serve`, and a stand-in for sshd running `borgkeep borg-serve`), medians,
// and bench/results/latest.json. Benchmarks never run in `npm test`; they only ever write under
// a temp directory they remove again, and under bench/results/.

import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const BORGKEEP = join(ROOT, 'bin', 'borgkeep');
export const RESULTS = join(ROOT, 'bench', 'results', 'latest.json');
export const PASSPHRASE = 'borgkeep benchmark passphrase';
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Runs a command to its end; stdout/stderr are kept unless `inherit`. */
export function run(cmd, args, { env = process.env, cwd, inherit = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', inherit ? 'inherit' : 'pipe', inherit ? 'inherit' : 'pipe'] });
    const out = [];
    const err = [];
    child.stdout?.on('data', (d) => out.push(d));
    child.stderr?.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? 128, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
  });
}

export async function runOk(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r;
}

/** A temp directory that is removed on exit, also after Ctrl-C or an error. */
export function tempRoot(label) {
  const dir = mkdtempSync(join(tmpdir(), `${label}-`));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
  return { dir, cleanup };
}

/** Fresh random files (incompressible, never seen before, so nothing dedups). */
export function writeRandomTree(dir, totalBytes, fileBytes = 64 * MiB) {
  mkdirSync(dir, { recursive: true });
  const buf = Buffer.allocUnsafe(Math.min(fileBytes, totalBytes));
  for (let i = 0, left = totalBytes; left > 0; i++) {
    const n = Math.min(buf.length, left);
    randomFillSync(buf, 0, n);
    writeFileSync(join(dir, `random-${String(i).padStart(4, '0')}.bin`), buf.subarray(0, n));
    left -= n;
  }
  return dir;
}

/** Flushes dirty pages, so one run's writes are not paid for by the next run. */
export function syncDisks() {
  spawnSync('sync');
}

function script(path, body) {
  writeFileSync(path, `#!/bin/sh\n${body}`);
  chmodSync(path, 0o755);
  return path;
}

// borg runs: $BORG_RSH [-p PORT] HOST borg serve [--info|--debug|--umask=...]
const SKIP_SSH_ARGS = `while [ $# -gt 0 ]; do case "$1" in -p) shift 2;; -*) shift;; *) break;; esac; done
shift
`;

// Without exec, so that with BENCH_CPU_LOG=FILE the script can append `times` to FILE: the
// user and system CPU of everything it ran (borg serve; for the guard, node plus its borg serve).
const CPU_LOG = `status=$?
[ -n "$BENCH_CPU_LOG" ] && times >> "$BENCH_CPU_LOG"
exit $status
`;

/**
 * BORG_RSH running plain `borg serve --restrict-to-repository $BENCH_REPO` with the same minimal
 * environment borgkeep gives its child (src/guard/borg-child.ts). With BENCH_APPEND_ONLY=1 it adds
 * --append-only, as borgkeep does for every role but full. With BENCH_RECORD=FILE, the client's
 * bytes are also written to FILE (tee) on their way to borg serve. With BENCH_PASSTHROUGH=1, borg
 * serve runs behind bench/lib/passthrough.mjs: a node process that only pipes, the floor of any
 * proxy written in node.
 */
export function writePlainRsh(dir) {
  const home = join(dir, 'plain-serve-home');
  mkdirSync(home, { recursive: true });
  return script(
    join(dir, 'plain-rsh'),
    `${SKIP_SSH_ARGS}set -- env -i PATH="$PATH" LANG=C.UTF-8 HOME="${home}" BORG_BASE_DIR="${home}" borg serve --restrict-to-repository "$BENCH_REPO"
[ "$BENCH_APPEND_ONLY" = 1 ] && set -- "$@" --append-only
${process.env.BENCH_PLAIN_WIDE_PIPES === '1' ? `perl -e 'fcntl(STDIN, 1031, 1048576) && fcntl(STDOUT, 1031, 1048576) or exit 1' || echo 'BENCH_PLAIN_WIDE_PIPES: the pipes were not widened' >&2
` : ''}[ -n "$BENCH_PASSTHROUGH" ] && set -- "${process.execPath}" "${join(ROOT, 'bench', 'lib', 'passthrough.mjs')}" "$@"
if [ -n "$BENCH_RECORD" ]; then
  tee "$BENCH_RECORD" | "$@"
else
  "$@"
fi
${CPU_LOG}`,
  );
}

/**
 * BORG_RSH standing in for sshd with the forced command `borgkeep borg-serve --key $BENCH_KEY`,
 * as in test/helpers/borgkeep-env.ts. BENCH_CPU_PROF=DIR runs the guard under `node --cpu-prof`;
 * BENCH_GUARD_CPU=FILE preloads report-cpu.mjs, which appends the guard process's own user and
 * system seconds (without its child borg serve) to FILE when it exits.
 */
export function writeGuardRsh(dir, dataDir, borgkeep = BORGKEEP, name = 'guard-rsh') {
  return script(
    join(dir, name),
    `${SKIP_SSH_ARGS}export SSH_ORIGINAL_COMMAND="$*"
export SSH_CONNECTION="127.0.0.1 40022 127.0.0.1 22"
set -- "${process.execPath}"
[ -n "$BENCH_CPU_PROF" ] && set -- "$@" --cpu-prof --cpu-prof-dir="$BENCH_CPU_PROF"
[ -n "$BENCH_GUARD_CPU" ] && set -- "$@" --import="${pathToFileURL(join(ROOT, 'bench', 'lib', 'report-cpu.mjs')).href}"
"$@" "${borgkeep}" --data-dir "${dataDir}" borg-serve --key "$BENCH_KEY"
${CPU_LOG}`,
  );
}

/** Sums the children's user + system seconds of every `times` report in a CPU log. */
export function readCpuLog(file) {
  if (!existsSync(file)) return null;
  const secs = (t) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  };
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  let total = 0;
  // `times` prints two lines: the shell's own user/sys, then its children's.
  for (let i = 1; i < lines.length; i += 2) total += lines[i].trim().split(/\s+/).map(secs).reduce((a, b) => a + b, 0);
  return total;
}

/**
 * What report-cpu.mjs appended to FILE (one line per guard process): the guard's own CPU
 * seconds (user + system, summed) and its peak RSS in MiB (the largest), or null without a file.
 */
export function readGuardCpuLog(file) {
  if (!existsSync(file)) return null;
  let cpu = 0;
  let system = 0;
  let maxRssMiB = 0;
  const more = { pageFaults: 0, gcs: 0, fullGcs: 0, gcMs: 0 };
  for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
    const [user, sys, rssKiB, faults = 0, gcs = 0, fullGcs = 0, gcMs = 0] = line.split(' ').map(Number);
    cpu += user + sys;
    system += sys;
    maxRssMiB = Math.max(maxRssMiB, (rssKiB ?? 0) / 1024);
    more.pageFaults += faults;
    more.gcs += gcs;
    more.fullGcs += fullGcs;
    more.gcMs += gcMs;
  }
  return { cpu, system, maxRssMiB, ...more };
}

/** The borg client's environment: its own base dir, so no cache is shared between runs. */
export function borgClientEnv(baseDir, rsh, extra = {}) {
  mkdirSync(baseDir, { recursive: true });
  return {
    PATH: process.env.PATH,
    HOME: baseDir,
    LANG: 'C.UTF-8',
    BORG_BASE_DIR: baseDir,
    BORG_RSH: rsh,
    BORG_PASSPHRASE: PASSPHRASE,
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    ...extra,
  };
}

export function borgVersion() {
  const r = spawnSync('borg', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const fmt = (x, digits = 2) => x.toFixed(digits);

/** Prints rows (arrays of cells) as an aligned text table; the first row is the header. */
export function printTable(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
}

/** Stores one benchmark's results under its name in bench/results/latest.json. */
export function saveResults(name, results) {
  let all = {};
  if (existsSync(RESULTS)) {
    try {
      all = JSON.parse(readFileSync(RESULTS, 'utf8'));
    } catch {
      all = {};
    }
  }
  all[name] = results;
  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, JSON.stringify(all, null, 2) + '\n');
  console.log(`results written to ${RESULTS.slice(ROOT.length + 1)}`);
}

export function requireBuilt() {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('borgkeep is not built: run `npm run bench` (it builds first) or `npx tsc -p tsconfig.build.json`');
  }
}

/**
 * A borgkeep installation in `dataDir` whose repository `name` is the repository at `repoPath`
 * itself (a symbolic link; the benchmarks that use it only read it), its key handed to the vault
 * with PASSPHRASE. Returns argv for `borgkeep --data-dir dataDir ARGS`.
 */
export async function adoptRepository(dataDir, name, repoPath, passDir) {
  const cli = (args) => [BORGKEEP, '--data-dir', dataDir, ...args];
  await runOk(process.execPath, cli(['repo', 'create', name]));
  const show = JSON.parse((await runOk(process.execPath, cli(['repo', 'show', name, '--json']))).stdout);
  const link = show.path ?? join(dataDir, 'repos', show.dirName);
  rmSync(link, { recursive: true, force: true });
  symlinkSync(repoPath, link);
  const pass = join(passDir, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  await runOk(process.execPath, cli(['repo', 'key', name, '--passphrase-file', pass]));
  return cli;
}
