// Opens the store on PostgreSQL (issue 19): the same migrations and stores as on SQLite
// (database.ts), through postgres-dialect.ts. The data directory still holds what is not the
// control plane: repositories, the key vault, host keys. Loaded only when a postgres:// URL is
// configured, so the forced command on SQLite never reads the pg driver.

import { mkdirSync } from 'node:fs';
import { Kysely, Migrator, sql } from 'kysely';
import pg from 'pg';
import { BorgkeepError } from '../errors.js';
import { dataDirPaths } from './data-dir.js';
import { assembleStore, MIGRATION_TABLE, migrationsToRun, type Store, type StoreOptions } from './database.js';
import { CHANGE_CHANNEL, CHANGE_TABLE, migrationProvider } from './migrations.js';
import { createPostgresPool, postgresDialect, redactDatabaseUrl } from './postgres-dialect.js';
import type { Database } from './schema.js';

export async function openPostgresStore(options: StoreOptions & { database: string }): Promise<Store> {
  const paths = dataDirPaths(options.dataDir);
  const now = options.now ?? (() => new Date());
  const shown = redactDatabaseUrl(options.database);
  try {
    mkdirSync(paths.root, { recursive: true, mode: 0o700 });
    mkdirSync(paths.repos, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INTERNAL', `cannot make the data directory ${paths.root}: ${(error as Error).message}`, { cause: error });
  }
  // The pool connects (and reads the URL) at the first query, whose failure is the catch below.
  const db = new Kysely<Database>({ dialect: postgresDialect(createPostgresPool(options.database)) });
  try {
    if ((await pending(db, shown)).length > 0) {
      // Kysely's migrator holds PostgreSQL's advisory lock and runs the steps in one transaction:
      // a second process opening at the same time waits, then finds the work done.
      const { error } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
      if (error) throw error;
    }
  } catch (error) {
    await db.destroy().catch(() => undefined);
    if (error instanceof BorgkeepError) throw error;
    throw new BorgkeepError('BK_ERR_INTERNAL', `cannot open the database ${shown}: ${(error as Error).message}`, { cause: error });
  }
  // Every statement that wrote, in this process or another, bumped the version (migration 0026).
  const changeMark = async () => String((await sql<{ version: number }>`select version from ${sql.table(CHANGE_TABLE)} where id = 1`.execute(db)).rows[0]!.version);
  const store = assembleStore(paths, { db, now, changeMark });
  const watcher = createChangeWatcher(options.database);
  return {
    ...store,
    watchChanges: watcher.watch,
    async close() {
      await watcher.close();
      await store.close();
    },
  };
}

/** How long a dropped LISTEN connection waits before it connects again. */
export const RELISTEN_MS = 1000;

/**
 * One LISTEN connection per process, opened with the first watcher and closed with the last:
 * each write's notification (migration 0026) goes to every watcher. Whenever the LISTEN takes
 * effect (the first time, and again after the connection dropped) the watchers hear '*', since
 * notifications sent before it are lost.
 */
function createChangeWatcher(url: string) {
  const watchers = new Set<(table: string) => void>();
  let client: pg.Client | null = null;
  let retry: NodeJS.Timeout | null = null;
  let closed = false;
  const tell = (table: string) => {
    for (const w of watchers) {
      try {
        w(table);
      } catch {
        // a watcher's own failure is its own
      }
    }
  };
  const connect = () => {
    if (closed || client || watchers.size === 0) return;
    const c = new pg.Client({ connectionString: url });
    client = c;
    const lost = () => {
      if (client !== c) return;
      client = null;
      c.end().catch(() => undefined);
      if (!closed && watchers.size > 0) retry ??= setTimeout(() => ((retry = null), connect()), RELISTEN_MS).unref();
    };
    c.on('error', lost);
    c.on('end', lost);
    c.on('notification', (n) => {
      if (n.channel === CHANGE_CHANNEL) tell(n.payload ?? '*');
    });
    // Once listening, '*': what was written before the LISTEN took effect (while it connected,
    // or while the connection was down) sent notifications nobody heard.
    c.connect()
      .then(() => c.query(`listen ${CHANGE_CHANNEL}`))
      .then(() => tell('*'))
      .catch(lost);
  };
  return {
    watch(onChange: (table: string) => void): () => void {
      watchers.add(onChange);
      connect();
      return () => {
        watchers.delete(onChange);
        if (watchers.size === 0 && client) {
          const c = client;
          client = null;
          c.end().catch(() => undefined);
        }
      };
    },
    async close() {
      closed = true;
      watchers.clear();
      if (retry) clearTimeout(retry);
      const c = client;
      client = null;
      await c?.end().catch(() => undefined);
    },
  };
}

async function pending(db: Kysely<Database>, shown: string): Promise<string[]> {
  const { rows } = await sql<{ present: string | null }>`select to_regclass(${MIGRATION_TABLE}) as present`.execute(db);
  if (!rows[0]?.present) return migrationsToRun([], shown);
  const done = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)}`.execute(db);
  return migrationsToRun(done.rows.map((r) => r.name), shown);
}
