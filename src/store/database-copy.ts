// `borgkeep db copy` (issue 19): moves an installation's control plane from its SQLite file to an
// empty PostgreSQL database without losing a row. Both schemas are brought to this build's
// migrations first; then every table is copied in one PostgreSQL transaction (all of it lands,
// or nothing), in foreign-key order, with the ids as they were (authorized_keys lines and old
// ledger rows name keys by id) and each identity sequence moved past them. The SQLite file's
// write lock is held throughout, so nothing written meanwhile is lost: a borg session that tries
// waits, and fails after the busy timeout rather than write to the old database unseen.
// The triggers that keep status versions are off while rows arrive (they are copied as they
// were); the change marks are bumped once at the end.

import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';

import { BorgkeepError, invalidInput } from '../errors.js';
import { openStore } from './database.js';
import { CHANGE_TABLE } from './migrations.js';
import { redactDatabaseUrl } from './postgres-dialect.js';
import { BUSY_TIMEOUT_MS } from './sqlite-driver.js';

/** Tables each side has of its own: migration bookkeeping and the change counters. */
const NOT_COPIED = new Set(['kysely_migration', 'kysely_migration_lock', 'access_version', CHANGE_TABLE]);
/** PostgreSQL takes at most 65,535 parameters per statement. */
const MAX_PARAMETERS = 60_000;

export interface CopiedTable {
  table: string;
  rows: number;
}

/** Tables in an order where each comes after those its foreign keys name. */
function foreignKeyOrder(sqlite: BetterSqlite3.Database, tables: string[]): string[] {
  const deps = new Map(tables.map((t) => [t, (sqlite.prepare(`pragma foreign_key_list(${quoteIdent(t)})`).all() as Array<{ table: string }>).map((f) => f.table).filter((d) => d !== t)]));
  const done: string[] = [];
  const visit = (t: string, path: Set<string>) => {
    if (done.includes(t)) return;
    if (path.has(t)) throw new Error(`the tables' foreign keys form a cycle through ${t}`);
    path.add(t);
    for (const d of deps.get(t) ?? []) if (deps.has(d)) visit(d, path);
    path.delete(t);
    done.push(t);
  };
  for (const t of [...tables].sort()) visit(t, new Set());
  return done;
}

function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unexpected table or column name ${JSON.stringify(name)}`);
  return `"${name}"`;
}

export async function copySqliteToPostgres(options: { dataDir: string; to: string; onTable?: (copied: CopiedTable) => void }): Promise<CopiedTable[]> {
  const shown = redactDatabaseUrl(options.to);
  // Both schemas current: the source's own migrations run as any borgkeep start would run them.
  const source = await openStore({ dataDir: options.dataDir });
  const file = source.paths.database;
  await source.close();
  const target = await openStore({ dataDir: options.dataDir, database: options.to });
  await target.close();

  const sqlite = new BetterSqlite3(file, { timeout: BUSY_TIMEOUT_MS });
  const client = new pg.Client({ connectionString: options.to });
  try {
    await client.connect();
    sqlite.exec('BEGIN IMMEDIATE');
    const sourceTables = (sqlite.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name").pluck().all() as string[]).filter((t) => !NOT_COPIED.has(t));
    const targetTables = (await client.query<{ name: string }>('select tablename as name from pg_tables where schemaname = current_schema() order by tablename')).rows.map((r) => r.name).filter((t) => !NOT_COPIED.has(t));
    const missing = sourceTables.filter((t) => !targetTables.includes(t));
    if (missing.length > 0) throw new Error(`the PostgreSQL schema has no table ${missing[0]}`);
    for (const table of targetTables) {
      const { rows } = await client.query(`select exists (select 1 from ${quoteIdent(table)}) as taken`);
      if (rows[0]?.taken) throw invalidInput(`${shown} already holds borgkeep data (table ${table} has rows): copy into an empty database`);
    }

    const copied: CopiedTable[] = [];
    await client.query('begin');
    try {
      for (const table of foreignKeyOrder(sqlite, sourceTables)) {
        const columns = (sqlite.prepare(`pragma table_info(${quoteIdent(table)})`).all() as Array<{ name: string }>).map((c) => c.name);
        const list = columns.map(quoteIdent).join(', ');
        await client.query(`alter table ${quoteIdent(table)} disable trigger user`);
        const perStatement = Math.max(1, Math.floor(MAX_PARAMETERS / columns.length));
        let batch: unknown[][] = [];
        let count = 0;
        const flush = async () => {
          if (batch.length === 0) return;
          const values = batch.map((row, i) => `(${row.map((_, j) => `$${i * columns.length + j + 1}`).join(', ')})`).join(', ');
          await client.query(`insert into ${quoteIdent(table)} (${list}) overriding system value values ${values}`, batch.flat());
          count += batch.length;
          batch = [];
        };
        for (const row of sqlite.prepare(`select ${list} from ${quoteIdent(table)}`).raw().iterate() as Iterable<unknown[]>) {
          batch.push(row);
          if (batch.length >= perStatement) await flush();
        }
        await flush();
        await client.query(`alter table ${quoteIdent(table)} enable trigger user`);
        if (columns.includes('id')) {
          await client.query(`select setval(pg_get_serial_sequence($1, 'id'), coalesce(max(id), 0) + 1, false) from ${quoteIdent(table)}`, [table]);
        }
        const inSource = sqlite.prepare(`select count(*) from ${quoteIdent(table)}`).pluck().get() as number;
        const inTarget = Number((await client.query(`select count(*) as n from ${quoteIdent(table)}`)).rows[0]?.n);
        if (inSource !== count || inTarget !== count) throw new Error(`table ${table}: ${inSource} rows in SQLite, ${inTarget} after the copy`);
        const result = { table, rows: count };
        copied.push(result);
        options.onTable?.(result);
      }
      await client.query(`update ${CHANGE_TABLE} set version = version + 1`);
      await client.query('update access_version set version = version + 1');
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    }
    return copied;
  } catch (error) {
    if (error instanceof BorgkeepError) throw error;
    throw invalidInput(`the copy to ${shown} failed, and nothing was copied: ${(error as Error).message}`);
  } finally {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
    sqlite.close();
    await client.end().catch(() => undefined);
  }
}
