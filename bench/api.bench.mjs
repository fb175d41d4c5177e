// HTTP API latency under load: a real `borgkeep serve` on loopback over a store of
// BENCH_API_REPOS (1,000) repositories and BENCH_API_SESSIONS (100,000) ledger sessions (built
// once by lib/api-fixture.mjs and kept in $BENCH_API_DIR, default /tmp/borgkeep-bench-api),
// driven by a load generator in its own process (lib/api-load.mjs: open loop at a fixed arrival
// rate, keep-alive, latency from each request's due time, so no coordinated omission) at
// BENCH_API_RATE (200) requests/s for BENCH_API_SECONDS (30) per phase, with two console event
// streams open as browsers keep them:
//   (a) baseline: GET /api/v1/server only (authenticated, a tiny constant answer: HTTP, routing
//       and the session lookup, no listing);
//   (b) the console's mix: the dashboard (every repository with its status and size), a
//       repository's page (the repository with its grants, its sessions and denials, its last
//       audit, the SSH endpoint), the ledger pages (all and per repository, later pages by
//       cursor, denied sessions), denials, keys, grants, GET /session.
// BENCH_RUNS (3) rounds, each running (a) and (b) in alternating order; per endpoint and overall
// p50/p90/p99/max and errors, medians over the rounds, the ratio of (b) to (a), and the server's
// CPU per request. Goal (issue 5): p99 < 50 ms at 200 requests/s. The daily statistics and audit
// jobs are marked done before the server starts, so it does not start a catch-up run over all
// repositories; the every-second alert evaluation runs as always. BENCH_PROFILE=1 runs the
// server under `node --cpu-prof` and prints its hottest functions. BENCH_CLEAN=1 removes the
// fixture at the end.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { BORGKEEP, ROOT, fmt, median, printTable, requireBuilt, saveResults, tempRoot } from './lib/common.mjs';
import { ensureApiFixture, fileBytes, fixtureSettings, markDailyJobsDone, prng, repositoryName } from './lib/api-fixture.mjs';
import { summariseProfile } from './lib/cpu-profile.mjs';

requireBuilt();
const RATE = Number(process.env.BENCH_API_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 30);
const WARMUP_SECONDS = Number(process.env.BENCH_API_WARMUP ?? 5);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const PROFILE = process.env.BENCH_PROFILE === '1';
const RUNNING = Number(process.env.BENCH_API_RUNNING ?? 20);
const GOAL_P99_MS = 50;
const fixtureDir = process.env.BENCH_API_DIR ?? '/tmp/borgkeep-bench-api';
const settings = fixtureSettings();

const fixture = await ensureApiFixture(fixtureDir, settings);
markDailyJobsDone(fixture.dataDir);
const tmp = tempRoot('borgkeep-bench-api');

// --- the server ---------------------------------------------------------------------------
const profileDir = PROFILE ? mkdtempSync(join(tmpdir(), 'borgkeep-bench-api-prof-')) : null;
const serverArgs = [
  ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
  BORGKEEP,
  '--data-dir',
  fixture.dataDir,
  'serve',
  '--http-listen',
  '127.0.0.1:0',
  '--ssh-listen',
  '127.0.0.1:0',
];
const server = spawn(process.execPath, serverArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } });
const serverLog = { errors: 0, warnings: 0, firstError: null, stderr: '' };
const base = await new Promise((resolve, reject) => {
  let buffered = '';
  const timer = setTimeout(() => reject(new Error(`borgkeep serve did not start within 60 s:\n${buffered}${serverLog.stderr}`)), 60_000);
  server.stdout.setEncoding('utf8');
  server.stdout.on('data', (text) => {
    buffered += text;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const m = /HTTP API listening on (\S+)\/api\/v1/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
      if (line.startsWith('{')) {
        try {
          const entry = JSON.parse(line);
          if (entry.level >= 50) {
            serverLog.errors++;
            serverLog.firstError ??= entry.msg ?? line;
          } else if (entry.level >= 40) serverLog.warnings++;
        } catch {
          // not a log line
        }
      }
    }
  });
  server.stderr.on('data', (d) => (serverLog.stderr += d));
  server.on('exit', (code) => reject(new Error(`borgkeep serve exited (${code}) before listening:\n${serverLog.stderr}`)));
});
const serverExited = new Promise((resolve) => server.on('exit', resolve));
process.on('exit', () => server.exitCode === null && server.kill('SIGKILL'));
console.log(`borgkeep serve (pid ${server.pid}) on ${base}; database ${fmt(fileBytes(join(fixture.dataDir, 'borgkeep.db')) / 1e6, 0)} MB`);

// --- logging in, and the cursors of later pages ---------------------------------------------
const login = await fetch(`${base}/api/v1/session`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ name: fixture.user, password: fixture.password }),
});
if (login.status !== 200) throw new Error(`logging in failed: ${login.status} ${await login.text()}`);
const cookie = login.headers.get('set-cookie').split(';')[0];
const headers = { cookie, accept: 'application/json' };
const getJson = async (path) => {
  const r = await fetch(`${base}/api/v1${path}`, { headers });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return r.json();
};
const rnd = prng(7);
const randomRepository = () => encodeURIComponent(repositoryName(Math.floor(rnd() * settings.repos)));
const pages = async (path, n) => {
  const cursors = [];
  let page = await getJson(path);
  while (page.next && cursors.length < n) {
    cursors.push(page.next);
    page = await getJson(`${path}&cursor=${encodeURIComponent(page.next)}`);
  }
  return cursors.map((c) => `${path}&cursor=${encodeURIComponent(c)}`);
};
const allPages = await pages('/sessions?limit=50', 10);
const repositoryPages = [];
for (let i = 0; i < 20; i++) repositoryPages.push(...(await pages(`/sessions?repository=${randomRepository()}&limit=100`, 1)));
const keyNames = (await getJson('/keys')).keys.map((k) => k.name);

// --- the two workloads ------------------------------------------------------------------------
// Weights in percent of the requests; what the console asks for (web/src/pages) and how often.
const MIX = [
  ['GET /repositories', 5, () => '/repositories'],
  ['GET /session', 10, () => '/session'],
  ['GET /repositories/:name', 13, () => `/repositories/${randomRepository()}`],
  ['GET /sessions?repository', 13, () => `/sessions?repository=${randomRepository()}&limit=100`],
  ['GET /sessions?repository&cursor', 4, () => repositoryPages[Math.floor(rnd() * repositoryPages.length)]],
  ['GET /sessions', 5, () => '/sessions?limit=50'],
  ['GET /sessions?cursor', 5, () => allPages[Math.floor(rnd() * allPages.length)]],
  ['GET /sessions?result=denied', 3, () => '/sessions?result=denied&limit=50'],
  ['GET /denials?repository', 11, () => `/denials?repository=${randomRepository()}&limit=20`],
  ['GET /denials', 4, () => '/denials?limit=50'],
  ['GET /repositories/:name/audit', 8, () => `/repositories/${randomRepository()}/audit`],
  ['GET /keys', 3, () => '/keys'],
  ['GET /keys/:key', 2, () => `/keys/${encodeURIComponent(keyNames[Math.floor(rnd() * keyNames.length)])}`],
  ['GET /grants?repository', 6, () => `/grants?repository=${randomRepository()}`],
  ['GET /server', 8, () => '/server'],
];
const weightSum = MIX.reduce((n, [, w]) => n + w, 0);
function mixPlan(count) {
  const requests = [];
  for (let i = 0; i < count; i++) {
    let x = rnd() * weightSum;
    const entry = MIX.find(([, w]) => (x -= w) < 0) ?? MIX[0];
    requests.push({ name: entry[0], path: `/api/v1${entry[2]()}` });
  }
  return requests;
}
const baselinePlan = () => [{ name: 'GET /server', path: '/api/v1/server' }];

function serverCpuSeconds() {
  const fields = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

async function runLoad(requests, seconds) {
  const planFile = join(tmp.dir, 'plan.json');
  const ledger = RUNNING > 0 ? { database: join(fixture.dataDir, 'borgkeep.db'), running: RUNNING, updateMs: 2000, turnoverMs: 5000 } : null;
  writeFileSync(planFile, JSON.stringify({ base, headers, rate: RATE, seconds, requests, eventStreams: 2, ledger }));
  const cpu0 = serverCpuSeconds();
  const child = spawn(process.execPath, [join(ROOT, 'bench', 'lib', 'api-load.mjs'), planFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`the load generator failed (${code})`);
  const result = JSON.parse(out);
  result.serverCpuSeconds = serverCpuSeconds() - cpu0;
  return result;
}

const percentile = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]);
function summarise(latencies, errors) {
  const s = Float64Array.from(latencies).sort();
  return { n: s.length, errors, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}
function summariseRun(run) {
  const perEndpoint = {};
  const all = [];
  let errors = 0;
  for (const [name, r] of Object.entries(run.results)) {
    perEndpoint[name] = { ...summarise(r.latencies, r.errors), bytesPerAnswer: Math.round(r.bytes / Math.max(1, r.latencies.length)), firstError: r.firstError };
    all.push(...r.latencies);
    errors += r.errors;
  }
  return {
    overall: summarise(all, errors),
    perEndpoint,
    achievedRate: run.completed / run.wallSeconds,
    ledgerWritesPerSecond: run.ledgerWrites / run.wallSeconds,
    maxSendLagMs: run.maxLagMs,
    serverCpuMsPerRequest: (1000 * run.serverCpuSeconds) / Math.max(1, run.completed),
    serverCpuShare: run.serverCpuSeconds / run.wallSeconds,
  };
}

// --- the rounds -------------------------------------------------------------------------------
console.log(`warming up: ${WARMUP_SECONDS} s of the mix (the first dashboard request measures every repository's size)...`);
await runLoad(mixPlan(Math.round(RATE * WARMUP_SECONDS)), WARMUP_SECONDS);
const rounds = [];
for (let i = 0; i < ROUNDS; i++) {
  const order = i % 2 === 0 ? ['baseline', 'mix'] : ['mix', 'baseline'];
  const got = {};
  for (const which of order) {
    const run = await runLoad(which === 'mix' ? mixPlan(Math.round(RATE * SECONDS)) : baselinePlan(), SECONDS);
    got[which] = summariseRun(run);
  }
  rounds.push(got);
  const line = (k) => `${k} p50 ${fmt(got[k].overall.p50, 1)} p99 ${fmt(got[k].overall.p99, 1)} max ${fmt(got[k].overall.max, 0)} ms, ${got[k].overall.errors} errors, ${fmt(got[k].achievedRate, 0)}/s`;
  console.log(`  round ${i + 1}: ${line('baseline')}; ${line('mix')}`);
}

server.kill('SIGTERM');
await serverExited;

// --- the report -------------------------------------------------------------------------------
const med = (f) => median(rounds.map(f));
const names = MIX.map(([n]) => n);
const rows = [['endpoint (mix)', 'share %', 'n/round', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'KB/answer']];
for (const name of names) {
  const e = (r) => r.mix.perEndpoint[name];
  if (!rounds.every(e)) continue;
  rows.push([name, String(MIX.find(([n]) => n === name)[1]), fmt(med((r) => e(r).n), 0), fmt(med((r) => e(r).p50), 1), fmt(med((r) => e(r).p90), 1), fmt(med((r) => e(r).p99), 1), fmt(med((r) => e(r).max), 0), String(rounds.reduce((n, r) => n + e(r).errors, 0)), fmt(med((r) => e(r).bytesPerAnswer) / 1024, 1)]);
}
const o = (which, k) => med((r) => r[which].overall[k]);
rows.push(['mix, overall', '100', fmt(o('mix', 'n'), 0), fmt(o('mix', 'p50'), 1), fmt(o('mix', 'p90'), 1), fmt(o('mix', 'p99'), 1), fmt(o('mix', 'max'), 0), String(rounds.reduce((n, r) => n + r.mix.overall.errors, 0)), '']);
rows.push(['baseline: GET /server only', '', fmt(o('baseline', 'n'), 0), fmt(o('baseline', 'p50'), 1), fmt(o('baseline', 'p90'), 1), fmt(o('baseline', 'p99'), 1), fmt(o('baseline', 'max'), 0), String(rounds.reduce((n, r) => n + r.baseline.overall.errors, 0)), '']);
console.log(`\nmedians over ${ROUNDS} rounds of ${SECONDS} s at ${RATE} requests/s (latency from each request's due time to its last byte):\n`);
printTable(rows);
const roundRows = [['round', 'baseline p50', 'baseline p99', 'mix p50', 'mix p99', 'mix max', 'p99 mix/baseline', 'server CPU ms/req baseline', 'mix']];
rounds.forEach((r, i) =>
  roundRows.push([String(i + 1), fmt(r.baseline.overall.p50, 1), fmt(r.baseline.overall.p99, 1), fmt(r.mix.overall.p50, 1), fmt(r.mix.overall.p99, 1), fmt(r.mix.overall.max, 0), fmt(r.mix.overall.p99 / r.baseline.overall.p99, 2), fmt(r.baseline.serverCpuMsPerRequest, 2), fmt(r.mix.serverCpuMsPerRequest, 2)]),
);
console.log('');
printTable(roundRows);

const p99 = o('mix', 'p99');
const ratioP99 = med((r) => r.mix.overall.p99 / r.baseline.overall.p99);
const ratioP50 = med((r) => r.mix.overall.p50 / r.baseline.overall.p50);
const cpuRatio = med((r) => r.mix.serverCpuMsPerRequest / r.baseline.serverCpuMsPerRequest);
console.log(
  `\n${settings.repos} repositories, ${fixture.counts.sessions} sessions, ${fixture.counts.transactions} transactions, ${fixture.counts.denials} denials, ${fixture.counts.events} repository events; ` +
    `${RUNNING} backups writing the ledger meanwhile (${fmt(med((r) => r.mix.ledgerWritesPerSecond), 1)} writes/s); node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model.trim()})\n` +
    `the console's mix against GET /server alone: p50 ${fmt(ratioP50, 2)}x, p99 ${fmt(ratioP99, 2)}x, server CPU per request ${fmt(cpuRatio, 2)}x; ` +
    `server log: ${serverLog.errors} errors, ${serverLog.warnings} warnings${serverLog.firstError ? ` (first: ${serverLog.firstError})` : ''}\n` +
    `p99 ${fmt(p99, 1)} ms at ${RATE} requests/s: goal p99 < ${GOAL_P99_MS} ms ${p99 < GOAL_P99_MS ? 'met' : 'NOT met'}`,
);

if (profileDir) {
  const prof = summariseProfile(profileDir, 25);
  console.log(`\nserver CPU profile (warm-up and all rounds, ${fmt(prof.totalMs / 1000, 1)} s sampled), by self time:`);
  printTable([['function', 'self ms', '%'], ...prof.top.map((t) => [t.name.slice(0, 110), fmt(t.selfMs, 0), fmt(t.selfPct, 1)])]);
  console.log(`profiles kept in ${profileDir} (open them in Chrome DevTools)`);
  if (!readdirSync(profileDir).some((f) => f.endsWith('.cpuprofile'))) console.log('(the server wrote no profile: did it exit cleanly?)');
}

// Other numbers of running backups are kept beside the default run, not over it.
saveResults(RUNNING === 20 ? 'api' : `api-running-${RUNNING}`, {
  when: new Date().toISOString(),
  node: process.version,
  cores: cpus().length,
  rate: RATE,
  secondsPerPhase: SECONDS,
  runningBackups: RUNNING,
  store: { ...fixture.counts },
  mix: Object.fromEntries(MIX.map(([n, w]) => [n, w])),
  rounds,
  medians: {
    mix: { p50: o('mix', 'p50'), p90: o('mix', 'p90'), p99, max: o('mix', 'max') },
    baseline: { p50: o('baseline', 'p50'), p90: o('baseline', 'p90'), p99: o('baseline', 'p99'), max: o('baseline', 'max') },
    perEndpoint: Object.fromEntries(names.filter((n) => rounds.every((r) => r.mix.perEndpoint[n])).map((n) => [n, { p50: med((r) => r.mix.perEndpoint[n].p50), p99: med((r) => r.mix.perEndpoint[n].p99), max: med((r) => r.mix.perEndpoint[n].max) }])),
  },
  ratioP50: ratioP50,
  ratioP99: ratioP99,
  ratioServerCpu: cpuRatio,
  serverLog: { errors: serverLog.errors, warnings: serverLog.warnings },
  goal: { p99Ms: GOAL_P99_MS, met: p99 < GOAL_P99_MS },
});
tmp.cleanup();
if (process.env.BENCH_CLEAN === '1') rmSync(fixtureDir, { recursive: true, force: true });
