// The store on PostgreSQL (issue 19): Kysely's PostgreSQL dialect, changed in three ways so that
// the migrations and stores written for SQLite mean the same here.
//
// - Types: the schema says `integer` where SQLite stores any 64-bit integer (bytes read, times);
//   PostgreSQL's integer is 32 bits, so columns become bigint, and `real` (PostgreSQL: 4 bytes)
//   becomes double precision. bigint and numeric values come back as numbers, as better-sqlite3
//   returns them, not as strings; a value past 2^53 is an error, never a silently rounded number.
// - Writes: on SQLite every write takes the database's one write lock (a transaction up front:
//   BEGIN IMMEDIATE), so "count, then insert" (a grant's writes per day, a removal claim, a pull
//   job's claim under its limits) cannot race another process. Here each transaction, and each
//   write outside one, takes one transaction-level advisory lock first: the same serial order
//   across every process on the database, with reads outside transactions still free.
// - One connection per process, as on SQLite: statements a process sends run in the order sent,
//   and a query from outside an open transaction waits for it to end.

import pg from 'pg';
import {
  CompiledQuery,
  PostgresDialect,
  PostgresDriver,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type DataTypeNode,
  type QueryResult,
  type Driver,
  type QueryCompiler,
  type TransactionSettings,
} from 'kysely';

/** The advisory lock every store transaction holds (an arbitrary number: "bkst"). */
export const STORE_LOCK = 0x626b7374;
/** How long a statement may wait for a lock (another process's transaction) before it fails. */
export const LOCK_TIMEOUT_MS = 10_000;

const TYPE_MAP: Readonly<Record<string, string>> = { integer: 'bigint', real: 'double precision' };

class StoreQueryCompiler extends PostgresQueryCompiler {
  protected override visitDataType(node: DataTypeNode): void {
    const mapped = TYPE_MAP[node.dataType];
    if (mapped) this.append(mapped);
    else super.visitDataType(node);
  }
}

const BEGIN_LOCKED = CompiledQuery.raw(`select pg_advisory_xact_lock(${STORE_LOCK})`);
/**
 * Statements that write: they run in the serial order, as on SQLite. The stores write no CTEs;
 * a `with` is Kysely's migration lock, which must not wait for the migration lock while holding
 * the store's (the migrator takes them the other way round).
 */
const WRITES = /^\s*(insert|update|delete|merge)\b/i;

/**
 * A connection whose writes outside a transaction run in one of their own, under the store's
 * lock: "update the first queued job" from two processes then behaves as on SQLite (the second
 * sees the first's claim and takes the next job) instead of PostgreSQL's READ COMMITTED answer
 * (the second re-checks the row the first took and updates nothing).
 */
class SerialConnection implements DatabaseConnection {
  inTransaction = false;
  constructor(readonly inner: DatabaseConnection) {}
  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (this.inTransaction || !WRITES.test(query.sql)) return this.inner.executeQuery<R>(query);
    await this.inner.executeQuery(CompiledQuery.raw('begin'));
    try {
      await this.inner.executeQuery(BEGIN_LOCKED);
      const result = await this.inner.executeQuery<R>(query);
      await this.inner.executeQuery(CompiledQuery.raw('commit'));
      return result;
    } catch (error) {
      await this.inner.executeQuery(CompiledQuery.raw('rollback')).catch(() => undefined);
      throw error;
    }
  }
  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

class SerialTransactionDriver extends PostgresDriver {
  readonly #wrapped = new WeakMap<DatabaseConnection, SerialConnection>();
  override async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await super.acquireConnection();
    let wrapped = this.#wrapped.get(inner);
    if (!wrapped) this.#wrapped.set(inner, (wrapped = new SerialConnection(inner)));
    return wrapped;
  }
  override async releaseConnection(connection: DatabaseConnection): Promise<void> {
    await super.releaseConnection((connection as SerialConnection).inner as Parameters<PostgresDriver['releaseConnection']>[0]);
  }
  override async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = connection as SerialConnection;
    await super.beginTransaction(c.inner, settings);
    c.inTransaction = true;
    await c.inner.executeQuery(BEGIN_LOCKED);
  }
  override async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as SerialConnection;
    c.inTransaction = false;
    await super.commitTransaction(c.inner);
  }
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as SerialConnection;
    c.inTransaction = false;
    await super.rollbackTransaction(c.inner);
  }
}

class StoreDialect extends PostgresDialect {
  readonly #pool: pg.Pool;
  constructor(pool: pg.Pool) {
    super({ pool });
    this.#pool = pool;
  }
  override createDriver(): Driver {
    return new SerialTransactionDriver({ pool: this.#pool });
  }
  override createQueryCompiler(): QueryCompiler {
    return new StoreQueryCompiler();
  }
}

const INT8 = 20;
const NUMERIC = 1700;

function toNumber(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) && Number.isInteger(n)) throw new RangeError(`the database returned ${text}, beyond what this program counts exactly (2^53)`);
  return n;
}

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8 || oid === NUMERIC) return toNumber;
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/** The URL without its password, for messages and logs. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the PostgreSQL database';
  }
}

export function createPostgresPool(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 1,
    types,
    // A server that does not answer fails the opening in a bounded time, in one sentence.
    connectionTimeoutMillis: 10_000,
    options: `-c lock_timeout=${LOCK_TIMEOUT_MS} -c TimeZone=UTC`,
  });
  // An idle connection the server dropped (restart, admin): the next query reconnects.
  pool.on('error', () => undefined);
  return pool;
}

export function postgresDialect(pool: pg.Pool): PostgresDialect {
  return new StoreDialect(pool);
}
