// How long `borgkeep audit` takes on a repository of >= 100,000 objects in >= 500 transactions,
// against `borg check --repository-only` on the same repository in the same run:
//   (a) borg check --repository-only          (reads and CRC-checks every byte of every segment)
//   (b0) borgkeep audit --no-cache, no passphrase (structural: every entry header read again)
//   (b) borgkeep audit, no passphrase        (structural, as a daily audit runs: segments unchanged
//                                            since the last audit come from the audit cache)
//   (c) borgkeep audit with the passphrase   (plus every manifest decrypted, diffed, TAM-checked)
//   (d) and (e): b and c as the server runs them (the console's "Run audit", the daily audit job):
//       POST /api/v1/repositories/NAME/audit to a running `borgkeep serve`, timed by its client:
//       no process start, the ledger event and stored report included
// The repository is built once with borg's own code (BENCH_AUDIT_TXNS=500 archives of
// BENCH_AUDIT_FILES=200 files of BENCH_AUDIT_FILE_BYTES=64 KiB random bytes, one object each;
// repokey, lz4) and kept in $BENCH_AUDIT_DIR
// (default /tmp/borgkeep-bench-audit) for later runs; BENCH_CLEAN=1 removes it at the end.
// The audit cache is filled once before the timed rounds. Each round (BENCH_RUNS, default 3)
// starts with another of a, b0, b, c, since each leaves the page cache warm for the next; a
// repository larger than this machine's page cache is partly read from disk whatever the order.
// Medians and the ratios a/b0, a/b, a/c, a/d and a/e are printed. Goals: structural >= 50x,
// full >= 10x.

import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { BORGKEEP, PASSPHRASE, borgVersion, fmt, median, printTable, requireBuilt, run, runOk, saveResults, tempRoot } from './lib/common.mjs';
import { startLoggedInServe } from './lib/serve.mjs';

requireBuilt();
const TXNS = Number(process.env.BENCH_AUDIT_TXNS ?? 500);
const FILES = Number(process.env.BENCH_AUDIT_FILES ?? 200);
// One chunk per file (below borg's 512 KiB minimum chunk size): the object size.
const FILE_BYTES = Number(process.env.BENCH_AUDIT_FILE_BYTES ?? 64 * 1024);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const fixture = process.env.BENCH_AUDIT_DIR ?? '/tmp/borgkeep-bench-audit';
const python = '/usr/bin/python3';

const BUILD = `
import os, sys
from borg.archiver import Archiver
repo, src, n, per, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
for i in range(n):
    d = os.path.join(src, str(i))
    os.makedirs(d, exist_ok=True)
    for j in range(per):
        with open(os.path.join(d, str(j)), 'wb') as f:
            f.write(os.urandom(size))
    a = Archiver()
    rc = a.run(a.get_args(['borg', 'create', '--compression', 'lz4', repo + '::a' + str(i), d], None))
    if rc not in (0, None):
        sys.exit('borg create %d failed: %s' % (i, rc))
`;

const borgEnv = { PATH: process.env.PATH, HOME: join(fixture, 'home'), LANG: 'C.UTF-8', BORG_BASE_DIR: join(fixture, 'home'), BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
const marker = join(fixture, `built-${TXNS}x${FILES}x${FILE_BYTES}`);
const repo = join(fixture, 'repo');
if (!existsSync(marker)) {
  rmSync(fixture, { recursive: true, force: true });
  mkdirSync(join(fixture, 'home'), { recursive: true });
  console.log(`building the repository: ${TXNS} archives of ${FILES} files of ${FILE_BYTES} random bytes each, with borg's own code (once; kept in ${fixture})...`);
  const t0 = Date.now();
  await runOk('borg', ['init', '-e', 'repokey', repo], { env: borgEnv });
  await runOk(python, ['-c', BUILD, repo, join(fixture, 'src'), String(TXNS), String(FILES), String(FILE_BYTES)], { env: borgEnv });
  rmSync(join(fixture, 'src'), { recursive: true, force: true });
  writeFileSync(marker, '');
  console.log(`built in ${fmt((Date.now() - t0) / 1000)} s`);
}

// A borgkeep installation whose repository "bench" is the fixture.
const tmp = tempRoot('borgkeep-bench-audit');
const dataDir = join(tmp.dir, 'data');
await runOk(process.execPath, [BORGKEEP, '--data-dir', dataDir, 'repo', 'create', 'bench']);
const show = JSON.parse((await runOk(process.execPath, [BORGKEEP, '--data-dir', dataDir, 'repo', 'show', 'bench', '--json'])).stdout);
const repoCopy = show.path ?? join(dataDir, 'repos', show.dirName);
// The fixture itself, not a copy (gigabytes): the audit only reads.
rmSync(repoCopy, { recursive: true, force: true });
symlinkSync(repo, repoCopy);

async function timed(label, cmd, args, env, expect) {
  const t0 = process.hrtime.bigint();
  const r = await run(cmd, args, { env });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!expect(r)) throw new Error(`${label} failed (${r.code}):\n${r.stderr}`);
  return { seconds, r };
}

// A running server on the same data directory, logged in as its first admin; the daily jobs
// it catches up on at its first start (statistics, an audit of this repository) finish first.
const serve = await startLoggedInServe(dataDir);
const { call } = serve;
await serve.caughtUp(60_000);
async function viaServer(label, body) {
  const t0 = process.hrtime.bigint();
  const r = await call('POST', '/repositories/bench/audit', body);
  const text = await r.text();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 200) throw new Error(`${label} failed (${r.status}): ${text}`);
  return { seconds, r: { stdout: text } };
}

const series = { a: [], b0: [], b: [], c: [], d: [], e: [] };
let objects = 0;
let transactions = 0;
const { BORG_PASSPHRASE: _none, ...noPassphrase } = process.env;
const audit = (label, extra, env) =>
  timed(label, process.execPath, [BORGKEEP, '--data-dir', dataDir, 'audit', 'bench', '--json', ...extra], env, (r) => r.code === 0 || r.code === 1);
const runs = {
  a: () => timed('borg check', 'borg', ['check', '--repository-only', repoCopy], borgEnv, (r) => r.code === 0),
  // Every segment read again, as the first audit of a repository does.
  b0: () => audit('structural audit, no cache', ['--no-cache'], noPassphrase),
  // What a daily audit does: segments unchanged since the last audit come from its cache.
  b: () => audit('structural audit', [], noPassphrase),
  c: () => audit('full audit', [], { ...process.env, BORG_PASSPHRASE: PASSPHRASE }),
  d: () => viaServer('structural audit in the server', {}),
  e: () => viaServer('full audit in the server', { passphrase: PASSPHRASE }),
};
await runs.b(); // fills the audit cache once (untimed)
const keys = ['a', 'b0', 'b', 'c', 'd', 'e'];
for (let i = 0; i < ROUNDS; i++) {
  // Each round starts with another run: what one leaves in the page cache helps the next, and
  // a repository larger than the page cache is partly read from disk.
  const order = keys.slice(i % keys.length).concat(keys.slice(0, i % keys.length));
  const got = {};
  for (const k of order) got[k] = await runs[k]();
  for (const k of keys) series[k].push(got[k].seconds);
  const report = JSON.parse(got.c.r.stdout);
  transactions = report.transactions.length;
  objects = report.transactions.reduce((n, t) => n + t.objectsPut, 0);
  if (!report.manifestsRead || report.transactions.at(-1).archivesAdded?.length !== 1) throw new Error('the full audit did not read the manifests');
  if (got.b0.r.stdout !== got.b.r.stdout) throw new Error('the cached and the uncached audit disagree');
  const inServer = JSON.parse(got.e.r.stdout).report;
  if (inServer.transactions.length !== transactions || inServer.firstSuspiciousTransaction !== report.firstSuspiciousTransaction) throw new Error('the server audit disagrees with the CLI');
  console.log(`  round ${i + 1}: ${keys.map((k) => `${k} ${fmt(got[k].seconds)} s`).join(', ')}`);
}
await serve.stop();
const { a, b0, b, c, d, e } = series;
const rows = [['round', 'a: borg check -r s', 'b0: structural, no cache s', 'b: structural s', 'c: full s', 'd: structural in server s', 'e: full in server s', 'a/b0', 'a/b', 'a/c', 'a/d', 'a/e']];
const ratios = (x) => [x.b0, x.b, x.c, x.d, x.e].map((v) => fmt(x.a / v, 1));
for (let i = 0; i < ROUNDS; i++) rows.push([String(i + 1), ...[a, b0, b, c, d, e].map((xs) => fmt(xs[i])), ...ratios({ a: a[i], b0: b0[i], b: b[i], c: c[i], d: d[i], e: e[i] })]);
const [ma, mb0, mb, mc, md, me] = [median(a), median(b0), median(b), median(c), median(d), median(e)];
rows.push(['median', ...[ma, mb0, mb, mc, md, me].map((v) => fmt(v)), ...ratios({ a: ma, b0: mb0, b: mb, c: mc, d: md, e: me })]);
console.log('');
printTable(rows);
const size = Number((await runOk('du', ['-sb', repo])).stdout.split('\t')[0]);
console.log(
  `\n${objects} objects in ${transactions} transactions, ${fmt(size / 1e6, 0)} MB on disk; ${borgVersion()}, node ${process.version}\n` +
    `against borg check --repository-only: structural audit ${fmt(ma / mb, 1)}x faster with the audit cache from the CLI, ${fmt(ma / md, 1)}x in the server (goal >= 50), ` +
    `${fmt(ma / mb0, 1)}x without the cache; full audit ${fmt(ma / mc, 1)}x from the CLI, ${fmt(ma / me, 1)}x in the server (goal >= 10)`,
);
saveResults('audit', {
  objectBytes: FILE_BYTES,
  when: new Date().toISOString(),
  node: process.version,
  borg: borgVersion(),
  objects,
  transactions,
  bytesOnDisk: size,
  borgCheckSeconds: a,
  structuralNoCacheSeconds: b0,
  structuralSeconds: b,
  fullSeconds: c,
  structuralInServerSeconds: d,
  fullInServerSeconds: e,
  ratioStructural: ma / mb,
  ratioStructuralNoCache: ma / mb0,
  ratioFull: ma / mc,
  ratioStructuralInServer: ma / md,
  ratioFullInServer: ma / me,
  goals: { structural: 50, full: 10 },
});
tmp.cleanup();
if (process.env.BENCH_CLEAN === '1') rmSync(fixture, { recursive: true, force: true });
