// Kysely's dialect for the store's one better-sqlite3 connection, in which waiting for another
// process's write lock stops neither the event loop nor this process's other queries.
//
// better-sqlite3 is synchronous. With SQLite's busy timeout doing the waiting, a write that
// meets another process's lock (sshd's forced command ending a session, the CLI, a backup tool
// copying the database) would stop the whole server until the lock goes or the timeout ends,
// every SSH session's data with it. Here SQLite waits only a few milliseconds; a statement it
// refuses as busy is tried again after an asynchronous pause, until BUSY_TIMEOUT_MS have passed.
//
// Kysely's own SQLite driver runs every query behind one mutex. This one keeps the rest of the
// process out of an open transaction (a query would otherwise run inside it): queries from
// outside wait until it ends. Writes keep their order; reads do not wait behind a write that
// waits for the lock, and see what is committed.
// Every transaction the stores open writes, so it takes the write lock up front (BEGIN
// IMMEDIATE): in WAL mode a deferred transaction that reads and then writes fails at once with
// SQLITE_BUSY when another process wrote in between, which no retry of the one statement fixes.

import type BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  SqliteDialect,
  type DatabaseConnection,
  type Driver,
  type QueryResult,
} from 'kysely';

import { SLOW_WORK_MS, noteSlowWork } from '../shared/stall-watch.js';
import { sqlProfileFromEnv } from './sql-profile.js';

/** How long a write may wait for another process's lock in all. */
export const BUSY_TIMEOUT_MS = 10_000;
/** How long SQLite itself may block the process on a lock before answering busy. */
export const BUSY_SLICE_MS = 5;
/** BORGKEEP_SQL_PROFILE (sql-profile.ts): each statement's time, for benchmarks. */
const PROFILE = sqlProfileFromEnv();
/** How many prepared statements are kept; the stores' queries come in a few dozen shapes. */
export const STATEMENT_CACHE_SIZE = 256;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const isBusy = (error: unknown) => String((error as { code?: unknown } | null)?.code ?? '').startsWith('SQLITE_BUSY');

class Connection implements DatabaseConnection {
  constructor(private readonly driver: AsyncBusyDriver) {}
  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.driver.run(this, query, false) as Promise<QueryResult<R>>;
  }
  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('the store does not stream queries');
  }
}

class AsyncBusyDriver implements Driver {
  readonly #sqlite: BetterSqlite3.Database;
  readonly #busyTimeoutMs: number;
  /** Prepared statements by SQL, least recently used first. */
  readonly #statements = new Map<string, BetterSqlite3.Statement>();
  /** The connection whose transaction is open, and how the others learn it ended. */
  #owner: Connection | null = null;
  #ended: Promise<void> = Promise.resolve();
  #end: () => void = () => undefined;
  /** The last write from outside a transaction, and how many are under way. */
  #writes: Promise<void> = Promise.resolve();
  #writesQueued = 0;

  constructor(sqlite: BetterSqlite3.Database, busyTimeoutMs: number) {
    this.#sqlite = sqlite;
    this.#busyTimeoutMs = busyTimeoutMs;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new Connection(this);
  }

  async releaseConnection(): Promise<void> {}

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await this.run(connection as Connection, CompiledQuery.raw('begin immediate'), true);
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await this.run(connection as Connection, CompiledQuery.raw('commit'), false);
    // A failed commit leaves the transaction to the rollback that Kysely sends next.
    this.#release(connection as Connection);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      // SQLite may have rolled back already (a full disk, say); then there is nothing to do.
      if (this.#sqlite.inTransaction) await this.run(connection as Connection, CompiledQuery.raw('rollback'), false);
    } finally {
      this.#release(connection as Connection);
    }
  }

  async destroy(): Promise<void> {
    this.#sqlite.close();
  }

  /**
   * Runs one statement for `connection`. Writes from outside a transaction (and the BEGIN of
   * one) keep the order they were asked in, as behind one mutex: the ledger's records of a
   * session are written in the order they happened, also when the first meets a lock.
   */
  async run(connection: Connection, query: CompiledQuery, begins: boolean): Promise<QueryResult<unknown>> {
    // A read gives rows and changes nothing: an insert … returning gives rows but is a write, and
    // SQLite calls BEGIN read-only though it is where a transaction's writes start.
    const statement = this.#prepare(query.sql);
    // The busy timeout counts from now, also for a write that first waits behind earlier ones:
    // each counting its own from its turn, a session end queued behind three writes of a locked
    // database waited four timeouts (about 40 s, test/faults/store-faults.test.ts).
    const deadline = Date.now() + this.#busyTimeoutMs;
    if (this.#owner === connection || (statement.reader && statement.readonly)) return this.#runTrying(connection, query, begins, deadline);
    const earlier = this.#writes;
    let done!: () => void;
    this.#writes = new Promise((resolve) => (done = resolve));
    try {
      // Only when an earlier write is still waiting: otherwise this one runs at once, as asked.
      if (this.#writesQueued++ > 0) await earlier;
      return await this.#runTrying(connection, query, begins, deadline);
    } finally {
      this.#writesQueued--;
      done();
    }
  }

  /** Runs the statement, trying again while another process holds the lock, until `deadline` (at least once). */
  async #runTrying(connection: Connection, query: CompiledQuery, begins: boolean, deadline: number): Promise<QueryResult<unknown>> {
    let pause = 2;
    for (;;) {
      while (this.#owner !== null && this.#owner !== connection) await this.#ended;
      try {
        const result = this.#execute(query);
        if (begins) this.#claim(connection);
        return result;
      } catch (error) {
        if (!isBusy(error) || Date.now() >= deadline) throw error;
      }
      await sleep(pause + Math.random() * pause);
      pause = Math.min(pause * 2, 50);
    }
  }

  #execute(query: CompiledQuery): QueryResult<unknown> {
    const started = performance.now();
    try {
      return PROFILE ? PROFILE.time(query.sql, () => this.#executeNow(query)) : this.#executeNow(query);
    } finally {
      // Synchronous: a long statement holds the whole process; serve's stall watch names it.
      const ms = performance.now() - started;
      if (ms >= SLOW_WORK_MS) noteSlowWork(`SQL ${query.sql.replace(/\s+/g, ' ').slice(0, 160)}`, Math.round(ms));
    }
  }

  #executeNow(query: CompiledQuery): QueryResult<unknown> {
    const statement = this.#prepare(query.sql);
    const parameters = query.parameters as unknown[];
    if (statement.reader) return { rows: statement.all(parameters) };
    const { changes, lastInsertRowid } = statement.run(parameters);
    return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
  }

  /**
   * SQLite compiling the same statement again is a good part of a small query's cost (about a
   * twentieth of the API's CPU under load in bench/api.bench.mjs). Statements are bound afresh
   * on every run, so reusing them changes no result.
   */
  #prepare(sql: string): BetterSqlite3.Statement {
    const hit = this.#statements.get(sql);
    if (hit) {
      this.#statements.delete(sql);
      this.#statements.set(sql, hit);
      return hit;
    }
    const statement = this.#sqlite.prepare(sql);
    this.#statements.set(sql, statement);
    if (this.#statements.size > STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value!);
    return statement;
  }

  #claim(connection: Connection): void {
    this.#owner = connection;
    this.#ended = new Promise((resolve) => (this.#end = resolve));
  }

  #release(connection: Connection): void {
    if (this.#owner !== connection) return;
    this.#owner = null;
    this.#end();
  }
}

/** SQLite's dialect (its SQL, adapter and introspection) with the driver above. */
export class AsyncBusySqliteDialect extends SqliteDialect {
  readonly #sqlite: BetterSqlite3.Database;
  readonly #busyTimeoutMs: number;
  constructor(sqlite: BetterSqlite3.Database, busyTimeoutMs = BUSY_TIMEOUT_MS) {
    super({ database: sqlite });
    this.#sqlite = sqlite;
    this.#busyTimeoutMs = busyTimeoutMs;
  }
  override createDriver(): Driver {
    return new AsyncBusyDriver(this.#sqlite, this.#busyTimeoutMs);
  }
}
