// Soak: SOAK_CLIENTS (50) real borg clients at once, each in a loop of create / list / prune
// cycles on its own repository, through the embedded SSH gateway of one `borgkeep serve`, for
// SOAK_MINUTES (30). Each client has an append key (create, list) and a prune key (prune); about
// SOAK_DENIAL_RATE (5 %) of the cycles are an intended denial instead: the append key tries the
// prune, which the guard must refuse. After each cycle a set-up probe (the real ssh client, then
// negotiate and open by hand) times the session set-up: TCP + SSH handshake + key login + exec +
// guard + child `borg serve` + borg's lock, until the open's reply.
//
// Reported and stored in bench/results/latest.json:
//   - throughput (cycles per minute), the set-up time's median and p99 under load, against the
//     same probe on the idle server measured first in the same run (the baseline), and a
//     cycle's time alone vs under load;
//   - the gateway's RSS (VmRSS of the serve process) every SOAK_SAMPLE_SECONDS (10): first,
//     last, max, and the slope of a least-squares line through the samples after the first
//     minute (MB per hour), to show it does not grow;
//   - the gateway's live JS heap, from a heap snapshot (taken after V8's garbage collection) of
//     the idle server before the soak and again once every client has stopped: a leak is live
//     objects that grow from one idle moment to the next; the groups that grew most are printed;
//   - failed sessions: every client run that did not end as intended, and every ledger session
//     whose result is not `ok` (or `denied` for the intended denials), or that is still open;
//   - afterwards every repository's archives, straight from the disk, are the last three each
//     client created (nothing committed was lost), and SOAK_CHECK (5) of them pass `borg check`.
//
// Settings: SOAK_MINUTES, SOAK_CLIENTS, SOAK_DENIAL_RATE, SOAK_SAMPLE_SECONDS, SOAK_CHECK.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import BetterSqlite3 from 'better-sqlite3';

import { heapGrowth, summariseHeapSnapshot, takeHeapSnapshot } from './lib/heap-snapshot.mjs';
import { BORGKEEP, ROOT, borgClientEnv, borgVersion, fmt, median, printTable, requireBuilt, run, runOk, saveResults, tempRoot } from './lib/common.mjs';

requireBuilt();
const { encode, MsgMap, CLIENT_LIMITS } = await import(join(ROOT, 'dist', 'rpc', 'msgpack.js'));
const { createFrameSplitter } = await import(join(ROOT, 'dist', 'rpc', 'frame-splitter.js'));

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 50);
const DENIAL_RATE = Number(process.env.SOAK_DENIAL_RATE ?? 0.05);
const SAMPLE_MS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 10) * 1000;
const CHECK = Number(process.env.SOAK_CHECK ?? 5);
const KEEP = 3;

const tmp = tempRoot('borgkeep-bench-soak');
const dataDir = join(tmp.dir, 'data');
const keysDir = join(tmp.dir, 'keys');
const knownHosts = join(tmp.dir, 'known_hosts');
mkdirSync(keysDir);
const cli = (args) => runOk(process.execPath, [BORGKEEP, '--data-dir', dataDir, ...args]);
const log = (text) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${text}`);

/** Runs `fn` over `items`, `width` at a time. */
async function inBatches(items, width, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

// --- the installation -------------------------------------------------------------------------
log(`setting up ${CLIENTS} repositories and ${2 * CLIENTS + 1} keys`);
const keyNames = ['admin', ...Array.from({ length: CLIENTS }, (_, i) => [`c${i}-append`, `c${i}-prune`]).flat()];
await inBatches(keyNames, 8, (k) => runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${k}@soak`, '-f', join(keysDir, k)]));
await cli(['key', 'add', 'admin', '--file', join(keysDir, 'admin.pub')]);
await inBatches(Array.from({ length: CLIENTS }, (_, i) => i), 4, async (i) => {
  await cli(['repo', 'create', `r${i}`]);
  await cli(['key', 'add', `c${i}-append`, '--file', join(keysDir, `c${i}-append.pub`), '--repo', `r${i}`, '--role', 'append']);
  await cli(['key', 'add', `c${i}-prune`, '--file', join(keysDir, `c${i}-prune.pub`), '--repo', `r${i}`, '--role', 'prune']);
  await cli(['grant', 'admin', `r${i}`, '--role', 'full']);
});

const snapDir = join(tmp.dir, 'heap');
mkdirSync(snapDir);
const serve = spawn(process.execPath, ['--heapsnapshot-signal=SIGUSR2', BORGKEEP, '--data-dir', dataDir, 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'], {
  env: { ...process.env, BORGKEEP_DATA_DIR: undefined },
  stdio: ['ignore', 'pipe', 'pipe'],
  cwd: snapDir,
});
let serveLog = '';
let serveLogBytes = 0;
const keepLog = (d) => {
  serveLogBytes += d.length;
  serveLog = (serveLog + d.toString()).slice(-200_000); // the tail, for errors
};
serve.stdout.on('data', keepLog);
serve.stderr.on('data', keepLog);
const port = await new Promise((resolve, reject) => {
  const t = setInterval(() => {
    const m = /ssh gateway listening on 127\.0\.0\.1:(\d+)/.exec(serveLog);
    if (m) {
      clearInterval(t);
      resolve(Number(m[1]));
    } else if (serve.exitCode !== null) {
      clearInterval(t);
      reject(new Error(`borgkeep serve exited:\n${serveLog}`));
    }
  }, 50);
});
const hostKey = readFileSync(join(dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
writeFileSync(knownHosts, `borgkeep-soak ${hostKey}\n`);
const sshArgs = (key) => [
  ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'HostName=127.0.0.1', '-o', 'HostKeyAlias=borgkeep-soak'],
  ...['-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'LogLevel=ERROR'],
  ...['-o', 'ConnectTimeout=60', '-p', String(port), '-i', join(keysDir, key)],
];
const rsh = join(tmp.dir, 'ssh-rsh');
writeFileSync(rsh, `#!/bin/sh\nexec ssh ${sshArgs('KEY').map((a) => (a.endsWith('/KEY') ? `"${keysDir}/$SOAK_KEY"` : `'${a}'`)).join(' ')} "$@"\n`, { mode: 0o755 });
const url = (i) => `ssh://borg@borgkeep-soak/./r${i}`;
const clientEnv = (i, key) => borgClientEnv(join(tmp.dir, 'clients', String(i)), rsh, { SOAK_KEY: key });

// --- one cycle and the set-up probe -------------------------------------------------------------
/** Negotiate and open over a fresh SSH session; resolves with the ms until the open's reply. */
function probeSetup(i) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const ssh = spawn('ssh', [...sshArgs(`c${i}-append`), 'borg@borgkeep-soak', 'borg serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const splitter = createFrameSplitter(CLIENT_LIMITS);
    let replies = 0;
    let outcome = null;
    let stderr = '';
    ssh.stderr.on('data', (d) => (stderr += d));
    ssh.stdin.on('error', () => {});
    ssh.stdout.on('data', (d) => {
      for (const frame of splitter.push(d)) {
        if (++replies < 2) continue; // the negotiate's reply
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const text = frame.toString('latin1');
        outcome ??= text.includes('exception_class') ? { ok: false, why: `open refused: ${text.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200)}` } : { ok: true, ms };
        ssh.stdin.end();
      }
    });
    const timer = setTimeout(() => ssh.kill('SIGKILL'), 300_000);
    ssh.on('close', (code) => {
      clearTimeout(timer);
      resolve(outcome ?? { ok: false, why: `no open reply (ssh exit ${code}): ${stderr.trim().slice(0, 300)}` });
    });
    ssh.stdin.write(encode([1, 1, 'negotiate', [MsgMap.of([['client_version', [1, 2, 4, -1]]])]]));
    const open = [['path', Buffer.from(`/./r${i}`)], ['create', false], ['lock_wait', 60], ['lock', true], ['exclusive', false], ['append_only', false], ['make_parent_dirs', false]];
    ssh.stdin.write(encode(MsgMap.of([['i', 2], ['m', Buffer.from('open')], ['a', MsgMap.of(open)]])));
  });
}

const stats = { cycles: 0, denialsIntended: 0, failures: [], setupMs: [], cycleMs: [] };
const lastArchives = Array.from({ length: CLIENTS }, () => []);
const counters = Array(CLIENTS).fill(0);

/** The client's source: four 64 KiB files, one of them new each cycle (so every create writes). */
function touchSource(i, n) {
  const dir = join(tmp.dir, 'src', String(i));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `part-${n % 4}.bin`), randomBytes(64 * 1024));
  return dir;
}

async function cycle(i, record) {
  const t0 = Date.now();
  const fail = (what, r) => stats.failures.push(`client ${i} ${what}: exit ${r.code}: ${(r.stderr || r.why || '').trim().slice(0, 400)}`);
  const n = counters[i]++;
  const name = `c${n}`;
  const src = touchSource(i, n);
  const create = await run('borg', ['create', '--compression', 'lz4', `${url(i)}::${name}`, src], { env: clientEnv(i, `c${i}-append`) });
  if (create.code !== 0) fail('create', create);
  else lastArchives[i].push(name);
  const list = await run('borg', ['list', '--short', url(i)], { env: clientEnv(i, `c${i}-append`) });
  if (list.code !== 0) fail('list', list);
  let denial = false;
  if (lastArchives[i].length >= 2 && Math.random() < DENIAL_RATE) {
    // Intended: the append key may not prune (--keep-last 1: there is always something to
    // delete). Refused by the guard, and nothing changes.
    denial = true;
    const r = await run('borg', ['prune', '--keep-last', '1', url(i)], { env: clientEnv(i, `c${i}-append`) });
    if (r.code === 0 || !/borgkeep refused delete/.test(r.stderr)) fail('intended denial (append key pruning)', r);
  } else {
    const r = await run('borg', ['prune', '--keep-last', String(KEEP), url(i)], { env: clientEnv(i, `c${i}-prune`) });
    if (r.code !== 0) fail('prune', r);
    else lastArchives[i] = lastArchives[i].slice(-KEEP);
  }
  const probe = await probeSetup(i);
  if (!probe.ok) fail('set-up probe', { code: '-', why: probe.why });
  if (record) {
    stats.cycles++;
    if (denial) stats.denialsIntended++;
    if (probe.ok) stats.setupMs.push(probe.ms);
    stats.cycleMs.push(Date.now() - t0);
  }
  return { ms: Date.now() - t0, setup: probe.ok ? probe.ms : null };
}

// --- baseline: the idle server --------------------------------------------------------------------
log(`borgkeep serve (pid ${serve.pid}) on port ${port}; initialising the repositories`);
const inits = await inBatches(Array.from({ length: CLIENTS }, (_, i) => i), 8, (i) => run('borg', ['init', '-e', 'repokey', url(i)], { env: clientEnv(i, 'admin') }));
inits.forEach((r, i) => {
  if (r.code !== 0) throw new Error(`borg init of r${i} failed: ${r.stderr}`);
});
log('baseline: the set-up probe and a cycle on the idle server');
const idleSetup = [];
for (let k = 0; k < 20; k++) {
  const p = await probeSetup(0);
  if (!p.ok) throw new Error(`baseline probe failed: ${p.why}`);
  idleSetup.push(p.ms);
}
const idleCycle = [];
for (let k = 0; k < 3; k++) idleCycle.push((await cycle(0, false)).ms);
log('heap snapshot of the idle server');
const heapBefore = summariseHeapSnapshot(await takeHeapSnapshot(serve, snapDir), { remove: true });

// --- the soak -----------------------------------------------------------------------------------
const rss = () => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${serve.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const startedAt = Date.now();
const deadline = startedAt + MINUTES * 60_000;
const samples = [{ s: 0, mb: rss() }];
const sampler = setInterval(() => {
  const s = (Date.now() - startedAt) / 1000;
  samples.push({ s, mb: rss() });
  if (samples.length % 6 === 1) {
    log(`${fmt(s / 60, 1)} min: ${stats.cycles} cycles, ${stats.failures.length} failures, gateway RSS ${fmt(samples.at(-1).mb, 1)} MB`);
  }
}, SAMPLE_MS);
log(`soak: ${CLIENTS} clients for ${MINUTES} min`);
await Promise.all(
  Array.from({ length: CLIENTS }, async (_, i) => {
    while (Date.now() < deadline) await cycle(i, true);
  }),
);
const elapsedMin = (Date.now() - startedAt) / 60_000;
clearInterval(sampler);
samples.push({ s: (Date.now() - startedAt) / 1000, mb: rss() });
log('every client stopped; heap snapshot of the idle server');
await new Promise((r) => setTimeout(r, 5000)); // the last sessions' ledger writes
const heapAfter = summariseHeapSnapshot(await takeHeapSnapshot(serve, snapDir), { remove: true });
const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${serve.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

// --- afterwards ---------------------------------------------------------------------------------
serve.kill('SIGTERM');
const serveExit = await new Promise((resolve) => serve.once('exit', (code, signal) => resolve(code ?? signal)));
log(`borgkeep serve stopped (${serveExit}); reading the ledger and the repositories`);

const db = new BetterSqlite3(join(dataDir, 'borgkeep.db'), { readonly: true });
const byResult = Object.fromEntries(db.prepare('select result, count(*) as n from sessions group by result').all().map((r) => [r.result, r.n]));
const badSessions = db
  .prepare("select id, key_name, repository_name, result, detail from sessions where result not in ('ok', 'denied') or (result = 'denied' and key_name not like '%-append') limit 20")
  .all();
const deniedSessions = db.prepare("select count(*) as n from sessions where result = 'denied'").get().n;
const denialRows = db.prepare('select method, reason, count(*) as n from denials group by method, reason').all();
db.close();

const repoDirs = Object.fromEntries(JSON.parse((await cli(['repo', 'list', '--json'])).stdout).repositories.map((r) => [r.name, r.path]));
const lost = [];
await inBatches(Array.from({ length: CLIENTS }, (_, i) => i), 4, async (i) => {
  const r = await run('borg', ['list', '--short', repoDirs[`r${i}`]], { env: clientEnv(i, 'admin') });
  const have = r.stdout.split('\n').filter(Boolean).sort();
  const want = [...lastArchives[i]].sort();
  if (r.code !== 0 || have.join() !== want.join()) lost.push(`r${i}: expected ${want.join(',')} found ${have.join(',')} ${r.stderr.trim()}`);
});
const checked = [];
for (let i = 0; i < Math.min(CHECK, CLIENTS); i++) {
  const r = await run('borg', ['check', repoDirs[`r${i}`]], { env: clientEnv(i, 'admin') });
  checked.push({ repo: `r${i}`, ok: r.code === 0, stderr: r.stderr.trim().slice(0, 300) });
}

// --- report -----------------------------------------------------------------------------------
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
/** Least-squares slope of MB over hours, from the samples after `fromS` seconds (the warm-up). */
function slopeMbPerHour(points, fromS = 60) {
  const pts = points.filter((p) => p.s >= fromS && Number.isFinite(p.mb));
  if (pts.length < 3) return NaN;
  const n = pts.length;
  const mx = pts.reduce((a, p) => a + p.s, 0) / n;
  const my = pts.reduce((a, p) => a + p.mb, 0) / n;
  const num = pts.reduce((a, p) => a + (p.s - mx) * (p.mb - my), 0);
  const den = pts.reduce((a, p) => a + (p.s - mx) ** 2, 0);
  return (num / den) * 3600;
}
const rssMb = samples.map((p) => p.mb).filter(Number.isFinite);
const results = {
  minutes: Number(fmt(elapsedMin, 2)),
  clients: CLIENTS,
  cycles: stats.cycles,
  cyclesPerMinute: Number(fmt(stats.cycles / elapsedMin, 1)),
  intendedDenials: stats.denialsIntended,
  clientFailures: stats.failures.length,
  ledger: byResult,
  ledgerDenied: deniedSessions,
  ledgerUnexpected: badSessions.length,
  denials: denialRows,
  setupMs: {
    idleMedian: Number(fmt(median(idleSetup), 0)),
    idleP99: Number(fmt(pct(idleSetup, 99), 0)),
    loadMedian: Number(fmt(median(stats.setupMs), 0)),
    loadP99: Number(fmt(pct(stats.setupMs, 99), 0)),
    loadMax: Number(fmt(Math.max(...stats.setupMs), 0)),
    samples: stats.setupMs.length,
  },
  cycleMs: { idleMedian: Number(fmt(median(idleCycle), 0)), loadMedian: Number(fmt(median(stats.cycleMs), 0)) },
  gatewayRssMb: {
    first: Number(fmt(rssMb[0], 1)),
    afterFirstMinute: Number(fmt(samples.find((p) => p.s >= 60)?.mb ?? NaN, 1)),
    last: Number(fmt(rssMb.at(-1), 1)),
    max: Number(fmt(Math.max(...rssMb), 1)),
    highWaterMark: Number(fmt(hwm, 1)),
    slopeMbPerHour: Number(fmt(slopeMbPerHour(samples), 2)),
    slopeAfter5MinMbPerHour: Number(fmt(slopeMbPerHour(samples, 300), 2)),
    samples: samples.map((p) => [Math.round(p.s), Number(fmt(p.mb, 1))]),
  },
  gatewayHeap: {
    liveMbBefore: Number(fmt(heapBefore.liveMb, 2)),
    liveMbAfter: Number(fmt(heapAfter.liveMb, 2)),
    objectsBefore: heapBefore.objects,
    objectsAfter: heapAfter.objects,
    grewMost: heapGrowth(heapBefore, heapAfter, 8),
  },
  lostArchives: lost.length,
  borgCheck: checked.map((c) => `${c.repo}: ${c.ok ? 'ok' : 'FAILED'}`),
  serveLogMb: Number(fmt(serveLogBytes / 1024 / 1024, 1)),
  borg: borgVersion(),
  node: process.version,
};

console.log('');
printTable([
  ['', 'idle server (baseline)', `${CLIENTS} clients`, 'ratio'],
  ['session set-up median, ms', results.setupMs.idleMedian, results.setupMs.loadMedian, fmt(results.setupMs.loadMedian / results.setupMs.idleMedian)],
  ['session set-up p99, ms', results.setupMs.idleP99, results.setupMs.loadP99, fmt(results.setupMs.loadP99 / results.setupMs.idleP99)],
  ['cycle median, ms', results.cycleMs.idleMedian, results.cycleMs.loadMedian, fmt(results.cycleMs.loadMedian / results.cycleMs.idleMedian)],
]);
console.log('');
console.log(`${results.cycles} cycles in ${fmt(elapsedMin, 1)} min: ${results.cyclesPerMinute} cycles/min (each: create, list, prune, set-up probe)`);
console.log(`intended denials: ${results.intendedDenials}; ledger sessions by result: ${JSON.stringify(byResult)}`);
console.log(`gateway RSS MB: first ${results.gatewayRssMb.first}, after 1 min ${results.gatewayRssMb.afterFirstMinute}, last ${results.gatewayRssMb.last}, max ${results.gatewayRssMb.max} (high-water mark ${results.gatewayRssMb.highWaterMark}); slope after the first minute ${results.gatewayRssMb.slopeMbPerHour} MB/h, after 5 min ${results.gatewayRssMb.slopeAfter5MinMbPerHour} MB/h`);
console.log(`gateway live heap (snapshots of the idle server): before ${results.gatewayHeap.liveMbBefore} MB in ${heapBefore.objects} objects, after ${results.gatewayHeap.liveMbAfter} MB in ${heapAfter.objects} objects`);
for (const g of results.gatewayHeap.grewMost) console.log(`  ${g.group}: ${g.from} -> ${g.to} (${fmt(g.bytesFrom / 1024, 1)} -> ${fmt(g.bytesTo / 1024, 1)} KiB)`);
console.log(`archives lost: ${lost.length}; borg check: ${results.borgCheck.join(', ')}`);
const failed = stats.failures.length + badSessions.length + lost.length + checked.filter((c) => !c.ok).length + (byResult.open ?? 0);
if (deniedSessions !== stats.denialsIntended) console.log(`ledger denied sessions ${deniedSessions} != intended denials ${stats.denialsIntended}`);
for (const f of stats.failures.slice(0, 20)) console.log(`FAILED ${f}`);
for (const s of badSessions) console.log(`LEDGER ${JSON.stringify(s)}`);
for (const l of lost) console.log(`LOST ${l}`);
for (const c of checked.filter((x) => !x.ok)) console.log(`CHECK ${c.repo}: ${c.stderr}`);
console.log(failed === 0 && deniedSessions === stats.denialsIntended ? 'no failed sessions other than the intended denials' : `${failed} failure(s)`);
saveResults('soak', results);
rmSync(tmp.dir, { recursive: true, force: true });
process.exit(failed === 0 && deniedSessions === stats.denialsIntended ? 0 : 1);
