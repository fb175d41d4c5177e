// Opens the store on PostgreSQL (issue 19): the same migrations and stores as on SQLite
// (database.ts), through postgres-dialect.ts. The data directory still holds what is not the
// control plane: repositories, the key vault, host keys. Loaded only when a postgres:// URL is
// configured, so the forced command on SQLite never reads the pg driver.

import { mkdirSync } from 'node:fs';
import { Kysely, Migrator, sql } from 'kysely';
import { BorgkeepError } from '../errors.js';
import { dataDirPaths } from './data-dir.js';
import { assembleStore, MIGRATION_TABLE, migrationsToRun, type Store, type StoreOptions } from './database.js';
import { CHANGE_TABLE, migrationProvider } from './migrations.js';
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
  let pool;
  try {
    pool = createPostgresPool(options.database);
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', `cannot use the database ${shown}: ${(error as Error).message}`, { cause: error });
  }
  const db = new Kysely<Database>({ dialect: postgresDialect(pool) });
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
  return assembleStore(paths, { db, now, changeMark });
}

async function pending(db: Kysely<Database>, shown: string): Promise<string[]> {
  const { rows } = await sql<{ present: string | null }>`select to_regclass(${MIGRATION_TABLE}) as present`.execute(db);
  if (!rows[0]?.present) return migrationsToRun([], shown);
  const done = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)}`.execute(db);
  return migrationsToRun(done.rows.map((r) => r.name), shown);
}
