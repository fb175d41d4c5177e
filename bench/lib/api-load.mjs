#!/usr/bin/env node
// The API benchmark's load generator, run as its own process (node bench/lib/api-load.mjs
// PLAN.json) so its CPU is not the server's event loop. Open loop: request i is due at
// start + i / rate whatever happened to the ones before it, and its latency is counted from that
// due time to the last byte of the answer, so a server that stalls is charged for the requests
// that queued behind the stall (no coordinated omission). Keep-alive connections (node:http
// Agent, up to PLAN.maxSockets at once), as a browser and scripts hold them. Optionally keeps
// PLAN.eventStreams server-sent event streams open (GET /api/v1/events), as open consoles do.
//
// With PLAN.ledger = { database, running, updateMs, turnoverMs }, it also plays the backups that
// run meanwhile, the way `borgkeep borg-serve` processes do: `running` open sessions in the
// store's database, each writing its byte counts every `updateMs` (as the guard does every 2 s),
// and every `turnoverMs` one of them ends (ok, one committed transaction) and another starts; all
// end when the load does. So the server's reads meet the writes of other processes, as they do.
//
// With PLAN.roundSeconds, the results are also cut into rounds by due time (`rounds`: one
// per-name map per round), so one long run shows whether latency grows round after round without
// stopping the load (or the backups) between rounds.
//
// With PLAN.console = { refreshMs, paths }, it also plays one console left open on the dashboard:
// every refreshMs it fetches each path as the console's fetch layer (web/src/api.ts) does
// (If-None-Match with the ETag of its copy, a 304 reuses the copy; a path ending in
// /repository-changes asks with `since` = the version of the list it holds) and counts the bytes
// of each answer's body, so the report says what a refresh costs on the wire (`console`:
// refreshes, bytes, statuses, per round).
//
// PLAN: { base, headers, rate, seconds, requests: [{ name, path }, ...] (one per due slot,
// cycled), eventStreams, timeoutMs, ledger, roundSeconds, console }. Prints one JSON line: per
// request name the latencies in ms (due time to end), errors (status >= 400, network errors,
// time-outs) and statuses; the greatest lag between a request's due time and its sending (the
// generator's own health).

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const base = new URL(plan.base);
const agent = new http.Agent({ keepAlive: true, maxSockets: plan.maxSockets ?? 256 });
const timeoutMs = plan.timeoutMs ?? 10_000;
const total = Math.round(plan.rate * plan.seconds);
const byName = new Map();
const perRound = plan.roundSeconds ? Math.max(1, Math.round(plan.rate * plan.roundSeconds)) : 0;
const roundMaps = perRound ? Array.from({ length: Math.ceil(total / perRound) }, () => new Map()) : [];
const newStat = () => ({ latencies: [], errors: 0, statuses: {}, bytes: 0, firstError: null });
const stat = (name) => {
  let s = byName.get(name);
  if (!s) byName.set(name, (s = newStat()));
  return s;
};
const roundStat = (i, name) => {
  if (!perRound) return null;
  const m = roundMaps[Math.floor(i / perRound)];
  let s = m.get(name);
  if (!s) m.set(name, (s = newStat()));
  return s;
};

const streams = [];
for (let i = 0; i < (plan.eventStreams ?? 0); i++) {
  const req = http.get({ host: base.hostname, port: base.port, path: '/api/v1/events', headers: { ...plan.headers, accept: 'text/event-stream' } }, (res) => res.resume());
  req.on('error', () => undefined);
  streams.push(req);
}

const ledger = plan.ledger ? startLedgerWriter(plan.ledger) : null;

function startLedgerWriter({ database, running, updateMs, turnoverMs }) {
  const Database = createRequire(import.meta.url)('better-sqlite3');
  const db = new Database(database, { timeout: 10_000 });
  const grants = db
    .prepare("select r.id as repositoryId, r.name as repositoryName, k.id as keyId, k.name as keyName from grants g join repositories r on r.id = g.repository_id join ssh_keys k on k.id = g.key_id where g.role = 'append'")
    .all();
  const start = db.prepare(
    "insert into sessions (key_id, key_name, repository_id, repository_name, role, client_address, client_version, started_at, pid, host) values (?, ?, ?, ?, 'append', '192.0.2.1', '1.2.4', ?, ?, ?) returning id",
  );
  const update = db.prepare('update sessions set bytes_in = ?, bytes_out = ? where id = ?');
  const end = db.prepare("update sessions set ended_at = ?, result = 'ok', bytes_in = ?, bytes_out = ? where id = ?");
  const commit = db.prepare("insert into transactions (session_id, borg_transaction_id, objects_put, objects_overwritten, objects_deleted, manifest_written, state, started_at, ended_at) values (?, null, 100, 0, 0, 1, 'committed', ?, ?)");
  const open = new Map();
  let writes = 0;
  const begin = () => {
    const g = grants[Math.floor(Math.random() * grants.length)];
    const at = new Date().toISOString();
    const id = start.pluck().get(g.keyId, g.keyName, g.repositoryId, g.repositoryName, at, process.pid, hostname());
    writes++;
    const session = { id, bytes: 0, startedAt: at };
    session.timer = setInterval(() => {
      session.bytes += 50_000_000;
      update.run(session.bytes, 1000, id);
      writes++;
    }, updateMs);
    session.timer.unref?.();
    open.set(id, session);
  };
  const finish = (session) => {
    clearInterval(session.timer);
    const at = new Date().toISOString();
    db.transaction(() => {
      commit.run(session.id, session.startedAt, at);
      end.run(at, session.bytes, 1000, session.id);
    })();
    writes++;
    open.delete(session.id);
  };
  for (let i = 0; i < running; i++) setTimeout(begin, (i * updateMs) / running);
  const turnover = setInterval(() => {
    const first = open.values().next().value;
    if (first) finish(first);
    begin();
  }, turnoverMs);
  return {
    stop() {
      clearInterval(turnover);
      for (const session of [...open.values()]) finish(session);
      db.close();
      return writes;
    },
  };
}

const consoleActor = plan.console ? startConsole(plan.console) : null;

function startConsole({ refreshMs, paths }) {
  const copies = new Map(); // path -> ETag of the copy held
  const versions = new Map(); // a /repository-changes path -> the version of the list held
  const fallback = new Map(); // a /repository-changes path -> what an older server is asked instead
  const rounds = [];
  const startedAt = Date.now();
  const current = () => {
    const r = perRound ? Math.floor((Date.now() - startedAt) / (plan.roundSeconds * 1000)) : 0;
    while (rounds.length <= r) rounds.push({ refreshes: 0, bytes: 0, statuses: {} });
    return rounds[r];
  };
  const fetchOne = (path) =>
    new Promise((resolve) => {
      const version = versions.get(path);
      const url = version ? `${path}?since=${encodeURIComponent(version)}` : path;
      const etag = copies.get(url);
      const headers = { ...plan.headers, ...(etag && { 'if-none-match': etag }) };
      const req = http.get({ host: base.hostname, port: base.port, path: url, headers, agent }, (res) => {
        let bytes = 0;
        const chunks = [];
        res.on('data', (chunk) => {
          bytes += chunk.length;
          if (path.endsWith('/repository-changes')) chunks.push(chunk);
        });
        res.on('end', () => {
          // A server without /repository-changes (an older build, compared with this one): the
          // console of that build fetched the whole list on every refresh.
          if (res.statusCode === 404 && path.endsWith('/repository-changes')) fallback.set(path, path.replace(/\/repository-changes$/, '/repositories'));
          if (res.statusCode === 200 && res.headers.etag) copies.set(url, res.headers.etag);
          if (res.statusCode === 200 && chunks.length > 0) versions.set(path, JSON.parse(Buffer.concat(chunks).toString('utf8')).version);
          resolve({ status: res.statusCode ?? 0, bytes });
        });
        res.on('error', () => resolve({ status: 0, bytes }));
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error('time-out')));
      req.on('error', () => resolve({ status: 0, bytes: 0 }));
    });
  let stopped = false;
  const refresh = async () => {
    if (stopped) return;
    const round = current();
    const answers = await Promise.all(paths.map((p) => fetchOne(fallback.get(p) ?? p)));
    round.refreshes++;
    for (const a of answers) {
      round.bytes += a.bytes;
      round.statuses[a.status] = (round.statuses[a.status] ?? 0) + 1;
    }
  };
  const timer = setInterval(() => void refresh(), refreshMs);
  void refresh();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      return rounds;
    },
  };
}

let completed = 0;
let maxLagMs = 0;
let done;
const finished = new Promise((resolve) => (done = resolve));

function send(i, dueNs) {
  const { name, path } = plan.requests[i % plan.requests.length];
  const s = stat(name);
  const rs = roundStat(i, name);
  const lag = Number(process.hrtime.bigint() - dueNs) / 1e6;
  if (lag > maxLagMs) maxLagMs = lag;
  let settled = false;
  const end = (status, error) => {
    if (settled) return;
    settled = true;
    const ms = Number(process.hrtime.bigint() - dueNs) / 1e6;
    for (const x of rs ? [s, rs] : [s]) {
      x.latencies.push(ms);
      x.statuses[status] = (x.statuses[status] ?? 0) + 1;
      if (error || status >= 400) {
        x.errors++;
        x.firstError ??= error ? String(error) : `${status} ${path}`;
      }
    }
    if (++completed === total) done();
  };
  const req = http.get({ host: base.hostname, port: base.port, path, headers: plan.headers, agent }, (res) => {
    res.on('data', (chunk) => {
      s.bytes += chunk.length;
      if (rs) rs.bytes += chunk.length;
    });
    res.on('end', () => end(res.statusCode ?? 0));
    res.on('error', (e) => end(0, e.message));
  });
  req.setTimeout(timeoutMs, () => req.destroy(new Error('time-out')));
  // Also a deadline from the due time: a request still waiting for a free socket (a saturated
  // server) has no socket to time out on, and would stretch a 10-minute run without end.
  const deadline = setTimeout(() => req.destroy(new Error('time-out')), Math.max(1, timeoutMs - Number(process.hrtime.bigint() - dueNs) / 1e6));
  req.on('close', () => clearTimeout(deadline));
  req.on('error', (e) => end(0, e.message));
}

const startNs = process.hrtime.bigint() + 20_000_000n;
const intervalNs = BigInt(Math.round(1e9 / plan.rate));
let next = 0;
function tick() {
  const now = process.hrtime.bigint();
  while (next < total) {
    const due = startNs + BigInt(next) * intervalNs;
    if (due > now) break;
    send(next, due);
    next++;
  }
  if (next < total) {
    const wait = Number(startNs + BigInt(next) * intervalNs - process.hrtime.bigint()) / 1e6;
    setTimeout(tick, Math.max(0, Math.floor(wait)));
  }
}
setTimeout(tick, 20);
await finished;
const wallSeconds = Number(process.hrtime.bigint() - startNs) / 1e9;
for (const r of streams) r.destroy();
const ledgerWrites = ledger ? ledger.stop() : 0;
const consoleRounds = consoleActor ? consoleActor.stop() : null;
agent.destroy();
const out = { total, completed, wallSeconds, maxLagMs, ledgerWrites, cpu: process.cpuUsage(), results: Object.fromEntries(byName), rounds: roundMaps.map((m) => Object.fromEntries(m)), console: consoleRounds };
// Exit only once the line is out: stdout to a pipe is asynchronous, and a long run's line is
// megabytes (process.exit right after the write cut it short).
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
