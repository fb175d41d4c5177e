// Opens an installation's store: the data directory, its SQLite database (WAL, foreign keys,
// a 10 s busy timeout that does not block the process: sqlite-driver.ts), the schema migrations, and the stores on top. Every SSH session is a
// separate `borgkeep borg-serve` process that opens the same database, so opening is cheap when
// the schema is current (one read, no write lock) and safe when several processes find it is
// not (the migrations run inside one BEGIN IMMEDIATE transaction; the others wait, then find
// the work done). This file is the only SQLite-specific one; a PostgreSQL opener would sit
// beside it and reuse the migrations and the stores unchanged.

import { mkdirSync } from 'node:fs';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator } from 'kysely';
import { BorgkeepError } from '../errors.js';
import { createArchiveCheckStore, type ArchiveCheckStore } from './archive-check-store.js';
import { createBrowseAccessStore, type BrowseAccessStore } from './browse-access-store.js';
import { createArchiveSightingStore, type ArchiveSightingStore } from './archive-sighting-store.js';
import { createRemovalClaimStore } from './removal-claim-store.js';
import { createAuthStore, type AuthStore } from './auth-store.js';
import { dataDirPaths, type DataDirPaths } from './data-dir.js';
import { createGrantStore, type GrantStore } from './grant-store.js';
import { createKeyStore, type KeyStore } from './key-store.js';
import { createLoginThrottleStore, type LoginThrottleStore } from './login-throttle-store.js';
import { createLeaseStore, type LeaseStore } from './lease-store.js';
import { createNodeStore, type NodeStore } from './node-store.js';
import { createHistoryStore, type HistoryStore } from './history-store.js';
import { createLedgerStore, type LedgerStore } from './ledger-store.js';
import { createMonitoringStore, type MonitoringStore } from './monitoring-store.js';
import { MIGRATIONS, migrationProvider } from './migrations.js';
import { AsyncBusySqliteDialect, BUSY_SLICE_MS, BUSY_TIMEOUT_MS } from './sqlite-driver.js';
import { createRepositoryStore, type RepositoryStore } from './repository-store.js';
import { createRetentionStore, type RetentionStore } from './retention-store.js';
import { createPullStore, type PullStore } from './pull-store.js';
import { createPullReadStore, type PullReadStore } from './pull-read-store.js';
import { createRecoveryCodeStore, type RecoveryCodeStore } from './recovery-code-store.js';
import type { Database } from './schema.js';
import type { StoreDeps } from './store-deps.js';
import type { GuardStore } from './types.js';
import { createUserStore, type UserStore } from './user-store.js';
import { createVerificationStore, type VerificationStore } from './verification-store.js';
import { createSsoUserStore, type SsoUserStore } from './sso-user-store.js';

export const MIGRATION_TABLE = 'kysely_migration';

export interface StoreOptions {
  dataDir: string;
  /**
   * Where the control plane lives: a postgres:// URL (issue 19), or undefined for the data
   * directory's own SQLite file. Resolve it with databaseUrlFor() (database-location.ts).
   */
  database?: string;
  /** The clock for every timestamp the store writes itself; tests fix it. */
  now?: () => Date;
}

export interface Store extends GuardStore, RepositoryStore, KeyStore, GrantStore, LedgerStore, UserStore, HistoryStore, AuthStore, MonitoringStore, ArchiveSightingStore, RetentionStore, RecoveryCodeStore, SsoUserStore, PullStore, PullReadStore, VerificationStore, ArchiveCheckStore, BrowseAccessStore, LoginThrottleStore, LeaseStore, NodeStore {
  readonly paths: DataDirPaths;
  /**
   * PostgreSQL only: calls `onChange` with the name of each table any process wrote to, as the
   * write commits ('*' whenever the listening starts or starts again: what was written before
   * may have gone unheard).
   * Returns the unsubscribe. SQLite has no such signal; its readers look at intervals.
   */
  watchChanges?(onChange: (table: string) => void): () => void;
  close(): Promise<void>;
}

/**
 * Switching a fresh database to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at
 * once, without its busy handler, while another process is opening the same new file (seen with
 * four `borg-serve` sessions starting together on a loaded machine). Retry for the busy timeout.
 */
function enableWal(sqlite: BetterSqlite3.Database): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      sqlite.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
      Atomics.wait(pause, 0, 0, 10 + Math.floor(Math.random() * 40));
    }
  }
}

export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.database !== undefined) {
    const { openPostgresStore } = await import('./postgres-store.js');
    return openPostgresStore({ ...options, database: options.database });
  }
  const paths = dataDirPaths(options.dataDir);
  const now = options.now ?? (() => new Date());
  let sqlite: BetterSqlite3.Database;
  try {
    mkdirSync(paths.root, { recursive: true, mode: 0o700 });
    mkdirSync(paths.repos, { recursive: true, mode: 0o700 });
    sqlite = new BetterSqlite3(paths.database, { timeout: BUSY_TIMEOUT_MS });
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INTERNAL', `cannot open the database ${paths.database}: ${reason(error)}`, {
      cause: error,
    });
  }
  const db = new Kysely<Database>({ dialect: new AsyncBusySqliteDialect(sqlite) });
  try {
    sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    enableWal(sqlite);
    sqlite.pragma('foreign_keys = ON');
    await migrate(sqlite, db, paths.database);
    // From here on the driver waits for other processes' locks without blocking (sqlite-driver.ts).
    sqlite.pragma(`busy_timeout = ${BUSY_SLICE_MS}`);
  } catch (error) {
    // Kysely opens its driver lazily, so destroy() alone may not close the handle.
    await db.destroy().catch(() => undefined);
    if (sqlite.open) sqlite.close();
    if (error instanceof BorgkeepError) throw error;
    throw new BorgkeepError('BK_ERR_INTERNAL', `cannot open the database ${paths.database}: ${reason(error)}`, {
      cause: error,
    });
  }

  // Another connection's commit changes data_version; this connection's own writes change
  // total_changes(). Together: whether anything may have changed since the last look.
  const dataVersion = sqlite.prepare('pragma data_version').pluck();
  const ownChanges = sqlite.prepare('select total_changes()').pluck();
  const changeMark = () => `${dataVersion.get() as number}:${ownChanges.get() as number}`;
  return assembleStore(paths, { db, now, changeMark });
}

/** The stores on one database handle, whichever engine holds it. */
export function assembleStore(paths: DataDirPaths, deps: StoreDeps): Store {
  const { db } = deps;
  return {
    paths,
    ...createUserStore(deps),
    ...createRepositoryStore(deps),
    ...createKeyStore(deps),
    ...createGrantStore(deps),
    ...createLedgerStore(deps),
    ...createHistoryStore(deps),
    ...createAuthStore(deps),
    ...createMonitoringStore(deps),
    ...createArchiveSightingStore(deps),
    ...createRetentionStore(deps),
    ...createRemovalClaimStore(deps),
    ...createRecoveryCodeStore(deps),
    ...createSsoUserStore(deps),
    ...createPullStore(deps),
    ...createPullReadStore(deps),
    ...createVerificationStore(deps),
    ...createArchiveCheckStore(deps),
    ...createBrowseAccessStore(deps),
    ...createLoginThrottleStore(deps),
    ...createLeaseStore(deps),
    ...createNodeStore(deps),
    close: () => db.destroy(),
  };
}

/** The schema is current when every known migration has run; none unknown to this build has. */
function pendingMigrations(sqlite: BetterSqlite3.Database, file: string): string[] {
  const hasTable = sqlite
    .prepare("select 1 from sqlite_master where type = 'table' and name = ?")
    .get(MIGRATION_TABLE);
  return migrationsToRun(hasTable ? (sqlite.prepare(`select name from ${MIGRATION_TABLE}`).pluck().all() as string[]) : [], file);
}

/** Of the migrations this build knows, those not in `done`; refuses a database from a newer build. */
export function migrationsToRun(done: readonly string[], database: string): string[] {
  const unknown = done.filter((name) => !(name in MIGRATIONS));
  if (unknown.length > 0) {
    throw new BorgkeepError(
      'BK_ERR_INTERNAL',
      `the database ${database} was written by a newer borgkeep (it has migration '${unknown[0]}'); upgrade borgkeep`,
    );
  }
  const finished = new Set(done);
  return Object.keys(MIGRATIONS).filter((name) => !finished.has(name));
}

async function migrate(sqlite: BetterSqlite3.Database, db: Kysely<Database>, file: string): Promise<void> {
  if (pendingMigrations(sqlite, file).length === 0) return;
  // Kysely runs SQLite migrations without a transaction of its own (its SqliteAdapter reports no
  // transactional DDL), so this one holds them all: either the whole schema step lands or none
  // of it, and a concurrent opener waits on the write lock instead of racing.
  sqlite.exec('BEGIN IMMEDIATE');
  try {
    if (pendingMigrations(sqlite, file).length > 0) {
      const { error } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
      if (error) throw error;
    }
    sqlite.exec('COMMIT');
  } catch (error) {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
    throw error;
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
