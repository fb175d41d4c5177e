import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AsyncBusySqliteDialect, BUSY_SLICE_MS } from './sqlite-driver.js';

interface Db {
  t: { n: number };
}

let dir: string;
let sqlite: BetterSqlite3.Database;
let other: BetterSqlite3.Database;
const open = (busyTimeoutMs?: number) => new Kysely<Db>({ dialect: new AsyncBusySqliteDialect(sqlite, busyTimeoutMs) });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'borgkeep-driver-'));
  sqlite = new BetterSqlite3(join(dir, 'db'));
  sqlite.pragma('journal_mode = WAL');
  sqlite.exec('create table t (n integer)');
  sqlite.pragma(`busy_timeout = ${BUSY_SLICE_MS}`);
  // Another connection, as another process would hold the write lock.
  other = new BetterSqlite3(join(dir, 'db'));
});
afterEach(() => {
  other.close();
  if (sqlite.open) sqlite.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Counts timer ticks until stopped: whether the event loop ran meanwhile. */
function ticker() {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  return { stop: () => (clearInterval(timer), ticks) };
}

describe('the store driver while another process holds the write lock', () => {
  it('waits without blocking the event loop, lets reads through meanwhile, and writes once the lock is gone', async () => {
    const db = open();
    await db.insertInto('t').values({ n: 1 }).execute();
    other.exec('begin immediate; insert into t values (99)');
    const ticks = ticker();
    const started = Date.now();
    const write = db.insertInto('t').values({ n: 2 }).execute();
    // A read through the same store is answered while the write waits (WAL: the lock holder's
    // uncommitted row is not seen).
    expect((await db.selectFrom('t').select('n').execute()).map((r) => r.n)).toEqual([1]);
    await new Promise((r) => setTimeout(r, 600));
    other.exec('commit');
    await write;
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    // Each try blocks for at most BUSY_SLICE_MS: the 10 ms timer ran nearly all the time.
    expect(ticks.stop()).toBeGreaterThan(30);
    expect((await db.selectFrom('t').select('n').orderBy('n').execute()).map((r) => r.n)).toEqual([1, 2, 99]);
    await db.destroy();
  });

  it('keeps the order of the writes that wait for the lock', async () => {
    const db = open();
    other.exec('begin immediate');
    const writes = Array.from({ length: 20 }, (_, n) => db.insertInto('t').values({ n }).execute());
    await new Promise((r) => setTimeout(r, 300));
    other.exec('commit');
    await Promise.all(writes);
    expect((await sql<{ n: number }>`select n from t order by rowid`.execute(db)).rows.map((r) => r.n)).toEqual(Array.from({ length: 20 }, (_, n) => n));
    await db.destroy();
  });

  it('keeps the order of writes that return rows (insert … returning) like any other write', async () => {
    const db = open();
    other.exec('begin immediate');
    const writes = Array.from({ length: 20 }, (_, n) =>
      n % 2 === 0 ? db.insertInto('t').values({ n }).returning('n').executeTakeFirstOrThrow() : db.insertInto('t').values({ n }).execute(),
    );
    await new Promise((r) => setTimeout(r, 300));
    other.exec('commit');
    await Promise.all(writes);
    expect((await sql<{ n: number }>`select n from t order by rowid`.execute(db)).rows.map((r) => r.n)).toEqual(Array.from({ length: 20 }, (_, n) => n));
    await db.destroy();
  });

  it('gives up with SQLite\'s busy error after the busy timeout, and writes nothing', async () => {
    const db = open(300);
    other.exec('begin immediate');
    const started = Date.now();
    const error = await db
      .insertInto('t')
      .values({ n: 3 })
      .execute()
      .then(() => null, (e: { code?: string }) => e);
    expect(error?.code).toBe('SQLITE_BUSY');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(Date.now() - started).toBeLessThan(2000);
    // A transaction waits for the lock too, and leaves nothing open when it gives up.
    const tx = await db
      .transaction()
      .execute((trx) => trx.insertInto('t').values({ n: 4 }).execute())
      .then(() => 'committed', (e: { code?: string }) => e.code);
    expect(tx).toBe('SQLITE_BUSY');
    other.exec('rollback');
    await db.insertInto('t').values({ n: 5 }).execute();
    expect((await db.selectFrom('t').select('n').execute()).map((r) => r.n)).toEqual([5]);
    await db.destroy();
  });

  it('counts the busy timeout from when a write was asked, also for writes queued behind another (a session end waited four timeouts, ~40 s, behind the writes before it)', async () => {
    const db = open(400);
    other.exec('begin immediate');
    const started = Date.now();
    const ended = await Promise.all(
      [6, 7, 8, 9].map((n) =>
        db
          .insertInto('t')
          .values({ n })
          .execute()
          .then(
            () => 'written',
            (e: { code?: string }) => `${e.code} after ${Date.now() - started} ms`,
          ),
      ),
    );
    for (const e of ended) expect(e).toMatch(/^SQLITE_BUSY after \d+ ms$/);
    // Each gives up about one timeout after it was asked, not one timeout after the one before it.
    expect(Date.now() - started).toBeLessThan(400 * 2);
    other.exec('rollback');
    await db.insertInto('t').values({ n: 10 }).execute();
    expect((await db.selectFrom('t').select('n').execute()).map((r) => r.n)).toEqual([10]);
    await db.destroy();
  });
});

describe('the store driver with its own transactions', () => {
  it('keeps every other query of the process out of an open transaction until it ends', async () => {
    const db = open();
    let release!: () => void;
    const paused = new Promise<void>((r) => (release = r));
    const order: string[] = [];
    const tx = db.transaction().execute(async (trx) => {
      await trx.insertInto('t').values({ n: 1 }).execute();
      order.push('first insert');
      await paused;
      await trx.insertInto('t').values({ n: 2 }).execute();
      order.push('second insert');
    });
    await new Promise((r) => setTimeout(r, 20));
    const read = db
      .selectFrom('t')
      .select('n')
      .execute()
      .then((rows) => {
        order.push('outside read');
        return rows.map((r) => r.n);
      });
    await new Promise((r) => setTimeout(r, 50));
    expect(order).toEqual(['first insert']);
    release();
    await tx;
    // The read ran after the commit: both rows, never the half-done transaction.
    expect(await read).toEqual([1, 2]);
    expect(order).toEqual(['first insert', 'second insert', 'outside read']);
    await db.destroy();
  });

  it('rolls back a transaction that throws and lets the next one run', async () => {
    const db = open();
    const failed = await db
      .transaction()
      .execute(async (trx) => {
        await trx.insertInto('t').values({ n: 1 }).execute();
        throw new Error('changed my mind');
      })
      .catch((e: Error) => e.message);
    expect(failed).toBe('changed my mind');
    expect(sqlite.inTransaction).toBe(false);
    await db.transaction().execute((trx) => trx.insertInto('t').values({ n: 2 }).execute());
    expect((await db.selectFrom('t').select('n').execute()).map((r) => r.n)).toEqual([2]);
    expect((await sql<{ c: number }>`select count(*) as c from t`.execute(db)).rows[0]!.c).toBe(1);
    await db.destroy();
  });
});
