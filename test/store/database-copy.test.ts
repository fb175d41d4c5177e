// `borgkeep db copy` (issue 19) with real history: a running `borgkeep serve` on SQLite, the real
// borg client backing up, a refused delete, an audit, the console's admin; then serve stopped,
// the copy into an empty PostgreSQL database, and serve started on it. Every table has the same
// rows (counts, and every row of the ledger's tables compared value by value), and the console's
// API answers the same as before. A second copy into the now full database is refused, changing
// nothing.

import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { writeFileSync } from 'node:fs';
import { afterAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { firstAdminPassword } from '../helpers/first-admin.js';
import { createTestPostgresDatabase } from '../support/temp-store.js';

let env: BorgkeepEnv | undefined;
let db: Awaited<ReturnType<typeof createTestPostgresDatabase>> | undefined;
afterAll(async () => {
  await env?.cleanup();
  await db?.drop();
});

/** Each row as text (PostgreSQL's driver gives 64-bit integers as strings), in id or key order. */
const asText = (rows: Array<Record<string, unknown>>) => rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? null : String(v)])));

async function consoleApi(front: { log(): string }, dataDir: string) {
  const http = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(front.log())?.[1] ?? '';
  expect(http).not.toBe('');
  const login = await fetch(`${http}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: firstAdminPassword(dataDir) }) });
  expect(login.status).toBe(200);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  return async (path: string) => {
    const r = await fetch(`${http}/api/v1${path}`, { headers: { cookie } });
    expect(r.status, path).toBe(200);
    return (await r.json()) as unknown;
  };
}

/** What the console shows of the installation (GETs its pages make), without the clock's readings. */
async function consoleView(api: (path: string) => Promise<unknown>) {
  const paths = ['/repositories', '/repositories/photos', '/keys', '/sessions?limit=100', '/transactions?limit=100', '/denials?limit=100', '/users'];
  const view: Record<string, unknown> = {};
  for (const p of paths) view[p] = await api(p);
  return JSON.parse(JSON.stringify(view, (k, v: unknown) => (['now', 'serverTime', 'generatedAt', 'lastSeenAt'].includes(k) ? undefined : v)));
}

test('copies an installation with real history into PostgreSQL: every row, and the console shows the same', async () => {
  db = await createTestPostgresDatabase();
  env = createBorgkeepEnv('bk-db-copy', 'embedded');
  const e = env;
  await e.repoWithKeys('photos', { laptop: 'full', thief: 'append' });
  const front = await e.frontEnd();
  expect((await e.borg('laptop', ['init', '-e', 'repokey', e.url('photos')])).code).toBe(0);
  for (const n of [1, 2]) {
    const create = await e.borg('laptop', ['create', `${e.url('photos')}::b${n}`, makeSourceTree(join(e.root, `src${n}`), n)]);
    expect(create.code, create.stderr).toBe(0);
  }
  const refused = await e.borg('thief', ['delete', `${e.url('photos')}::b1`]);
  expect(refused.code).not.toBe(0);
  await e.cliOk(['audit', 'photos']);
  const before = await consoleView(await consoleApi(front, e.dataDir));
  await front.stop();

  const out = await e.cliOk(['db', 'copy', '--from', `sqlite:${join(e.dataDir, 'borgkeep.db')}`, '--to', db.url, '--json']);
  const report = JSON.parse(out) as { tables: Array<{ table: string; rows: number }>; rows: number };
  const counts = Object.fromEntries(report.tables.map((t) => [t.table, t.rows]));
  expect(counts).toMatchObject({ repositories: 1, ssh_keys: 2, grants: 2, users: 1 });
  expect(counts.sessions).toBeGreaterThanOrEqual(4);
  expect(counts.transactions).toBeGreaterThanOrEqual(3);
  expect(counts.denials).toBeGreaterThanOrEqual(1);
  expect(counts.repository_events).toBeGreaterThanOrEqual(1);

  // Table by table: the same count on both sides; the ledger's and access tables row by row.
  const sqlite = new BetterSqlite3(join(e.dataDir, 'borgkeep.db'), { readonly: true });
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    for (const { table, rows } of report.tables) {
      expect(sqlite.prepare(`select count(*) from ${table}`).pluck().get(), table).toBe(rows);
      expect(Number((await client.query(`select count(*) as n from ${table}`)).rows[0].n), table).toBe(rows);
    }
    for (const table of ['sessions', 'transactions', 'denials', 'repository_events', 'ssh_keys', 'grants', 'repositories', 'users']) {
      const fromSqlite = asText(sqlite.prepare(`select * from ${table} order by id`).all() as Array<Record<string, unknown>>);
      const fromPostgres = asText((await client.query(`select * from ${table} order by id`)).rows as Array<Record<string, unknown>>);
      expect(fromPostgres, table).toEqual(fromSqlite);
    }
  } finally {
    sqlite.close();
    await client.end();
  }

  // serve on PostgreSQL (the config file names it now): the console answers as it did.
  writeFileSync(join(e.dataDir, 'borgkeep.json'), JSON.stringify({ database: db.url }));
  const after = await consoleView(await consoleApi(await e.restartFrontEnd(), e.dataDir));
  expect(after).toEqual(before);
  // New rows get new ids after the copied ones: a backup through the gateway on PostgreSQL.
  const create = await e.borg('laptop', ['create', `${e.url('photos')}::b3`, makeSourceTree(join(e.root, 'src3'), 3)]);
  expect(create.code, create.stderr).toBe(0);
  const ledger = JSON.parse(await e.cliOk(['ledger', '--json', '--repo', 'photos', '--limit', '1'])) as { sessions: Array<{ id: number; result: string }> };
  expect(ledger.sessions[0]).toMatchObject({ result: 'ok' });
  expect(ledger.sessions[0]!.id).toBeGreaterThan(counts.sessions!);

  // A second copy finds the database full: one sentence, nothing changed.
  const again = await e.cli(['db', 'copy', '--to', db.url]);
  expect(again.code).not.toBe(0);
  expect(again.stderr.trim()).toMatch(/^borgkeep: postgres:\/\/postgres@127\.0\.0\.1:\d+\/bk_test_[0-9a-f]+ already holds borgkeep data \(table [a-z_]+ has rows\): copy into an empty database$/);
}, 180_000);
