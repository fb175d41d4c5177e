import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { BorgkeepError } from '../errors.js';
import { openStore, type Store } from './database.js';
import { MIGRATIONS } from './migrations.js';

const roots: string[] = [];
const stores: Store[] = [];

function tempDataDir(): string {
  const root = mkdtempSync(join(tmpdir(), 'borgkeep-db-'));
  roots.push(root);
  return join(root, 'nested', 'data');
}

async function open(dataDir: string): Promise<Store> {
  const store = await openStore({ dataDir });
  stores.push(store);
  return store;
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close().catch(() => undefined)));
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

describe('openStore', () => {
  it('creates the data directory (0700), repos/ and a WAL database with foreign keys on', async () => {
    const dataDir = tempDataDir();
    const store = await open(dataDir);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, 'repos')).mode & 0o777).toBe(0o700);
    expect(store.paths.database).toBe(join(dataDir, 'borgkeep.db'));
    await store.close();

    const raw = new BetterSqlite3(join(dataDir, 'borgkeep.db'));
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = raw.prepare("select name from sqlite_master where type = 'table' order by name").pluck().all();
      expect(tables).toEqual(
        expect.arrayContaining(['users', 'repositories', 'ssh_keys', 'grants', 'sessions', 'transactions', 'denials']),
      );
      const indexes = raw.prepare("select name from sqlite_master where type = 'index'").pluck().all();
      expect(indexes).toEqual(
        expect.arrayContaining(['sessions_repository_started_idx', 'sessions_key_repository_started_idx']),
      );
    } finally {
      raw.close();
    }
  });

  it('enforces foreign keys on the connection it opens', async () => {
    const store = await open(tempDataDir());
    const sessionId = await store.startSession({
      keyId: null,
      keyName: null,
      clientAddress: null,
      startedAt: new Date(),
      pid: 1,
      host: 'h',
    });
    await expect(
      store.recordTransaction({
        sessionId: sessionId + 1000,
        borgTransactionId: 1,
        objectsPut: 0,
        objectsOverwritten: 0,
        objectsDeleted: 0,
        manifestWritten: false,
        state: 'committed',
        startedAt: new Date(),
        endedAt: new Date(),
      }),
    ).rejects.toThrow(/FOREIGN KEY/);
  });

  it('runs the migrations once: a second open finds the schema current and keeps the data', async () => {
    const dataDir = tempDataDir();
    const first = await open(dataDir);
    await first.createRepository({ name: 'kept', quotaBytes: null });
    await first.close();

    const second = await open(dataDir);
    expect((await second.listRepositories()).map((r) => r.repository.name)).toEqual(['kept']);
    await second.close();

    const raw = new BetterSqlite3(join(dataDir, 'borgkeep.db'));
    try {
      const names = raw.prepare('select name from kysely_migration order by name').pluck().all();
      expect(names).toEqual(Object.keys(MIGRATIONS));
    } finally {
      raw.close();
    }
  });

  it('refuses a database written by a newer borgkeep, in one sentence', async () => {
    const dataDir = tempDataDir();
    await (await open(dataDir)).close();
    const raw = new BetterSqlite3(join(dataDir, 'borgkeep.db'));
    raw.prepare("insert into kysely_migration (name, timestamp) values ('9999_future', 'x')").run();
    raw.close();
    const error = await openStore({ dataDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BorgkeepError);
    expect((error as Error).message).toMatch(/was written by a newer borgkeep \(it has migration '9999_future'\); upgrade borgkeep$/);
  });

  it('says which database it cannot open and why', async () => {
    const root = mkdtempSync(join(tmpdir(), 'borgkeep-db-'));
    roots.push(root);
    // A data directory under a regular file cannot be created.
    writeFileSync(join(root, 'file'), '');
    const error = await openStore({ dataDir: join(root, 'file', 'data') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BorgkeepError);
    expect((error as Error).message).toMatch(/^cannot open the database .*file\/data\/borgkeep\.db: ENOTDIR/);
  });
});
