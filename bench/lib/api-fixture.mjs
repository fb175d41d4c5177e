// The API benchmark's installation: a data directory whose store holds BENCH_API_REPOS (1,000)
// repositories with their keys and grants, and BENCH_API_SESSIONS (100,000) ledger sessions
// spread over the last BENCH_API_DAYS (120) days, with their transactions, denials, the daily
// audits and size statistics a running server writes. The schema and the console user come from
// borgkeep itself (`borgkeep user add` opens the store and runs the migrations); the rows are then
// written in one SQLite transaction with prepared statements (seconds, not hours through the
// guard), so it stays a store `borgkeep serve` opens as it is. Each repository directory is a
// copy of one `borg init -e none` repository plus BENCH_API_SEGMENTS small filler files under
// data/0, so the dashboard's size walk sees a plausible number of files; the fillers are not borg
// data (an audit of these repositories would call them damaged).
//
// Built once and kept in $BENCH_API_DIR (default /tmp/borgkeep-bench-api); rebuilt when older
// than a day (the ledger's times are relative to when it was built), when the settings change,
// or with BENCH_API_REBUILD=1.

import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { BORGKEEP, ROOT, fmt, runOk } from './common.mjs';

const DAY_MS = 86_400_000;
const PREFIXES = ['web', 'db', 'mail', 'files', 'build', 'laptop', 'nas', 'git', 'vm', 'office'];
const OPS_KEYS = 10;
const REVOKED_KEYS = 50;

/** A deterministic PRNG (mulberry32), so two builds with the same settings hold the same ledger. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const repositoryName = (i) => `${PREFIXES[i % PREFIXES.length]}-${String(i).padStart(4, '0')}`;

function sshEd25519() {
  const spki = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
  const raw = spki.subarray(spki.length - 32);
  const str = (b) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const blob = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
  return { type: 'ssh-ed25519', blob: blob.toString('base64'), fingerprint: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`, bits: 256 };
}

export const fixtureSettings = () => ({
  repos: Number(process.env.BENCH_API_REPOS ?? 1000),
  sessions: Number(process.env.BENCH_API_SESSIONS ?? 100_000),
  days: Number(process.env.BENCH_API_DAYS ?? 120),
  segments: Number(process.env.BENCH_API_SEGMENTS ?? 30),
});

/**
 * Returns { dataDir, user, password, builtAt, counts }; builds the installation first when needed.
 */
export async function ensureApiFixture(dir, settings = fixtureSettings()) {
  const tag = `v1-${settings.repos}r-${settings.sessions}s-${settings.days}d-${settings.segments}f`;
  const markerFile = join(dir, 'built.json');
  if (existsSync(markerFile) && process.env.BENCH_API_REBUILD !== '1') {
    const marker = JSON.parse(readFileSync(markerFile, 'utf8'));
    if (marker.tag === tag && Date.now() - marker.builtAt < DAY_MS) return { ...marker, dataDir: join(dir, 'data') };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  console.log(`building the API fixture: ${settings.repos} repositories, ${settings.sessions} sessions over ${settings.days} days (once; kept in ${dir})...`);
  const dataDir = join(dir, 'data');
  const user = 'bench';
  const password = randomBytes(18).toString('base64url');
  writeFileSync(join(dir, 'password'), `${password}\n`, { mode: 0o600 });
  await runOk(process.execPath, [BORGKEEP, '--data-dir', dataDir, 'user', 'add', user, '--role', 'admin', '--password-file', join(dir, 'password')]);

  // One real, empty borg repository, copied for each registration below.
  const template = join(dir, 'template');
  const home = join(dir, 'borg-home');
  mkdirSync(home, { recursive: true });
  execFileSync('borg', ['init', '-e', 'none', template], { env: { PATH: process.env.PATH, HOME: home, BORG_BASE_DIR: home, LANG: 'C.UTF-8' }, stdio: 'ignore' });

  const require = createRequire(join(ROOT, 'package.json'));
  const Database = require('better-sqlite3');
  const db = new Database(databaseFile(dataDir));
  const counts = write(db, dataDir, template, settings, Date.now());
  db.close();
  rmSync(template, { recursive: true, force: true });
  const marker = { tag, builtAt: t0, user, password, counts };
  writeFileSync(markerFile, JSON.stringify(marker, null, 2));
  console.log(`built in ${fmt((Date.now() - t0) / 1000, 1)} s: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  return { ...marker, dataDir };
}

function databaseFile(dataDir) {
  const file = join(dataDir, 'borgkeep.db');
  if (!existsSync(file)) throw new Error(`no database at ${file}: has the store moved? (see src/store/data-dir.ts)`);
  return file;
}

function write(db, dataDir, template, { repos, sessions, days, segments }, nowMs) {
  databaseFile(dataDir);
  const rnd = prng(42);
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const iso = (ms) => new Date(ms).toISOString();
  const created = nowMs - (days + 30) * DAY_MS;
  const counts = { repositories: 0, keys: 0, grants: 0, sessions: 0, transactions: 0, denials: 0, events: 0, stats: 0 };
  const st = {
    repo: db.prepare('insert into repositories (name, dir_name, quota_bytes, created_at, expected_interval_seconds) values (?, ?, ?, ?, ?)'),
    key: db.prepare('insert into ssh_keys (name, type, blob, fingerprint, comment, bits, created_at, revoked_at) values (?, ?, ?, ?, ?, ?, ?, ?)'),
    grant: db.prepare('insert into grants (key_id, repository_id, role, writes_per_day, from_cidrs, expires_at, created_at) values (?, ?, ?, ?, ?, ?, ?)'),
    session: db.prepare(
      'insert into sessions (key_id, key_name, repository_id, repository_name, role, client_address, client_version, started_at, ended_at, bytes_in, bytes_out, result, detail, pid, host) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    txn: db.prepare(
      'insert into transactions (session_id, borg_transaction_id, objects_put, objects_overwritten, objects_deleted, manifest_written, state, started_at, ended_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    denial: db.prepare('insert into denials (session_id, key_id, repository_id, method, reason, message, at) values (?, ?, ?, ?, ?, ?, ?)'),
    event: db.prepare('insert into repository_events (repository_id, kind, through_txn, verdict, actor, detail, at, report) values (?, ?, ?, ?, ?, ?, ?, ?)'),
    stat: db.prepare('insert into repository_stats (repository_id, at, size_bytes, objects, reclaimable_bytes, storage_used_bytes) values (?, ?, ?, ?, ?, ?)'),
  };
  const filler = Buffer.alloc(4096, 0x42);

  db.transaction(() => {
    // Repositories, each with its directory, and one client key with an append grant.
    const repoRows = [];
    for (let i = 0; i < repos; i++) {
      const name = repositoryName(i);
      const dirName = randomBytes(8).toString('hex');
      const quota = rnd() < 0.4 ? null : Math.round((100 + rnd() * 1900) * 1e9);
      const interval = rnd() < 0.1 ? 7 * 86_400 : 26 * 3600;
      const id = Number(st.repo.run(name, dirName, quota, iso(created), interval).lastInsertRowid);
      const path = join(dataDir, 'repos', dirName);
      cpSync(template, path, { recursive: true });
      for (let s = 0; s < segments; s++) writeFileSync(join(path, 'data', '0', String(1000 + s)), filler);
      const k = sshEd25519();
      const keyName = `${name}-client`;
      const keyId = Number(st.key.run(keyName, k.type, k.blob, k.fingerprint, `root@${name}`, k.bits, iso(created), null).lastInsertRowid);
      const cidrs = rnd() < 0.3 ? JSON.stringify([`192.0.2.${i % 250}/32`]) : null;
      st.grant.run(keyId, id, 'append', rnd() < 0.5 ? 2 : null, cidrs, null, iso(created));
      repoRows.push({ id, name, keyId, keyName, txn: 1, lastAuditTxn: 0 });
      counts.repositories++;
      counts.keys++;
      counts.grants++;
    }
    // Admins' keys: prune on a tenth of the repositories each, the first also full on some.
    const ops = [];
    for (let o = 0; o < OPS_KEYS; o++) {
      const k = sshEd25519();
      const name = `ops-${String(o + 1).padStart(2, '0')}`;
      const keyId = Number(st.key.run(name, k.type, k.blob, k.fingerprint, `${name}@admin`, k.bits, iso(created), null).lastInsertRowid);
      ops.push({ keyId, name });
      counts.keys++;
      for (let i = o; i < repos; i += OPS_KEYS) {
        st.grant.run(keyId, repoRows[i].id, o === 0 && i % 20 === 0 ? 'full' : 'prune', null, null, null, iso(created));
        counts.grants++;
      }
    }
    for (let r = 0; r < REVOKED_KEYS; r++) {
      const k = sshEd25519();
      st.key.run(`old-laptop-${r + 1}`, k.type, k.blob, k.fingerprint, null, k.bits, iso(created), iso(created + (r + 1) * DAY_MS));
      counts.keys++;
    }

    // The ledger, oldest first (ids grow with time, as they do in a real one). Repositories are
    // picked with a skew (a few back up much more often), sessions end minutes later.
    const spanMs = days * DAY_MS;
    const starts = Array.from({ length: sessions }, () => nowMs - 5 * 60_000 - rnd() * spanMs).sort((a, b) => a - b);
    const denyMethods = [
      ['delete', 'BK_DENY_DELETE_OLDER', 'the append role may only delete objects written in the same session'],
      ['put', 'BK_DENY_OVERWRITE', 'the append role may not overwrite an existing object'],
      ['commit', 'BK_DENY_COMPACT', 'compaction is closed until the history is audited or approved'],
      ['save_key', 'BK_DENY_SAVE_KEY', 'no role may replace the repository key'],
      ['break_lock', 'BK_DENY_BREAK_LOCK', 'no role may break the repository lock'],
    ];
    for (const startMs of starts) {
      const u = rnd();
      const repo = repoRows[Math.floor(u * u * repos * 0.7 + rnd() * repos * 0.3) % repos];
      const kind = rnd();
      // 85 % backups by the client key, 10 % prunes by an admin key, 5 % reads (list, check).
      const op = kind < 0.85 ? 'append' : kind < 0.95 ? 'prune' : 'read';
      const opsKey = ops[(repo.id - 1) % OPS_KEYS];
      const [keyId, keyName, role] = op === 'append' ? [repo.keyId, repo.keyName, 'append'] : op === 'prune' ? [opsKey.keyId, opsKey.name, 'prune'] : [repo.keyId, repo.keyName, 'append'];
      const r = rnd();
      const result = r < 0.94 ? 'ok' : r < 0.97 ? 'denied' : r < 0.99 ? 'error' : 'aborted';
      const durationMs = 20_000 + rnd() * 40 * 60_000;
      const endMs = startMs + durationMs;
      const bytesIn = op === 'read' ? Math.round(rnd() * 1e5) : Math.round(rnd() * 5e9);
      const bytesOut = Math.round(rnd() * 5e7);
      const detail = result === 'error' ? 'borg serve exited with status 2' : result === 'aborted' ? "the session's process ended without closing it" : null;
      const sessionId = Number(
        st.session.run(keyId, keyName, repo.id, repo.name, role, `192.0.2.${repo.id % 250}`, '1.2.4', iso(startMs), iso(endMs), bytesIn, bytesOut, result, detail, 10_000 + Math.floor(rnd() * 50_000), 'backup1')
          .lastInsertRowid,
      );
      counts.sessions++;
      if (op !== 'read' && result !== 'denied') {
        const checkpoint = result === 'ok' && rnd() < 0.05;
        for (let t = 0; t < (checkpoint ? 2 : 1); t++) {
          const state = result === 'ok' ? 'committed' : 'rolled_back';
          const tStart = startMs + (durationMs * t) / 2;
          st.txn.run(sessionId, repo.txn, op === 'append' ? Math.floor(rnd() * 5000) : 0, 0, op === 'prune' ? Math.floor(rnd() * 3000) : 0, 1, state, iso(tStart), iso(tStart + durationMs / 2));
          repo.txn += 2;
          counts.transactions++;
        }
      }
      if (result === 'denied') {
        const n = 1 + Math.floor(rnd() * 3);
        for (let d = 0; d < n; d++) {
          const [method, reason, message] = pick(denyMethods);
          st.denial.run(sessionId, keyId, repo.id, method, reason, `borgkeep refused ${method}: ${message} (key '${keyName}', role ${role}, repository '${repo.name}').`, iso(startMs + 1000 * (d + 1)));
          counts.denials++;
        }
      }
    }

    // The daily audit of every repository (a small report each, as the scheduler stores it),
    // an approval now and then, and the daily size statistics.
    for (let day = days; day >= 1; day--) {
      const at = nowMs - day * DAY_MS + 3.75 * 3600_000;
      for (const repo of repoRows) {
        const through = Math.max(1, Math.min(repo.txn - 2, Math.floor(((days - day + 1) / days) * repo.txn)));
        const suspicious = rnd() < 0.002;
        const transactions = [];
        for (let t = repo.lastAuditTxn + 2; t <= through && transactions.length < 8; t += 2) {
          transactions.push({ id: t, session: null, keyName: repo.keyName, role: 'append', objectsPut: 100, objectsOverwritten: 0, objectsDeleted: 0, manifestWritten: true, suspicious: false, reasons: [] });
        }
        const report = {
          verdict: suspicious ? 'suspicious' : 'clean',
          firstSuspiciousTransaction: suspicious ? through : null,
          lastKnownGoodTransaction: suspicious ? Math.max(1, through - 2) : through,
          manifestsRead: false,
          checksNeedingKey: ['which archives each transaction added, removed or replaced'],
          compactedBefore: null,
          uncommittedSegments: [],
          problems: [],
          transactions,
          archives: null,
        };
        repo.lastAuditTxn = through;
        st.event.run(repo.id, 'audit', through, suspicious ? 'suspicious' : 'clean-structural', 'scheduler', suspicious ? `first suspicious transaction ${through}` : `${transactions.length} transaction(s), none suspicious`, iso(at), JSON.stringify(report));
        counts.events++;
        if (rnd() < 0.03) {
          st.event.run(repo.id, 'approve', through, null, 'admin', 'after the audit', iso(at + 3600_000), null);
          counts.events++;
        }
        st.stat.run(repo.id, iso(at - 3600_000), Math.round(1e9 + (days - day) * 1e7 * (1 + (repo.id % 7))), 10_000 + (days - day) * 100, Math.round(rnd() * 1e8), Math.round(1e9 + (days - day) * 1e7));
        counts.stats++;
      }
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  return counts;
}

/**
 * Marks the daily jobs (statistics, audits) as just done, so the server measured does not start
 * its catch-up runs over every repository during the timed rounds: the benchmark measures the
 * API in steady state, with the every-second alert evaluation running as it always does.
 */
export function markDailyJobsDone(dataDir) {
  const require = createRequire(join(ROOT, 'package.json'));
  const Database = require('better-sqlite3');
  const db = new Database(databaseFile(dataDir), { timeout: 10_000 });
  try {
    const hasJobs = db.prepare("select 1 from sqlite_master where type = 'table' and name = 'jobs'").get();
    if (!hasJobs) return;
    const at = new Date().toISOString();
    const upsert = db.prepare(
      "insert into jobs (name, last_started_at, last_finished_at, last_result, last_detail) values (?, ?, ?, 'ok', 'benchmark fixture') on conflict(name) do update set last_started_at = excluded.last_started_at, last_finished_at = excluded.last_finished_at",
    );
    for (const name of ['statistics', 'audits']) upsert.run(name, at, at);
  } finally {
    db.close();
  }
}

export const fileBytes = (file) => (existsSync(file) ? statSync(file).size : 0);
