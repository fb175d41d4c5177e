// How long `borgkeep verify` takes against `borg check --verify-data` on the same repository in
// the same run (issue 18 point 4):
//   (a) borg check --verify-data            (every segment CRC-checked, every chunk decrypted,
//                                            decompressed and its id recomputed, every archive read)
//   (b) borgkeep verify                     (incremental: only the objects written since the last
//                                            verification, about 2 % of the data)
//   (c) borgkeep verify --all               (every object: CRC, MAC, decompression, id; every archive's
//                                            chunks looked up)
//   (d) the console's "Verify what is new"  (b) through a running `borgkeep serve`: POST
//                                            /repositories/NAME/verify, as the console and the daily
//                                            job run it, without a process start (about 0.3 s of (b))
// The repository (repokey-blake2, lz4) holds BENCH_MB MiB (default 1024) of fresh random data in
// an archive `base`, verified once, then an archive `new` of 2 % more (BENCH_VERIFY_NEW_PERCENT);
// it is built once with the stock borg client and kept in $BENCH_VERIFY_DIR (default
// /tmp/borgkeep-bench-verify-<MB>). Before each (b) the store is set back to a verification
// through `base`'s transaction, so every (b) reads exactly what `new` wrote. Rounds (BENCH_RUNS, default
// 3) rotate the order, since each run leaves the page cache warm for the next. Medians and the
// ratios a/b and a/d (goal >= 20) and a/c (goal >= 1: --all no slower than borg) are printed.
// NODE_EXTRA_CA_CERTS: a machine whose environment sets it (this workplace's does, for its own
// certificate authority) makes every node process read those certificates at start, some 40 ms
// here, before any of borgkeep runs; a default install has no such variable. The timed borgkeep
// commands run without it, and (b') each round also runs (b) with it, both printed.

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { startLoggedInServe } from './lib/serve.mjs';
import { summariseProfile } from './lib/cpu-profile.mjs';
import { BORGKEEP, MiB, PASSPHRASE, ROOT, adoptRepository, borgVersion, fmt, median, printTable, requireBuilt, run, runOk, saveResults, tempRoot, writeRandomTree } from './lib/common.mjs';

requireBuilt();
const MB = Number(process.env.BENCH_MB ?? 1024);
const NEW_PERCENT = Number(process.env.BENCH_VERIFY_NEW_PERCENT ?? 2);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const fixture = process.env.BENCH_VERIFY_DIR ?? `/tmp/borgkeep-bench-verify-${MB}`;
const Database = createRequire(join(ROOT, 'package.json'))('better-sqlite3');

const borgEnv = { PATH: process.env.PATH, HOME: join(fixture, 'home'), LANG: 'C.UTF-8', BORG_BASE_DIR: join(fixture, 'home'), BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
const repo = join(fixture, 'repo');
const baseBytes = MB * MiB;
const newBytes = Math.round((baseBytes * NEW_PERCENT) / 100);
const marker = join(fixture, `built-${MB}-${NEW_PERCENT}`);
const COMMIT = Buffer.from('40f43c250900000002', 'hex');

const tmp = tempRoot('borgkeep-bench-verify');
const dataDir = join(tmp.dir, 'data');
const cli = (args) => [BORGKEEP, '--data-dir', dataDir, ...args];

/** The newest committed transaction before `new`: the second-to-last segment ending in a COMMIT. */
function baseTransaction() {
  const segs = [];
  for (const d of readdirSync(join(repo, 'data'))) for (const f of readdirSync(join(repo, 'data', d))) segs.push({ n: Number(f), path: join(repo, 'data', d, f) });
  const commits = segs
    .filter((s) => {
      const size = statSync(s.path).size;
      if (size < 17) return false;
      const tail = Buffer.alloc(9);
      const fd = openSync(s.path, 'r');
      readSync(fd, tail, 0, 9, size - 9);
      closeSync(fd);
      return tail.equals(COMMIT);
    })
    .map((s) => s.n)
    .sort((x, y) => x - y);
  // init's, base's and new's commits (borg 1.2 ends each command with one commit-only segment).
  if (commits.length !== 3) throw new Error(`expected 3 commits in the fixture, found ${commits.length}: remove ${fixture}`);
  return commits[1];
}

if (!existsSync(marker)) {
  rmSync(fixture, { recursive: true, force: true });
  mkdirSync(join(fixture, 'home'), { recursive: true });
  console.log(`building the repository: ${MB} MiB of random data, then ${fmt(newBytes / MiB, 1)} MiB more, with the stock borg client (once; kept in ${fixture})...`);
  await runOk('borg', ['init', '-e', 'repokey-blake2', repo], { env: borgEnv });
  for (const [name, bytes] of [['base', baseBytes], ['new', newBytes]]) {
    writeRandomTree(join(fixture, `src-${name}`), bytes);
    await runOk('borg', ['create', '--compression', 'lz4', `${repo}::${name}`, join(fixture, `src-${name}`)], { env: borgEnv });
    rmSync(join(fixture, `src-${name}`), { recursive: true, force: true });
  }
  writeFileSync(marker, String(baseTransaction()));
}
const baseTxn = Number(readFileSync(marker, 'utf8'));

// A borgkeep installation whose repository "bench" is the fixture itself (verify only reads it;
// borg check rewrites its config, nothing else).
await adoptRepository(dataDir, 'bench', repo, tmp.dir);

const EXTRA_CA = process.env.NODE_EXTRA_CA_CERTS;
const cliEnv = { ...process.env };
delete cliEnv.NODE_EXTRA_CA_CERTS;

async function verify(args, nodeArgs = [], env = cliEnv) {
  const t0 = process.hrtime.bigint();
  const r = await run(process.execPath, [...nodeArgs, ...cli(['verify', 'bench', '--json', ...args])], { env });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) throw new Error(`borgkeep verify ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return { seconds, report: JSON.parse(r.stdout) };
}

await verify(['--all']); // the store migrated, the page cache as warm as for the others (untimed)
const db = new Database(join(dataDir, 'borgkeep.db'));
/** The store as after a verification through `base`'s transaction: the next run reads what `new` wrote. */
function resetToBase() {
  db.prepare('delete from verifications').run();
  db.prepare(
    "insert into verifications (repository_id, at, actor, scope, verdict, from_txn, through_txn, through_stamp, objects_read, bytes_read, detail, findings) values ((select id from repositories where name = 'bench'), ?, 'bench', 'all', 'intact', null, ?, null, 0, 0, 'the verification through base', '[]')",
  ).run(new Date().toISOString(), baseTxn);
}

// (d): a running server on the same data directory, logged in as its first admin, its catch-up
// jobs done, and one untimed verification through it (its modules loaded and the key unlocked
// once, as in a server that has run a day).
const serve = await startLoggedInServe(dataDir);
await serve.caughtUp();
async function verifyThroughServe() {
  const t0 = process.hrtime.bigint();
  const r = await serve.call('POST', '/repositories/bench/verify', {});
  const body = await r.text();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 200) throw new Error(`POST /repositories/bench/verify failed (${r.status}): ${body}`);
  return { seconds, report: JSON.parse(body).report };
}
resetToBase();
await verifyThroughServe();

const series = { a: [], b: [], c: [], d: [], e: [] };
const runs = {
  a: async () => {
    const t0 = process.hrtime.bigint();
    await runOk('borg', ['check', '--verify-data', repo], { env: borgEnv });
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
  },
  b: async () => {
    resetToBase();
    return verify([]);
  },
  c: () => verify(['--all']),
  d: async () => {
    resetToBase();
    return verifyThroughServe();
  },
  // (b'): (b) in this machine's own environment, NODE_EXTRA_CA_CERTS and all.
  e: async () => {
    resetToBase();
    return verify([], [], process.env);
  },
};
const keys = EXTRA_CA === undefined ? ['a', 'b', 'c', 'd'] : ['a', 'b', 'c', 'd', 'e'];
let lastB = null;
let lastC = null;
for (let i = 0; i < ROUNDS; i++) {
  const order = keys.slice(i % keys.length).concat(keys.slice(0, i % keys.length));
  const got = {};
  for (const k of order) got[k] = await runs[k]();
  for (const k of keys) series[k].push(got[k].seconds);
  if (got.e && got.e.report.objectsRead !== got.b.report.objectsRead) throw new Error("(b') did not read what (b) did");
  lastB = got.b.report;
  lastC = got.c.report;
  if (lastB.scope !== 'changed' || lastB.fromTxn !== baseTxn) throw new Error(`the incremental run did not start after base's transaction ${baseTxn}`);
  if (!lastB.archivesChecked.includes('new') || lastB.archivesChecked.includes('base')) throw new Error('the incremental run checked other archives than new');
  if (lastC.scope !== 'all' || lastC.archivesChecked.length !== 2) throw new Error('the full run did not check both archives');
  if (got.d.report.objectsRead !== lastB.objectsRead || got.d.report.fromTxn !== baseTxn) throw new Error("the server's verification did not read what the command's did");
  console.log(`  round ${i + 1}: ${keys.map((k) => `${k} ${fmt(got[k].seconds)} s`).join(', ')}`);
}
// BENCH_PROFILE=1: one more (b) under --cpu-prof (not timed above), its hottest functions.
let profile = null;
if (process.env.BENCH_PROFILE === '1') {
  const dir = join(tmp.dir, 'cpu-prof');
  resetToBase();
  await verify([], ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  profile = summariseProfile(dir, 30);
  console.log(`\nCPU profile of one more (b) (not timed above): ${fmt(profile.totalMs / 1000)} s sampled`);
  printTable([['self ms', 'self %', 'function'], ...profile.top.map((f) => [fmt(f.selfMs, 0), fmt(f.selfPct, 1), f.name])]);
}
db.close();
await serve.stop();
const { a, b, c, d, e } = series;
const withE = e.length > 0;
const rows = [['round', 'a: borg check --verify-data s', 'b: verify (2 % new) s', 'c: verify --all s', 'd: the server (2 % new) s', ...(withE ? ["b': b with NODE_EXTRA_CA_CERTS s"] : []), 'a/b', 'a/c', 'a/d', ...(withE ? ["a/b'"] : [])]];
for (let i = 0; i < ROUNDS; i++) {
  rows.push([String(i + 1), fmt(a[i]), fmt(b[i]), fmt(c[i]), fmt(d[i]), ...(withE ? [fmt(e[i])] : []), fmt(a[i] / b[i], 1), fmt(a[i] / c[i], 2), fmt(a[i] / d[i], 1), ...(withE ? [fmt(a[i] / e[i], 1)] : [])]);
}
const [ma, mb, mc, md] = [median(a), median(b), median(c), median(d)];
const me = withE ? median(e) : NaN;
rows.push(['median', fmt(ma), fmt(mb), fmt(mc), fmt(md), ...(withE ? [fmt(me)] : []), fmt(ma / mb, 1), fmt(ma / mc, 2), fmt(ma / md, 1), ...(withE ? [fmt(ma / me, 1)] : [])]);
console.log('');
printTable(rows);
const size = Number((await runOk('du', ['-sbL', repo])).stdout.split('\t')[0]);
console.log(
  `\n${fmt(size / 1e6, 0)} MB on disk (base ${MB} MiB, new ${fmt(newBytes / MiB, 1)} MiB); incremental: ${lastB.objectsRead} objects, ${fmt(lastB.bytesRead / 1e6, 1)} MB read; ` +
    `--all: ${lastC.objectsRead} objects, ${fmt(lastC.bytesRead / 1e6, 1)} MB read; ${borgVersion()}, node ${process.version}\n` +
    `against borg check --verify-data: incremental verify ${fmt(ma / mb, 1)}x faster from the command line, ${fmt(ma / md, 1)}x through the running server (goal >= 20), verify --all ${fmt(ma / mc, 2)}x (goal >= 1: no slower)` +
    (withE ? `\nwith this machine's NODE_EXTRA_CA_CERTS (read by node at every start) the command line's incremental verify is ${fmt(ma / me, 1)}x (b' ${fmt(me)} s against b ${fmt(mb)} s)` : ''),
);
saveResults('verify', {
  when: new Date().toISOString(),
  node: process.version,
  borg: borgVersion(),
  baseMiB: MB,
  newPercent: NEW_PERCENT,
  bytesOnDisk: size,
  incrementalBytesRead: lastB.bytesRead,
  allBytesRead: lastC.bytesRead,
  borgCheckVerifyDataSeconds: a,
  verifySeconds: b,
  verifyAllSeconds: c,
  serverVerifySeconds: d,
  ...(withE ? { verifySecondsWithExtraCaCerts: e, ratioIncrementalWithExtraCaCerts: ma / me } : {}),
  ratioIncremental: ma / mb,
  ratioIncrementalServer: ma / md,
  ratioAll: ma / mc,
  goals: { incremental: 20, all: 1 },
  ...(profile ? { verifyProfileTop: profile.top.slice(0, 10) } : {}),
});
tmp.cleanup();
if (process.env.BENCH_CLEAN === '1') rmSync(fixture, { recursive: true, force: true });
