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
// SOAK_NODES=1 (issue 19): the same soak across a fleet on a private PostgreSQL server: two
// gateways (`borgkeep serve`, each its own data directory) and two storage nodes (`borgkeep node
// run`); the repositories alternate between the nodes and the clients between the gateways, so
// every pairing runs. Memory is sampled (and heap-snapshotted) in all four processes; the ledger
// is read from PostgreSQL and the repositories from the nodes' disks. Needs root (PostgreSQL).
// Default there: SOAK_CLIENTS 100.
//
// Settings: SOAK_MINUTES, SOAK_CLIENTS, SOAK_DENIAL_RATE, SOAK_SAMPLE_SECONDS, SOAK_CHECK, SOAK_NODES.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';

import { heapGrowth, summariseHeapSnapshot, takeHeapSnapshot } from './lib/heap-snapshot.mjs';
import { startPostgres } from './lib/postgres.mjs';
import { BORGKEEP, ROOT, borgClientEnv, borgVersion, fmt, median, printTable, requireBuilt, run, runOk, saveResults, tempRoot } from './lib/common.mjs';

requireBuilt();
const { encode, MsgMap, CLIENT_LIMITS } = await import(join(ROOT, 'dist', 'rpc', 'msgpack.js'));
const { createFrameSplitter } = await import(join(ROOT, 'dist', 'rpc', 'frame-splitter.js'));

const NODES = process.env.SOAK_NODES === '1';
const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? (NODES ? 100 : 50));
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
/** A borgkeep process of the soak, its log kept (the tail, for errors). */
function startProcess(label, args, snapDir) {
  mkdirSync(snapDir, { recursive: true });
  const child = spawn(process.execPath, ['--heapsnapshot-signal=SIGUSR2', BORGKEEP, ...args], { env: { ...process.env, BORGKEEP_DATA_DIR: undefined }, stdio: ['ignore', 'pipe', 'pipe'], cwd: snapDir });
  const proc = { label, child, snapDir, log: '', logBytes: 0 };
  const keep = (d) => {
    proc.logBytes += d.length;
    proc.log = (proc.log + d.toString()).slice(-200_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return proc;
}
function waitLog(proc, pattern) {
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      const m = pattern.exec(proc.log);
      if (m) {
        clearInterval(t);
        resolve(m);
      } else if (proc.child.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`${proc.label} exited:\n${proc.log}`));
      }
    }, 50);
  });
}
const hostKeyOf = (dir) => readFileSync(join(dir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');

const processes = [];
const gateways = [];
const nodeDirs = {};
let postgres = null;
const database = [];
if (NODES) {
  postgres = await startPostgres();
  process.once('exit', () => postgres.stop());
  database.push('--database', postgres.url);
  for (const name of ['n1', 'n2']) {
    nodeDirs[name] = join(tmp.dir, `node-${name}`);
    const proc = startProcess(`node ${name}`, ['--data-dir', nodeDirs[name], 'node', 'run', '--name', name, ...database, '--ssh-listen', '127.0.0.1:0'], join(tmp.dir, 'heap', name));
    processes.push(proc);
    await waitLog(proc, /node SSH server listening on/);
  }
}
for (const [n, label] of (NODES ? ['a', 'b'] : ['a']).entries()) {
  const dir = n === 0 ? dataDir : join(tmp.dir, `gateway-${label}`);
  const proc = startProcess(`gateway ${label}`, ['--data-dir', dir, 'serve', ...database, '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'], join(tmp.dir, 'heap', `gateway-${label}`));
  processes.push(proc);
  const port = Number((await waitLog(proc, /ssh gateway listening on 127\.0\.0\.1:(\d+)/))[1]);
  gateways.push({ label, port, alias: `borgkeep-soak-${label}`, proc });
}
writeFileSync(knownHosts, gateways.map((g, n) => `${g.alias} ${hostKeyOf(n === 0 ? dataDir : join(tmp.dir, `gateway-${g.label}`))}\n`).join(''));

log(`setting up ${CLIENTS} repositories and ${2 * CLIENTS + 1} keys${NODES ? ' on 2 storage nodes, behind 2 gateways' : ''}`);
const keyNames = ['admin', ...Array.from({ length: CLIENTS }, (_, i) => [`c${i}-append`, `c${i}-prune`]).flat()];
await inBatches(keyNames, 8, (k) => runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${k}@soak`, '-f', join(keysDir, k)]));
await cli(['key', 'add', 'admin', '--file', join(keysDir, 'admin.pub')]);
/** Client i's gateway and its repository's node: every pairing runs. */
const gatewayOf = (i) => gateways[i % gateways.length];
const nodeOf = (i) => (NODES ? `n${1 + (Math.floor(i / 2) % 2)}` : null);
await inBatches(Array.from({ length: CLIENTS }, (_, i) => i), 4, async (i) => {
  await cli(['repo', 'create', `r${i}`, ...(NODES ? ['--node', nodeOf(i)] : [])]);
  await cli(['key', 'add', `c${i}-append`, '--file', join(keysDir, `c${i}-append.pub`), '--repo', `r${i}`, '--role', 'append']);
  await cli(['key', 'add', `c${i}-prune`, '--file', join(keysDir, `c${i}-prune.pub`), '--repo', `r${i}`, '--role', 'prune']);
  await cli(['grant', 'admin', `r${i}`, '--role', 'full']);
});

const sshArgs = (key, gateway) => [
  ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'HostName=127.0.0.1', '-o', `HostKeyAlias=${gateway.alias}`],
  ...['-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'LogLevel=ERROR'],
  ...['-o', 'ConnectTimeout=60', '-p', String(gateway.port), '-i', join(keysDir, key)],
];
// One BORG_RSH per gateway; the key from the environment.
const rshOf = new Map(
  gateways.map((g) => {
    const rsh = join(tmp.dir, `ssh-rsh-${g.label}`);
    writeFileSync(rsh, `#!/bin/sh\nexec ssh ${sshArgs('KEY', g).map((a) => (a.endsWith('/KEY') ? `"${keysDir}/$SOAK_KEY"` : `'${a}'`)).join(' ')} "$@"\n`, { mode: 0o755 });
    return [g, rsh];
  }),
);
const url = (i) => `ssh://borg@${gatewayOf(i).alias}/./r${i}`;
const clientEnv = (i, key) => borgClientEnv(join(tmp.dir, 'clients', String(i)), rshOf.get(gatewayOf(i)), { SOAK_KEY: key });

// --- one cycle and the set-up probe -------------------------------------------------------------
/** Negotiate and open over a fresh SSH session; resolves with the ms until the open's reply. */
function probeSetup(i) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const ssh = spawn('ssh', [...sshArgs(`c${i}-append`, gatewayOf(i)), `borg@${gatewayOf(i).alias}`, 'borg serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
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
log(`${processes.map((p) => `${p.label} (pid ${p.child.pid})`).join(', ')}; initialising the repositories`);
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
log(`heap snapshot of the idle ${processes.length === 1 ? 'server' : 'processes'}`);
const heapOf = async () => Object.fromEntries(await Promise.all(processes.map(async (p) => [p.label, summariseHeapSnapshot(await takeHeapSnapshot(p.child, p.snapDir), { remove: true })])));
const heapsBefore = await heapOf();

// --- the soak -----------------------------------------------------------------------------------
const status = (p, field) => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const startedAt = Date.now();
const deadline = startedAt + MINUTES * 60_000;
/** RSS samples of every process, by label. */
const samplesOf = Object.fromEntries(processes.map((p) => [p.label, [{ s: 0, mb: status(p, 'VmRSS') }]]));
const sampleAll = (s) => {
  for (const p of processes) samplesOf[p.label].push({ s, mb: status(p, 'VmRSS') });
};
const sampler = setInterval(() => {
  const s = (Date.now() - startedAt) / 1000;
  sampleAll(s);
  if (samplesOf[processes[0].label].length % 6 === 1) {
    log(`${fmt(s / 60, 1)} min: ${stats.cycles} cycles, ${stats.failures.length} failures, RSS ${processes.map((p) => `${p.label} ${fmt(samplesOf[p.label].at(-1).mb, 1)} MB`).join(', ')}`);
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
sampleAll((Date.now() - startedAt) / 1000);
log('every client stopped; heap snapshots of the idle processes');
await new Promise((r) => setTimeout(r, 5000)); // the last sessions' ledger writes
const heapsAfter = await heapOf();
const hwmOf = Object.fromEntries(processes.map((p) => [p.label, status(p, 'VmHWM')]));

// --- afterwards ---------------------------------------------------------------------------------
// The ledger, read before the processes stop, with the repositories' directories.
const listed = JSON.parse((await cli(['repo', 'list', '--json'])).stdout).repositories;
const repoDirs = Object.fromEntries(listed.map((r) => [r.name, r.path]));
if (NODES) {
  for (let i = 0; i < CLIENTS; i++) {
    const r = listed.find((x) => x.name === `r${i}`);
    repoDirs[`r${i}`] = join(nodeDirs[nodeOf(i)], 'repos', r.dirName);
  }
}
for (const p of processes) p.child.kill('SIGTERM');
const exits = await Promise.all(processes.map((p) => new Promise((resolve) => (p.child.exitCode !== null ? resolve(p.child.exitCode) : p.child.once('exit', (code, signal) => resolve(`${p.label} ${code ?? signal}`))))));
log(`stopped: ${exits.join(', ')}; reading the ledger and the repositories`);

const LEDGER = {
  byResult: 'select result, count(*) as n from sessions group by result',
  bad: "select id, key_name, repository_name, result, detail from sessions where result not in ('ok', 'denied') or (result = 'denied' and key_name not like '%-append') limit 20",
  denied: "select count(*) as n from sessions where result = 'denied'",
  denials: 'select method, reason, count(*) as n from denials group by method, reason',
};
let rows;
if (NODES) {
  const client = new pg.Client({ connectionString: postgres.url });
  await client.connect();
  rows = {};
  for (const [k, q] of Object.entries(LEDGER)) rows[k] = (await client.query(q)).rows.map((r) => ({ ...r, ...(r.n !== undefined && { n: Number(r.n) }) }));
  await client.end();
} else {
  const db = new BetterSqlite3(join(dataDir, 'borgkeep.db'), { readonly: true });
  rows = Object.fromEntries(Object.entries(LEDGER).map(([k, q]) => [k, db.prepare(q).all()]));
  db.close();
}
const byResult = Object.fromEntries(rows.byResult.map((r) => [r.result, r.n]));
const badSessions = rows.bad;
const deniedSessions = rows.denied[0].n;
const denialRows = rows.denials;

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
/** RSS figures of one process, and its live heap before and after. */
const memoryOf = (label) => {
  const samples = samplesOf[label];
  const rssMb = samples.map((p) => p.mb).filter(Number.isFinite);
  const [before, after] = [heapsBefore[label], heapsAfter[label]];
  return {
    rssMb: {
      first: Number(fmt(rssMb[0], 1)),
      afterFirstMinute: Number(fmt(samples.find((p) => p.s >= 60)?.mb ?? NaN, 1)),
      last: Number(fmt(rssMb.at(-1), 1)),
      max: Number(fmt(Math.max(...rssMb), 1)),
      highWaterMark: Number(fmt(hwmOf[label], 1)),
      slopeMbPerHour: Number(fmt(slopeMbPerHour(samples), 2)),
      slopeAfter5MinMbPerHour: Number(fmt(slopeMbPerHour(samples, 300), 2)),
      samples: samples.map((p) => [Math.round(p.s), Number(fmt(p.mb, 1))]),
    },
    heap: { liveMbBefore: Number(fmt(before.liveMb, 2)), liveMbAfter: Number(fmt(after.liveMb, 2)), objectsBefore: before.objects, objectsAfter: after.objects, grewMost: heapGrowth(before, after, 8) },
  };
};
const memory = Object.fromEntries(processes.map((p) => [p.label, memoryOf(p.label)]));
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
  topology: NODES ? '2 gateways, 2 storage nodes, PostgreSQL' : '1 gateway, SQLite',
  memory,
  lostArchives: lost.length,
  borgCheck: checked.map((c) => `${c.repo}: ${c.ok ? 'ok' : 'FAILED'}`),
  logMb: Number(fmt(processes.reduce((n, p) => n + p.logBytes, 0) / 1024 / 1024, 1)),
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
for (const [label, m] of Object.entries(memory)) {
  const r = m.rssMb;
  console.log(`${label} RSS MB: first ${r.first}, after 1 min ${r.afterFirstMinute}, last ${r.last}, max ${r.max} (high-water mark ${r.highWaterMark}); slope after the first minute ${r.slopeMbPerHour} MB/h, after 5 min ${r.slopeAfter5MinMbPerHour} MB/h`);
  console.log(`${label} live heap (snapshots when idle): before ${m.heap.liveMbBefore} MB in ${m.heap.objectsBefore} objects, after ${m.heap.liveMbAfter} MB in ${m.heap.objectsAfter} objects`);
  for (const g of m.heap.grewMost) console.log(`  ${g.group}: ${g.from} -> ${g.to} (${fmt(g.bytesFrom / 1024, 1)} -> ${fmt(g.bytesTo / 1024, 1)} KiB)`);
}
console.log(`archives lost: ${lost.length}; borg check: ${results.borgCheck.join(', ')}`);
const failed = stats.failures.length + badSessions.length + lost.length + checked.filter((c) => !c.ok).length + (byResult.open ?? 0);
if (deniedSessions !== stats.denialsIntended) console.log(`ledger denied sessions ${deniedSessions} != intended denials ${stats.denialsIntended}`);
for (const f of stats.failures.slice(0, 20)) console.log(`FAILED ${f}`);
for (const s of badSessions) console.log(`LEDGER ${JSON.stringify(s)}`);
for (const l of lost) console.log(`LOST ${l}`);
for (const c of checked.filter((x) => !x.ok)) console.log(`CHECK ${c.repo}: ${c.stderr}`);
console.log(failed === 0 && deniedSessions === stats.denialsIntended ? 'no failed sessions other than the intended denials' : `${failed} failure(s)`);
saveResults(NODES ? 'soak-nodes' : 'soak', results);
rmSync(tmp.dir, { recursive: true, force: true });
process.exit(failed === 0 && deniedSessions === stats.denialsIntended ? 0 : 1);
