// Re-runs of a pull against re-runs of a push whose client keeps its own borg cache (issue 17,
// benchmark b, and its first Done-means item at full size): BENCH_SOURCE_BYTES (1 GiB) of random
// data in BENCH_FILES (100) files on one client host (bench/lib/pull-hosts.mjs: a network
// namespace with a real OpenSSH sshd, user bkpulltest), --compression lz4, repokey. Each round:
//   (a) push: stock `borg create` over real OpenSSH to the server's sshd (plain `borg serve
//       --restrict-to-path`), the client's BORG_BASE_DIR kept between its runs (its own chunks
//       and files cache): a first run, a second of the unchanged data, a third after 10 % of the
//       files were rewritten with new random data;
//   (b) pull: `borgkeep pull run HOST --wait` of a host added with --keep-files-cache (the server
//       builds the chunk index for each job, the client keeps only borg's files cache): the same
//       three runs, another 10 % of the files rewritten before the third.
// Bytes on the wire: what the server's end of the client's veth received during the run (SSH
// framing included, both ways of connecting alike). Timed: the client's `borg create` (a), the
// `pull run --wait` process (b). Medians of BENCH_RUNS (3) rounds; stored in
// bench/results/latest.json under "pullRerun". Needs root; client host number 201.

import { chmodSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';

import {
  BORGKEEP,
  GiB,
  MiB,
  borgVersion,
  fmt,
  median,
  printTable,
  requireBuilt,
  run,
  saveResults,
  syncDisks,
  tempRoot,
} from './lib/common.mjs';
import { preparePullServer, startPullHosts, waitNoChildren } from './lib/pull-hosts.mjs';

requireBuilt();
if (process.getuid?.() !== 0) throw new Error('the pull re-run benchmark needs root (network namespaces, a second sshd, runuser)');
const SOURCE_BYTES = Number(process.env.BENCH_SOURCE_BYTES ?? GiB);
const FILES = Number(process.env.BENCH_FILES ?? 100);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const CHANGED = Math.round(FILES / 10);
const COMPRESSION = 'lz4';
const NET = 201;

const tmp = tempRoot('borgkeep-bench-pull-rerun');
chmodSync(tmp.dir, 0o755);
const hosts = await startPullHosts(NET, tmp.dir);
const dataDir = join(tmp.dir, 'borgkeep');
const { cli, vaultedRepo } = await preparePullServer(tmp.dir, dataDir, hosts);
const loads = [];

const fileBytes = Math.floor(SOURCE_BYTES / FILES);
const buf = Buffer.allocUnsafe(fileBytes);
/** Writes file i of `dir` with new random bytes (readable by the client user). */
function writeFile(dir, i) {
  randomFillSync(buf);
  const f = join(dir, `f-${String(i).padStart(4, '0')}.bin`);
  writeFileSync(f, buf);
  chmodSync(f, 0o644);
}
function freshSource(n) {
  const dir = join(tmp.dir, `src-${n}`);
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

/** Runs `fn`, returning its wall seconds and the bytes the server received from the client meanwhile. */
async function measured(fn) {
  syncDisks();
  const rx0 = hosts.serverRxBytes();
  const t0 = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, bytes: hosts.serverRxBytes() - rx0 };
}

/** (a): three pushes with the client's own cache kept between them. */
async function pushRuns(n, src) {
  const repo = join(tmp.dir, `push-repo-${n}`);
  const clientEnv = await hosts.preparePush(repo, join(tmp.dir, `init-${n}`), join(hosts.tmpDir, `push-base-${n}`));
  let k = 0;
  const create = async () => {
    const [cmd, ...argv] = hosts.asClient([...clientEnv, 'borg', 'create', '--compression', COMPRESSION, `ssh://root@${hosts.serverAddress}:2022${repo}::run-${++k}`, src]);
    const r = await run(cmd, argv);
    if (r.code !== 0) throw new Error(`borg create (push ${n}.${k}) failed (${r.code}):\n${r.stderr}`);
    await waitNoChildren(hosts.serverSshdPid);
  };
  const first = await measured(create);
  const unchanged = await measured(create);
  for (let i = 0; i < CHANGED; i++) writeFile(src, i);
  const changed = await measured(create);
  return { first, unchanged, changed };
}

/** (b): three pull jobs of a host that keeps its files cache. */
async function pullRuns(n, src) {
  const repoName = `pull${n}`;
  await vaultedRepo(repoName);
  const host = `client${n}`;
  await cli([
    'host', 'add', host, '--address', `${hosts.address}:22`, '--user', hosts.user, '--repo', repoName, '--paths', src,
    '--compression', COMPRESSION, '--archive', '{host}-{now}', '--accept-host-key', hosts.clientHostKeyFingerprint, '--keep-files-cache',
  ]);
  const job = async () => {
    const r = await run(process.execPath, [BORGKEEP, '--data-dir', dataDir, 'pull', 'run', host, '--wait']);
    if (r.code !== 0) throw new Error(`pull run (${n}) failed (${r.code}):\n${r.stdout.slice(-2000)}\n${r.stderr}`);
    await waitNoChildren(hosts.clientSshdPid);
  };
  const first = await measured(job);
  const unchanged = await measured(job);
  for (let i = CHANGED; i < 2 * CHANGED; i++) writeFile(src, i);
  const changed = await measured(job);
  // The job's own count of what the client sent, and of the files borg read, for the record.
  const jobs = JSON.parse((await cli(['pull', 'list', '--host', host, '--json'])).stdout).jobs;
  const logOf = async (id) => JSON.parse((await cli(['pull', 'log', String(id), '--json'])).stdout).lines.map((l) => l.line);
  const read = [];
  for (const j of [...jobs].reverse()) {
    if (j.state !== 'done') throw new Error(`pull job ${j.id} ended ${j.state}: ${j.reason}`);
    read.push(Number((await logOf(j.id)).map((l) => /^borg read (\d+) files? in full/.exec(l)).find(Boolean)?.[1] ?? NaN));
  }
  await cli(['host', 'remove', host]);
  return { first, unchanged, changed, filesRead: read };
}

console.log(
  `re-runs of ${SOURCE_BYTES / MiB} MiB in ${FILES} files (${CHANGED} rewritten before the third run), --compression ${COMPRESSION}, -e repokey; ` +
    `${ROUNDS} rounds of (a) push with the client's own cache / (b) pull, host --keep-files-cache; ${borgVersion()}, node ${process.version}`,
);
const rounds = [];
try {
  for (let r = 1; r <= ROUNDS; r++) {
    const src = freshSource(r);
    for (let i = 0; i < FILES; i++) writeFile(src, i);
    loads.push(loadavg()[0]);
    const a = await pushRuns(r, src);
    const b = await pullRuns(r, src);
    rounds.push({ a, b });
    console.log(
      `  round ${r}: unchanged a ${fmt(a.unchanged.seconds)} s ${a.unchanged.bytes} B / b ${fmt(b.unchanged.seconds)} s ${b.unchanged.bytes} B; ` +
        `10 % changed a ${fmt(a.changed.seconds)} s ${a.changed.bytes} B / b ${fmt(b.changed.seconds)} s ${b.changed.bytes} B; files read by the pull's borg ${b.filesRead.join(' / ')}`,
    );
    for (const f of readdirSync(tmp.dir).filter((name) => name.endsWith(`-${r}`))) rmSync(join(tmp.dir, f), { recursive: true, force: true });
    rmSync(join(dataDir, 'repos', `pull${r}`), { recursive: true, force: true });
  }
  const rows = rounds.map(({ a, b }) => ({
    aFirst: a.first.seconds,
    bFirst: b.first.seconds,
    aUnchanged: a.unchanged.seconds,
    bUnchanged: b.unchanged.seconds,
    unchangedRatio: b.unchanged.seconds / a.unchanged.seconds,
    aChanged: a.changed.seconds,
    bChanged: b.changed.seconds,
    changedRatio: b.changed.seconds / a.changed.seconds,
    bFirstMB: b.first.bytes / 1e6,
    aUnchangedKB: a.unchanged.bytes / 1e3,
    bUnchangedKB: b.unchanged.bytes / 1e3,
    bUnchangedPct: (100 * b.unchanged.bytes) / b.first.bytes,
    aChangedMB: a.changed.bytes / 1e6,
    bChangedMB: b.changed.bytes / 1e6,
    bChangedPct: (100 * b.changed.bytes) / b.first.bytes,
  }));
  const cols = Object.keys(rows[0]);
  const med = (k) => median(rows.map((x) => x[k]));
  const digits = { unchangedRatio: 3, changedRatio: 3, bUnchangedPct: 3, bChangedPct: 2 };
  const cells = (x) => cols.map((k) => fmt(x[k], digits[k] ?? 2));
  console.log('');
  printTable([
    ['round', 'a: 1st s', 'b: 1st s', 'a: unchanged s', 'b: unchanged s', 'b/a', 'a: 10 % changed s', 'b: 10 % changed s', 'b/a', 'b: 1st MB on the wire', 'a: unchanged kB', 'b: unchanged kB', 'b: unchanged % of 1st', 'a: changed MB', 'b: changed MB', 'b: changed % of 1st'],
    ...rows.map((x, i) => [String(i + 1), ...cells(x)]),
    ['median', ...cells(Object.fromEntries(cols.map((k) => [k, med(k)])))],
  ]);
  console.log(
    `\nmedians: an unchanged pull sent ${fmt(med('bUnchangedPct'), 3)} % of the first pull's bytes (goal < 2 %), ${fmt(med('bUnchangedKB'), 1)} kB against the push's ${fmt(med('aUnchangedKB'), 1)} kB, ` +
      `in ${fmt(med('unchangedRatio'), 3)}× the push's time; after 10 % of the files changed it sent ${fmt(med('bChangedPct'), 2)} % (goal: close to 10 %), ` +
      `in ${fmt(med('changedRatio'), 3)}× the push's time; load average at the rounds' starts ${loads.map((l) => fmt(l, 1)).join(', ')}`,
  );
  saveResults('pullRerun', {
    when: new Date().toISOString(),
    node: process.version,
    borg: borgVersion(),
    sourceBytes: SOURCE_BYTES,
    files: FILES,
    changedFiles: CHANGED,
    loadAverages: loads,
    rounds,
    medians: Object.fromEntries(cols.map((k) => [k, med(k)])),
  });
} finally {
  await hosts.close();
  tmp.cleanup();
}
