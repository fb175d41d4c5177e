// What a keyless pull costs against a plain push (issue 16): BENCH_SOURCE_BYTES (1 GiB) of fresh
// random data (64 MiB files, new each run so nothing dedups; --compression lz4; repokey) backed
// up from one client host (a network namespace with a real OpenSSH sshd and the user bkpulltest,
// bench/lib/pull-hosts.mjs) into a fresh repository each run:
//   (a) push: the client user runs stock `borg create` over real OpenSSH to the server's real sshd
//       on the veth address, whose authorized_keys forces plain `borg serve --restrict-to-path R`;
//   (b) pull: `borgkeep pull run HOST --wait` (the job runs in that CLI process): borgkeep SSHes
//       into the client's sshd, forwards a port back, runs stock `borg create` there with a job
//       key, and its keyless proxy re-encrypts every object into a repository the vault holds the
//       key of (src/pull/).
// Timed: (a) from spawning `borg create` to its exit; (b) from spawning `pull run --wait` to its
// exit (so it includes the SSH connection, the job key and the clean-up on the client).
// CPU seconds: (a) server = the server sshd's reaped children (sshd + borg serve); (b) server =
// GNU time around the borgkeep process (node + its borg serve child), its node process alone from
// bench/lib/report-cpu.mjs; client, both = borg create + its ssh (a wrapper around the client's
// borg appends `times`; the client sshd's own share of (b)'s connection is not counted).
// Rounds alternate a, b (BENCH_RUNS, 3); medians, b/a and CPU s/GiB are printed and stored in
// bench/results/latest.json under "pull". BENCH_PROFILE=1 adds one more (b) run under
// `node --cpu-prof` and prints the job process's hottest functions (BENCH_PROFILE_DIR keeps the
// .cpuprofile files; with BENCH_RUNS=0 only that run, nothing saved). Needs root (namespaces, a second sshd, runuser); client host number 201.

import { chmodSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import {
  BORGKEEP,
  GiB,
  MiB,
  ROOT,
  borgClientEnv,
  borgVersion,
  fmt,
  median,
  printTable,
  readGuardCpuLog,
  requireBuilt,
  run,
  runOk,
  saveResults,
  syncDisks,
  tempRoot,
  writeRandomTree,
} from './lib/common.mjs';
import { summariseProfile } from './lib/cpu-profile.mjs';
import { childCpuSeconds, preparePullServer, startPullHosts, waitNoChildren } from './lib/pull-hosts.mjs';

requireBuilt();
if (process.getuid?.() !== 0) throw new Error('the pull benchmark needs root (network namespaces, a second sshd, runuser)');
const SOURCE_BYTES = Number(process.env.BENCH_SOURCE_BYTES ?? GiB);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const PROFILE = process.env.BENCH_PROFILE === '1';
const COMPRESSION = 'lz4';
const TIME = '/usr/bin/time';
if (!existsSync(TIME)) throw new Error('the pull benchmark needs GNU time (/usr/bin/time)');
const NET = 201;
const GIB = SOURCE_BYTES / GiB;

const tmp = tempRoot('borgkeep-bench-pull');
// The client user reads its source data here.
chmodSync(tmp.dir, 0o755);
const hosts = await startPullHosts(NET, tmp.dir);
const dataDir = join(tmp.dir, 'borgkeep');
const { cli, vaultedRepo } = await preparePullServer(tmp.dir, dataDir, hosts);
const loads = [];

/** Fresh random data the client user can read. */
function freshSource(n) {
  const src = writeRandomTree(join(tmp.dir, `src-${n}`), SOURCE_BYTES);
  chmodSync(src, 0o755);
  for (const f of readdirSync(src)) chmodSync(join(src, f), 0o644);
  syncDisks();
  return src;
}

const timeArgs = (file, argv) => [TIME, ['-f', '%U %S', '-o', file, ...argv]];
const readTime = (file) => readFileSync(file, 'utf8').trim().split('\n').pop().split(' ').map(Number).reduce((x, y) => x + y, 0);

/** (a): stock borg create over OpenSSH to the server's sshd with plain borg serve. */
async function runPush(n, src) {
  const repo = join(tmp.dir, `push-repo-${n}`);
  const initEnv = borgClientEnv(join(tmp.dir, `init-${n}`), 'false');
  const base = join(hosts.tmpDir, `push-base-${n}`);
  const clientEnv = await hosts.preparePush(repo, join(tmp.dir, `init-${n}`), base);
  syncDisks();
  hosts.takeServeCpu();
  hosts.takeClientBorgCpu();
  const before = childCpuSeconds(hosts.serverSshdPid);
  const [cmd, ...argv] = hosts.asClient([...clientEnv, 'borg', 'create', '--compression', COMPRESSION, `ssh://root@${hosts.serverAddress}:2022${repo}::bench`, src]);
  const t0 = process.hrtime.bigint();
  const r = await run(cmd, argv);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) throw new Error(`borg create (push ${n}) failed (${r.code}):\n${r.stderr}\n${hosts.serverLog().slice(-2000)}`);
  await waitNoChildren(hosts.serverSshdPid);
  const serverCpu = childCpuSeconds(hosts.serverSshdPid) - before;
  rmSync(base, { recursive: true, force: true });
  // The archive is there, with the data's size.
  const info = JSON.parse((await runOk('borg', ['info', '--json', `${repo}::bench`], { env: initEnv })).stdout);
  if (info.archives[0].stats.original_size < SOURCE_BYTES) throw new Error('the pushed archive is smaller than the source');
  return { seconds, serverCpu, serveCpu: hosts.takeServeCpu(), nodeCpu: null, clientCpu: hosts.takeClientBorgCpu() };
}

/** (b): `borgkeep pull run HOST --wait` into a fresh repository the vault holds the key of. */
async function runPull(n, src, extraNodeArgs = []) {
  const repoName = `pull${n}`;
  await vaultedRepo(repoName);
  const host = `client${n}`;
  await cli([
    'host', 'add', host, '--address', `${hosts.address}:22`, '--user', hosts.user, '--repo', repoName,
    '--paths', src, '--compression', COMPRESSION, '--archive', '{host}-{now}', '--accept-host-key', hosts.clientHostKeyFingerprint,
  ]);
  syncDisks();
  const timeFile = join(tmp.dir, `b-${n}.time`);
  hosts.takeClientBorgCpu();
  const nodeFile = join(tmp.dir, `b-${n}.node-cpu`);
  const [cmd, argv] = timeArgs(timeFile, [
    process.execPath, ...extraNodeArgs, `--import=${pathToFileURL(join(ROOT, 'bench', 'lib', 'report-cpu.mjs')).href}`,
    BORGKEEP, '--data-dir', dataDir, 'pull', 'run', host, '--wait',
  ]);
  const t0 = process.hrtime.bigint();
  const r = await run(cmd, argv, { env: { ...process.env, BENCH_GUARD_CPU: nodeFile } });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) throw new Error(`pull run (${n}) failed (${r.code}):\n${r.stdout.slice(-2000)}\n${r.stderr}`);
  await waitNoChildren(hosts.clientSshdPid);
  const clientCpu = hosts.takeClientBorgCpu();
  const jobs = JSON.parse((await cli(['pull', 'list', '--host', host, '--json'])).stdout).jobs;
  if (jobs[0]?.state !== 'done') throw new Error(`the pull job ended ${jobs[0]?.state}: ${jobs[0]?.reason}`);
  if (jobs[0].bytes < SOURCE_BYTES) throw new Error(`the pull job reports ${jobs[0].bytes} bytes, less than the source`);
  await cli(['host', 'remove', host]);
  const node = readGuardCpuLog(nodeFile);
  return { seconds, serverCpu: readTime(timeFile), nodeCpu: node?.cpu ?? null, nodeSys: node?.system ?? null, nodeFaults: node?.pageFaults ?? null, nodeGcMs: node?.gcMs ?? null, nodeFullGcs: node?.fullGcs ?? null, nodeRss: node?.maxRssMiB ?? null, clientCpu };
}

let counter = 0;
async function measure(kind, extra) {
  const n = ++counter;
  const src = freshSource(n);
  loads.push(loadavg()[0]);
  try {
    return kind === 'a' ? await runPush(n, src) : await runPull(n, src, extra);
  } finally {
    for (const name of readdirSync(tmp.dir)) {
      if (name.endsWith(`-${n}`)) rmSync(join(tmp.dir, name), { recursive: true, force: true });
    }
    rmSync(join(dataDir, 'repos', `pull${n}`), { recursive: true, force: true });
    syncDisks();
  }
}

console.log(
  `pull of ${SOURCE_BYTES / MiB} MiB of fresh random data, --compression ${COMPRESSION}, -e repokey; ${ROUNDS} rounds alternating ` +
    `(a) push over OpenSSH to plain borg serve / (b) borgkeep pull run --wait (keyless, key in the vault); ${borgVersion()}, node ${process.version}`,
);
const a = [];
const b = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    a.push(await measure('a'));
    console.log(`  round ${i + 1}: a ${fmt(a[i].seconds)} s`);
    b.push(await measure('b'));
    console.log(`  round ${i + 1}: b ${fmt(b[i].seconds)} s, b/a ${fmt(b[i].seconds / a[i].seconds, 3)}, server CPU a ${fmt(a[i].serverCpu / GIB, 3)} / b ${fmt(b[i].serverCpu / GIB, 3)} s/GiB`);
  }

  const perGiB = (x) => (x == null ? NaN : x / GIB);
  const per = a.map((ra, i) => ({
    a: ra.seconds,
    b: b[i].seconds,
    ratio: b[i].seconds / ra.seconds,
    serverA: perGiB(ra.serverCpu),
    serveA: perGiB(ra.serveCpu),
    serverB: perGiB(b[i].serverCpu),
    nodeB: perGiB(b[i].nodeCpu),
    nodeSysB: perGiB(b[i].nodeSys),
    faultsB: perGiB(b[i].nodeFaults) / 1000,
    gcB: perGiB(b[i].nodeGcMs) / 1000,
    fullGcsB: perGiB(b[i].nodeFullGcs),
    clientA: perGiB(ra.clientCpu),
    clientB: perGiB(b[i].clientCpu),
  }));
  const med = (k) => median(per.map((r) => r[k]));
  const cols = ['a', 'b', 'ratio', 'serverA', 'serveA', 'serverB', 'nodeB', 'nodeSysB', 'faultsB', 'gcB', 'fullGcsB', 'clientA', 'clientB'];
  const digits = { ratio: 3, serverA: 3, serveA: 3, serverB: 3, nodeB: 3, nodeSysB: 3, faultsB: 1, gcB: 3, fullGcsB: 0, clientA: 3, clientB: 3 };
  const cells = (r) => cols.map((k) => fmt(r[k] ?? NaN, digits[k] ?? 2));
  console.log('');
  printTable([
    ['round', 'a: push s', 'b: pull s', 'b/a', 'a: server CPU s/GiB (sshd+borg serve)', 'a: its borg serve alone', 'b: server CPU s/GiB (borgkeep+borg serve)', 'b: borgkeep node alone', 'b: of it system', 'b: its page faults k/GiB', 'b: its GC s/GiB', 'b: its full GCs/GiB', 'a: client CPU s/GiB (borg+ssh)', 'b: client CPU s/GiB'],
    ...per.map((r, i) => [String(i + 1), ...cells(r)]),
    ['median', ...cells(Object.fromEntries(cols.map((k) => [k, med(k)])))],
  ]);
  const medA = med('a');
  const medB = med('b');
  console.log(
    `\n${ROUNDS} rounds; ratio of medians b/a = ${fmt(medB / medA, 3)} (goal <= 1.15; wall time, sensitive to a busy machine); ` +
      `${fmt(SOURCE_BYTES / 1e6 / medA, 0)} MB/s push, ${fmt(SOURCE_BYTES / 1e6 / medB, 0)} MB/s pull; load average at the rounds' starts ${loads.map((l) => fmt(l, 1)).join(', ')}`,
  );

  let profile = null;
  if (PROFILE) {
    const dir = process.env.BENCH_PROFILE_DIR ?? join(tmp.dir, 'cpu-prof');
    await measure('b', ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    profile = summariseProfile(dir, 25);
    console.log(`\nCPU profile of the pull job's process, one more (b) run (not timed above): ${fmt(profile.totalMs / 1000)} s sampled`);
    printTable([['self ms', 'self %', 'function'], ...profile.top.map((f) => [fmt(f.selfMs, 0), fmt(f.selfPct, 1), f.name])]);
  }

  // BENCH_RUNS=0 (a profile alone) has no figures to keep.
  if (ROUNDS > 0) saveResults('pull', {
    when: new Date().toISOString(),
    node: process.version,
    borg: borgVersion(),
    sourceBytes: SOURCE_BYTES,
    compression: COMPRESSION,
    encryption: 'repokey',
    loadAverages: loads,
    a: { what: 'borg create over OpenSSH to sshd with plain borg serve --restrict-to-path', seconds: a.map((r) => r.seconds), serverCpuSeconds: a.map((r) => r.serverCpu), borgServeCpuSeconds: a.map((r) => r.serveCpu), clientCpuSeconds: a.map((r) => r.clientCpu), median: medA },
    b: { what: 'borgkeep pull run HOST --wait (keyless proxy, repository key in the vault)', seconds: b.map((r) => r.seconds), serverCpuSeconds: b.map((r) => r.serverCpu), nodeCpuSeconds: b.map((r) => r.nodeCpu), nodeSystemSeconds: b.map((r) => r.nodeSys), nodePageFaults: b.map((r) => r.nodeFaults), nodeGcMs: b.map((r) => r.nodeGcMs), nodeFullGcs: b.map((r) => r.nodeFullGcs), nodePeakRssMiB: b.map((r) => r.nodeRss), clientCpuSeconds: b.map((r) => r.clientCpu), median: medB },
    ratio: medB / medA,
    cpuSecondsPerGiB: { serverPush: med('serverA'), pushBorgServe: med('serveA'), serverPull: med('serverB'), borgkeepNode: med('nodeB'), clientPush: med('clientA'), clientPull: med('clientB') },
    goal: 1.15,
    ...(profile ? { profileTop: profile.top.slice(0, 10) } : {}),
  });
} finally {
  await hosts.close();
  tmp.cleanup();
}
