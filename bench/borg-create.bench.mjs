// What the guard costs a real backup: wall time of `borg create` of 1 GiB of fresh random data
// (64 MiB files, new each run so nothing dedups; --compression lz4; encryption repokey, or
// BENCH_ENCRYPTION) into a fresh repository each run, through
//   (a) plain `borg serve --restrict-to-repository R --append-only` (BORG_RSH script), and
//   (b) `borgkeep borg-serve --key K` with an append key (BORG_RSH standing in for sshd, a fresh
//       borgkeep data dir each run), which runs that same borg serve command line as its child.
// The repository is initialised by a full key (untimed); only `borg create` is timed, from
// spawning the client to its exit, so (b) includes the guard's start-up and ledger writes.
// Runs alternate a, b (BENCH_RUNS rounds, default 3), medians and the ratio b/a are printed and
// stored in bench/results/latest.json. CPU seconds of each side come from `times` in the
// BORG_RSH scripts; the guard's own (its node process without the child borg serve) from
// bench/lib/report-cpu.mjs preloaded into it. CPU seconds per GiB are the figures to compare
// across changes of the guard: unlike wall time they hardly move on a busy machine (the guard's
// include its start-up, about 0.1 s, so compare them at one BENCH_SOURCE_BYTES).
// BENCH_PROFILE=1 also runs (b) under `node --cpu-prof` and prints the guard's hottest functions
// (profiling slows it: those runs are not the timed ones); BENCH_PROFILE_DIR=DIR keeps the
// .cpuprofile files there (for Chrome's DevTools).
// BENCH_GUARD=append (default: the key is not in the vault), vault (borgkeep holds the
// repository's key: the archive-aware guard judges the manifest at the commit) or verify (also
// a grant with --verify-objects: every put decrypted and its id recomputed).
// BENCH_COMPARE=PATH (another checkout's bin/borgkeep, built) adds (c): the same guarded run with
// that build, in every round, so a change to the guard is compared with the build before it on
// the same machine at the same time (CPU seconds per GiB of both are printed).
// BENCH_FLOOR=1 adds (d): plain borg serve behind bench/lib/passthrough.mjs, a node process that
// only pipes, in every round: the floor of any proxy in node on this machine, against which the
// guard's own cost is b/d.

import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  BORGKEEP,
  GiB,
  MiB,
  PASSPHRASE,
  borgClientEnv,
  borgVersion,
  fmt,
  median,
  printTable,
  readCpuLog,
  readGuardCpuLog,
  requireBuilt,
  run,
  runOk,
  saveResults,
  syncDisks,
  tempRoot,
  writeGuardRsh,
  writePlainRsh,
  writeRandomTree,
} from './lib/common.mjs';
import { summariseProfile } from './lib/cpu-profile.mjs';

requireBuilt();
const SOURCE_BYTES = Number(process.env.BENCH_SOURCE_BYTES ?? GiB);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const ENCRYPTION = process.env.BENCH_ENCRYPTION ?? 'repokey';
const COMPRESSION = 'lz4';
const PROFILE = process.env.BENCH_PROFILE === '1';
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const COMPARE = process.env.BENCH_COMPARE ?? null;
const GUARD = process.env.BENCH_GUARD ?? 'append';
const FLOOR = process.env.BENCH_FLOOR === '1';
if (!['append', 'vault', 'verify'].includes(GUARD)) throw new Error(`BENCH_GUARD must be append, vault or verify, not '${GUARD}'`);

const tmp = tempRoot('borgkeep-bench-create');
const plainRsh = writePlainRsh(tmp.dir);
const keysDir = join(tmp.dir, 'ssh-keys');

async function makeKey(name) {
  await runOk('mkdir', ['-p', keysDir]);
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@bench`, '-f', join(keysDir, name)]);
  return join(keysDir, `${name}.pub`);
}
const fullPub = await makeKey('admin-key');
const appendPub = await makeKey('writer-key');

async function timedCreate(env, url, src, label) {
  const cpuLog = join(tmp.dir, `${label}.cpu`);
  const guardLog = join(tmp.dir, `${label}.guard-cpu`);
  const totalLog = join(tmp.dir, `${label}.total-cpu`);
  const args = ['create', '--compression', COMPRESSION, `${url}::bench`, src];
  // GNU time adds a fork and a wait, the same for (a) and (b); it reports borg plus everything
  // under it (the BORG_RSH script and the server side), so the client's share is the difference.
  const [cmd, argv] = TIME ? [TIME, ['-f', '%U %S', '-o', totalLog, 'borg', ...args]] : ['borg', args];
  const t0 = process.hrtime.bigint();
  const r = await run(cmd, argv, { env: { ...env, BENCH_CPU_LOG: cpuLog, BENCH_GUARD_CPU: guardLog } });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) throw new Error(`borg create (${label}) failed (${r.code}):\n${r.stderr}`);
  const serverCpu = readCpuLog(cpuLog);
  const guard = readGuardCpuLog(guardLog); // null for (a): no guard ran
  const guardCpu = guard?.cpu ?? null;
  const guardSys = guard?.system ?? null;
  const guardRss = guard?.maxRssMiB ?? null;
  let clientCpu = null;
  if (TIME && existsSync(totalLog)) {
    const [user, sys] = readFileSync(totalLog, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    clientCpu = user + sys - (serverCpu ?? 0);
  }
  return { seconds, serverCpu, guardCpu, guardSys, guardRss, clientCpu, guardGc: guard && { faults: guard.pageFaults, gcs: guard.gcs, full: guard.fullGcs, ms: guard.gcMs } };
}

/** The guard's page faults and garbage collections (count, full ones, time), when it reported them. */
const gcLine = (r) => (r.guardGc ? `, ${r.guardGc.faults} page faults, ${r.guardGc.gcs} GCs (${r.guardGc.full} full, ${fmt(r.guardGc.ms, 0)} ms)` : '');

/** (a): plain borg serve, the command line borgkeep gives its child for an append key. */
async function runPlain(n, src, passthrough = false) {
  const repo = join(tmp.dir, `plain-repo-${n}`);
  const env = borgClientEnv(join(tmp.dir, `client-${n}`), plainRsh, { BENCH_REPO: repo });
  const url = `ssh://bench${repo}`;
  await runOk('borg', ['init', '-e', ENCRYPTION, url], { env });
  syncDisks();
  return timedCreate({ ...env, BENCH_APPEND_ONLY: '1', ...(passthrough && { BENCH_PASSTHROUGH: '1' }) }, url, src, `${passthrough ? 'd' : 'a'}-${n}`);
}

/** (b): through the guard, in a fresh borgkeep installation. */
async function runGuard(n, src, extraEnv = {}, borgkeep = BORGKEEP) {
  const dataDir = join(tmp.dir, `borgkeep-${n}`);
  const cli = (args) => runOk(process.execPath, [borgkeep, '--data-dir', dataDir, ...args]);
  await cli(['repo', 'create', 'bench']);
  await cli(['key', 'add', 'admin-key', '--file', fullPub, '--repo', 'bench', '--role', 'full']);
  await cli(['key', 'add', 'writer-key', '--file', appendPub, '--repo', 'bench', '--role', 'append']);
  const rsh = writeGuardRsh(tmp.dir, dataDir, borgkeep, `guard-rsh-${n}`);
  const env = borgClientEnv(join(tmp.dir, `client-${n}`), rsh);
  const url = 'ssh://borgkeep-bench/./bench';
  await runOk('borg', ['init', '-e', ENCRYPTION, url], { env: { ...env, BENCH_KEY: 'admin-key' } });
  if (GUARD !== 'append' && borgkeep === BORGKEEP) {
    const passFile = join(tmp.dir, `passphrase-${n}`);
    writeFileSync(passFile, PASSPHRASE, { mode: 0o600 });
    await cli(['repo', 'key', 'bench', '--passphrase-file', passFile]);
    if (GUARD === 'verify') await cli(['grant', 'writer-key', 'bench', '--role', 'append', '--verify-objects']);
  }
  syncDisks();
  const result = await timedCreate({ ...env, BENCH_KEY: 'writer-key', ...extraEnv }, url, src, `b-${n}`);
  // The session must have gone through as a plain, allowed backup.
  const { sessions } = JSON.parse((await cli(['ledger', '--repo', 'bench', '--limit', '1', '--json'])).stdout);
  if (sessions?.[0]?.result !== 'ok') throw new Error(`the guarded session ended with ${sessions?.[0]?.result}: ${sessions?.[0]?.detail}`);
  return result;
}

let counter = 0;
async function measure(kind) {
  const n = ++counter;
  const src = writeRandomTree(join(tmp.dir, `src-${n}`), SOURCE_BYTES);
  syncDisks();
  try {
    if (kind === 'c') return await runGuard(n, src, {}, COMPARE);
    if (kind === 'd') return await runPlain(n, src, true);
    return kind === 'a' ? await runPlain(n, src) : await runGuard(n, src);
  } finally {
    for (const name of readdirSync(tmp.dir)) {
      if (name.endsWith(`-${n}`)) rmSync(join(tmp.dir, name), { recursive: true, force: true });
    }
    syncDisks();
  }
}

console.log(
  `borg create of ${SOURCE_BYTES / MiB} MiB of fresh random data, --compression ${COMPRESSION}, -e ${ENCRYPTION}; ` +
    `${ROUNDS} rounds alternating (a) plain borg serve / (b) borgkeep borg-serve (append key${GUARD === 'append' ? '' : GUARD === 'vault' ? ', the key in the vault' : ', the key in the vault, --verify-objects'}); ${borgVersion()}, node ${process.version}`,
);
const a = [];
const b = [];
const c = [];
const d = [];
for (let i = 0; i < ROUNDS; i++) {
  a.push(await measure('a'));
  console.log(`  round ${i + 1}: a ${fmt(a[i].seconds)} s`);
  b.push(await measure('b'));
  const guardPerGiB = b[i].guardCpu == null ? 'n/a' : fmt(b[i].guardCpu / (SOURCE_BYTES / GiB), 3);
  const rss = b[i].guardRss == null ? 'n/a' : fmt(b[i].guardRss, 0);
  console.log(`  round ${i + 1}: b ${fmt(b[i].seconds)} s, b/a ${fmt(b[i].seconds / a[i].seconds, 3)}, guard CPU ${guardPerGiB} s/GiB (system ${fmt(b[i].guardSys / (SOURCE_BYTES / GiB), 3)}), guard peak RSS ${rss} MiB${gcLine(b[i])}`);
  if (COMPARE) {
    c.push(await measure('c'));
    console.log(`  round ${i + 1}: c (BENCH_COMPARE) ${fmt(c[i].seconds)} s, c/a ${fmt(c[i].seconds / a[i].seconds, 3)}, its guard CPU ${fmt(c[i].guardCpu / (SOURCE_BYTES / GiB), 3)} s/GiB (system ${fmt(c[i].guardSys / (SOURCE_BYTES / GiB), 3)})${gcLine(c[i])}`);
  }
  if (FLOOR) {
    d.push(await measure('d'));
    console.log(`  round ${i + 1}: d (node passthrough) ${fmt(d[i].seconds)} s, d/a ${fmt(d[i].seconds / a[i].seconds, 3)}, b/d ${fmt(b[i].seconds / d[i].seconds, 3)}`);
  }
}
if (COMPARE) {
  const perGiBc = c.map((r) => r.guardCpu / (SOURCE_BYTES / GiB));
  console.log(`\n(c) ${COMPARE}: median ${fmt(median(c.map((r) => r.seconds)))} s, its guard's CPU ${fmt(median(perGiBc), 3)} s/GiB (median); this build's guard ${fmt(median(b.map((r) => r.guardCpu / (SOURCE_BYTES / GiB))), 3)} s/GiB`);
}

const GIB = SOURCE_BYTES / GiB;
const perGiB = (x) => (x == null ? NaN : x / GIB);
/** Per round: wall seconds, b/a, and CPU seconds per GiB of plain borg serve, the guard's own node process, and its child borg serve. */
const per = [];
for (let i = 0; i < ROUNDS; i++) {
  per.push({
    a: a[i].seconds,
    b: b[i].seconds,
    ratio: b[i].seconds / a[i].seconds,
    plainServe: perGiB(a[i].serverCpu),
    guard: perGiB(b[i].guardCpu),
    guardedServe: perGiB(b[i].serverCpu == null || b[i].guardCpu == null ? null : b[i].serverCpu - b[i].guardCpu),
    guardRss: b[i].guardRss,
    clientA: a[i].clientCpu,
    clientB: b[i].clientCpu,
  });
}
const med = (k) => median(per.map((r) => r[k]));
const cols = ['a', 'b', 'ratio', 'plainServe', 'guard', 'guardedServe', 'guardRss', 'clientA', 'clientB'];
const digits = { ratio: 3, plainServe: 3, guard: 3, guardedServe: 3, guardRss: 0 };
const cells = (r) => cols.map((k) => fmt(r[k] ?? NaN, digits[k] ?? 2));
const rows = [
  ['round', 'a: borg serve s', 'b: borgkeep s', 'b/a', 'a: borg serve CPU s/GiB', 'b: guard CPU s/GiB', "b: guard's borg serve CPU s/GiB", 'b: guard peak RSS MiB', 'a client CPU s', 'b client CPU s'],
  ...per.map((r, i) => [String(i + 1), ...cells(r)]),
  ['median', ...cells(Object.fromEntries(cols.map((k) => [k, med(k)])))],
];
console.log('');
printTable(rows);
const medA = med('a');
const medB = med('b');
const roundsRatio = median(per.map((r) => r.ratio));
console.log(
  `\n${ROUNDS} rounds; ratio of medians b/a = ${fmt(medB / medA, 3)}, median of the rounds' b/a ${fmt(roundsRatio, 3)} (goal <= 1.03; wall time, sensitive to a busy machine); ` +
    `${fmt(SOURCE_BYTES / 1e6 / medA, 0)} MB/s plain, ${fmt(SOURCE_BYTES / 1e6 / medB, 0)} MB/s guarded\n` +
    `guard's own CPU ${fmt(med('guard'), 3)} s/GiB (median; its node process, without its borg serve), ` +
    `plain borg serve CPU ${fmt(med('plainServe'), 3)} s/GiB, the guard's borg serve ${fmt(med('guardedServe'), 3)} s/GiB; ` +
    `guard peak RSS ${fmt(med('guardRss'), 0)} MiB`,
);

let floor = null;
if (FLOOR) {
  const medD = median(d.map((r) => r.seconds));
  // Server-side CPU (everything the BORG_RSH script ran) per GiB above plain borg serve's, per
  // round: what the pipe alone (d) and the guard (b) add, measured as issue 2 measured it.
  const extra = (x) => median(x.map((r, i) => perGiB(r.serverCpu == null || a[i].serverCpu == null ? null : r.serverCpu - a[i].serverCpu)));
  floor = {
    seconds: d.map((r) => r.seconds),
    median: medD,
    ratioToPlain: medD / medA,
    guardToFloor: medB / medD,
    roundsRatioToPlain: median(d.map((r, i) => r.seconds / a[i].seconds)),
    extraServerCpuPerGiB: extra(d),
    guardExtraServerCpuPerGiB: extra(b),
  };
  console.log(
    `(d) plain borg serve behind a node process that only pipes: median ${fmt(medD)} s, d/a ${fmt(floor.ratioToPlain, 3)} (median of the rounds' ${fmt(floor.roundsRatioToPlain, 3)}); ` +
      `the guard against it b/d ${fmt(floor.guardToFloor, 3)}\n` +
      `server-side CPU above plain borg serve's (median per GiB): the node pipe ${fmt(floor.extraServerCpuPerGiB, 3)} s, the guard ${fmt(floor.guardExtraServerCpuPerGiB, 3)} s`,
  );
}

let profile = null;
if (PROFILE) {
  const dir = process.env.BENCH_PROFILE_DIR ?? join(tmp.dir, 'cpu-prof');
  const n = ++counter;
  const src = writeRandomTree(join(tmp.dir, `src-${n}`), SOURCE_BYTES);
  syncDisks();
  await runGuard(n, src, { BENCH_CPU_PROF: dir });
  profile = summariseProfile(dir, 25);
  console.log(`\nguard CPU profile of one more (b) run (not timed above): ${fmt(profile.totalMs / 1000)} s sampled`);
  printTable([['self ms', 'self %', 'function'], ...profile.top.map((f) => [fmt(f.selfMs, 0), fmt(f.selfPct, 1), f.name])]);
}

saveResults(GUARD === 'append' ? 'borgCreate' : `borgCreate-${GUARD}`, {
  when: new Date().toISOString(),
  node: process.version,
  borg: borgVersion(),
  sourceBytes: SOURCE_BYTES,
  compression: COMPRESSION,
  encryption: ENCRYPTION,
  guard: GUARD,
  a: { what: 'borg serve --restrict-to-repository R --append-only', seconds: a.map((r) => r.seconds), serverCpuSeconds: a.map((r) => r.serverCpu), clientCpuSeconds: a.map((r) => r.clientCpu), median: medA },
  b: { what: 'borgkeep borg-serve --key K (append role)', seconds: b.map((r) => r.seconds), serverCpuSeconds: b.map((r) => r.serverCpu), guardCpuSeconds: b.map((r) => r.guardCpu), guardPeakRssMiB: b.map((r) => r.guardRss), clientCpuSeconds: b.map((r) => r.clientCpu), median: medB },
  ratio: medB / medA,
  roundsRatio,
  ...(floor ? { d: { what: 'plain borg serve behind bench/lib/passthrough.mjs (node, pipes only)', ...floor } } : {}),
  cpuSecondsPerGiB: { plainServe: med('plainServe'), guard: med('guard'), guardedServe: med('guardedServe') },
  guardPeakRssMiB: med('guardRss'),
  goal: 1.03,
  ...(profile ? { guardProfileTop: profile.top.slice(0, 10) } : {}),
});
tmp.cleanup();
