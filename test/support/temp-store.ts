// A store on a real SQLite file in a fresh temporary data directory, with a clock the test
// moves, and synthetic (but well-formed) ed25519 public keys to register. In the `postgres` test
// project (BORGKEEP_TEST_DATABASE=postgres, vitest.config.ts) the same store lives in a fresh
// database on the run's PostgreSQL server instead (test/global-setup.ts), dropped at cleanup.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { openStore, type Store } from '../../src/store/database.js';
import { parseSshPublicKey, type SshPublicKey } from '../../src/store/ssh-public-key.js';

export interface TestClock {
  now: () => Date;
  set(date: Date | string): void;
  advance(ms: number): void;
}

export function createClock(start = '2025-01-01T00:00:00.000Z'): TestClock {
  let current = new Date(start).getTime();
  return {
    now: () => new Date(current),
    set: (date) => {
      current = new Date(date).getTime();
    },
    advance: (ms) => {
      current += ms;
    },
  };
}

export interface TempStore {
  root: string;
  dataDir: string;
  store: Store;
  clock: TestClock;
  reopen(): Promise<Store>;
  /** Another store on the same database, as another process (sshd's forced command, the CLI) opens it; the caller closes it. */
  openAnother(): Promise<Store>;
  /** Runs SQL on the database behind the store's back (`?` placeholders on both engines); the rows. */
  query(statement: string, params?: readonly unknown[]): Promise<Array<Record<string, unknown>>>;
  cleanup(): Promise<void>;
}

/** Which engine this test process's temporary stores use. */
export const TEST_DATABASE: 'sqlite' | 'postgres' = process.env.BORGKEEP_TEST_DATABASE === 'postgres' ? 'postgres' : 'sqlite';

/** Runs one statement on a PostgreSQL database through a connection of its own; the rows (64-bit integers as strings). */
export async function queryPostgres(url: string, statement: string, params: readonly unknown[] = []): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(statement, [...params])).rows as Array<Record<string, unknown>>;
  } finally {
    await client.end();
  }
}

/** A fresh, empty database on the run's PostgreSQL server, and how to drop it. */
export async function createTestPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = process.env.BORGKEEP_TEST_POSTGRES_URL;
  if (!admin) {
    throw new Error(`the PostgreSQL store tests need a server, and none was started: ${process.env.BORGKEEP_TEST_NO_POSTGRES ?? 'unknown reason'}. Run npm test as root, or set BORGKEEP_TEST_POSTGRES_URL to a server where that user may create databases`);
  }
  const name = `bk_test_${randomBytes(6).toString('hex')}`;
  const run = async (statement: string) => void (await queryPostgres(admin, statement));
  await run(`create database ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`drop database if exists ${name} with (force)`) };
}

export async function openTempStore(): Promise<TempStore> {
  const root = mkdtempSync(join(tmpdir(), 'borgkeep-store-'));
  const dataDir = join(root, 'data');
  const clock = createClock();
  const database = TEST_DATABASE === 'postgres' ? await createTestPostgresDatabase() : null;
  const open = () => openStore({ dataDir, now: clock.now, ...(database && { database: database.url }) });
  const temp: TempStore = {
    root,
    dataDir,
    clock,
    store: await open(),
    async reopen() {
      await temp.store.close();
      temp.store = await open();
      return temp.store;
    },
    openAnother: open,
    async query(statement, params = []) {
      if (database) {
        let n = 0;
        return queryPostgres(database.url, statement.replace(/\?/g, () => `$${++n}`), params);
      }
      const db = new BetterSqlite3(join(dataDir, 'borgkeep.db'));
      try {
        const prepared = db.prepare(statement);
        return prepared.reader ? (prepared.all(...params) as Array<Record<string, unknown>>) : (prepared.run(...params), []);
      } finally {
        db.close();
      }
    },
    async cleanup() {
      await temp.store.close();
      await database?.drop();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return temp;
}

function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A random, well-formed ed25519 public key line. */
export function ed25519Line(comment = 'test@host'): string {
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(randomBytes(32))]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

export function ed25519Key(comment?: string): SshPublicKey {
  return parseSshPublicKey(ed25519Line(comment));
}
