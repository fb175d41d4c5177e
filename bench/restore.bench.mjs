// How fast the server hands out one large file of an archive (issue 18, benchmark c): a file of
// BENCH_MB MiB (default 1024) of random data in an archive of a repokey repository (-C lz4; built
// once with the stock borg client and kept in $BENCH_RESTORE_DIR, default
// /tmp/borgkeep-bench-restore-<MB>), read three ways, each into /dev/null (or counted):
//   (a) borg extract --stdout REPO::a PATH        the baseline: borg itself, straight on the repository
//   (b) borgkeep restore REPO a PATH --to -       the server's reader from the command line
//   (c) GET .../archives/a/content?path=PATH      the same download through a running `borgkeep serve`
//                                                 (HTTP on loopback, logged in as its first admin)
// Rounds (BENCH_RUNS, default 3) rotate the order (each leaves the page cache warm for the next).
// Medians of MB/s and the ratios b/a, c/a are printed. Goal (issue 18): the download (c) at least
// 0.8× borg extract's throughput.

import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { startLoggedInServe } from './lib/serve.mjs';
import { MiB, PASSPHRASE, adoptRepository, borgVersion, fmt, median, printTable, requireBuilt, run, runOk, saveResults, tempRoot, writeRandomTree } from './lib/common.mjs';

requireBuilt();
const MB = Number(process.env.BENCH_MB ?? 1024);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const fixture = process.env.BENCH_RESTORE_DIR ?? `/tmp/borgkeep-bench-restore-${MB}`;
const borgEnv = { PATH: process.env.PATH, HOME: join(fixture, 'home'), LANG: 'C.UTF-8', BORG_BASE_DIR: join(fixture, 'home'), BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
const repo = join(fixture, 'repo');
const marker = join(fixture, 'built');
const PATH_IN_ARCHIVE = 'src/random-0000.bin';
const bytes = MB * MiB;

if (!existsSync(marker)) {
  rmSync(fixture, { recursive: true, force: true });
  mkdirSync(join(fixture, 'home'), { recursive: true });
  console.log(`building the repository: one file of ${MB} MiB of random data, with the stock borg client (once; kept in ${fixture})...`);
  await runOk('borg', ['init', '-e', 'repokey', repo], { env: borgEnv });
  writeRandomTree(join(fixture, 'src'), bytes, bytes);
  await runOk('borg', ['create', '--compression', 'lz4', `${repo}::a`, 'src'], { env: borgEnv, cwd: fixture });
  rmSync(join(fixture, 'src'), { recursive: true, force: true });
  writeFileSync(marker, '');
}

const tmp = tempRoot('borgkeep-bench-restore');
const dataDir = join(tmp.dir, 'data');
// A borgkeep installation whose repository "bench" is the fixture itself (only read).
const cli = await adoptRepository(dataDir, 'bench', repo, tmp.dir);

// A running server on the same data directory, logged in as its first admin; the daily jobs it
// catches up on at its first start (statistics, an audit, a verification that reads the whole
// repository) are done before anything is timed.
const serve = await startLoggedInServe(dataDir);
await serve.caughtUp();

/** Runs `argv` with its standard output into /dev/null: wall seconds. */
async function toNull(argv, env) {
  const t0 = process.hrtime.bigint();
  const r = await run('sh', ['-c', `"$@" > /dev/null`, 'sh', ...argv], { env });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) throw new Error(`${argv.slice(0, 3).join(' ')} failed (${r.code}): ${r.stderr}`);
  return seconds;
}

const runs = {
  a: () => toNull(['borg', 'extract', '--stdout', `${repo}::a`, PATH_IN_ARCHIVE], borgEnv),
  b: () => toNull([process.execPath, ...cli(['restore', 'bench', 'a', PATH_IN_ARCHIVE, '--to', '-'])], process.env),
  c: async () => {
    const t0 = process.hrtime.bigint();
    const r = await serve.call('GET', `/repositories/bench/archives/a/content?path=${encodeURIComponent(PATH_IN_ARCHIVE)}`);
    if (r.status !== 200) throw new Error(`the download failed (${r.status}): ${await r.text()}`);
    let got = 0;
    for await (const chunk of r.body) got += chunk.length;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (got !== bytes) throw new Error(`the download gave ${got} bytes, not ${bytes}`);
    return seconds;
  },
};

console.log(`one file of ${MB} MiB (random, -C lz4, repokey); ${ROUNDS} rounds rotating (a) borg extract --stdout / (b) borgkeep restore --to - / (c) the API's download; ${borgVersion()}, node ${process.version}`);
const keys = ['a', 'b', 'c'];
const series = { a: [], b: [], c: [] };
try {
  for (let i = 0; i < ROUNDS; i++) {
    const order = keys.slice(i % keys.length).concat(keys.slice(0, i % keys.length));
    const got = {};
    for (const k of order) got[k] = await runs[k]();
    for (const k of keys) series[k].push(got[k]);
    console.log(`  round ${i + 1}: ${keys.map((k) => `${k} ${fmt(got[k])} s`).join(', ')}`);
  }
  const mbps = (s) => bytes / 1e6 / s;
  const rows = [['round', 'a: borg extract MB/s', 'b: borgkeep restore MB/s', 'c: API download MB/s', 'b/a', 'c/a']];
  for (let i = 0; i < ROUNDS; i++) {
    const [a, b, c] = keys.map((k) => mbps(series[k][i]));
    rows.push([String(i + 1), fmt(a, 0), fmt(b, 0), fmt(c, 0), fmt(b / a, 3), fmt(c / a, 3)]);
  }
  const [ma, mb, mc] = keys.map((k) => mbps(median(series[k])));
  rows.push(['median', fmt(ma, 0), fmt(mb, 0), fmt(mc, 0), fmt(mb / ma, 3), fmt(mc / ma, 3)]);
  console.log('');
  printTable(rows);
  console.log(`\nthe API's download at ${fmt(mc / ma, 3)}× borg extract's throughput (goal >= 0.8), borgkeep restore at ${fmt(mb / ma, 3)}×`);
  saveResults('restore', {
    when: new Date().toISOString(),
    node: process.version,
    borg: borgVersion(),
    megabytes: MB,
    seconds: series,
    mbPerSecond: { borgExtract: ma, borgkeepRestore: mb, apiDownload: mc },
    ratios: { restoreToExtract: mb / ma, downloadToExtract: mc / ma },
    goal: 0.8,
  });
} finally {
  await serve.stop();
  tmp.cleanup();
}
