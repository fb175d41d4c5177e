// The store on a real PostgreSQL server (issue 19), beyond what every store test checks on both
// engines: opening (migrations run once, also by processes opening together; a newer schema and
// an unreachable server are one sentence, without the password), the type mapping (64-bit
// counters), the change mark behind the status list, and writes that race across processes.
// Runs in the `postgres` test project only (vitest.config.ts).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createTestPostgresDatabase, ed25519Key, queryPostgres } from '../../test/support/temp-store.js';
import { BorgkeepError } from '../errors.js';
import { openStore, type Store } from './database.js';
import { CHANGE_TABLE, MIGRATIONS } from './migrations.js';
import { createLiveEvents, type LiveEvent } from '../api/features/live-events.js';
import { createAuthThrottle } from '../gateway/auth-throttle.js';
import { createSharedAuthThrottle } from '../gateway/shared-throttle.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function database(): Promise<{ url: string; dataDir: string; open(): Promise<Store>; query(text: string): Promise<Array<Record<string, unknown>>> }> {
  const db = await createTestPostgresDatabase();
  const root = mkdtempSync(join(tmpdir(), 'borgkeep-pg-'));
  cleanups.push(() => db.drop(), () => rmSync(root, { recursive: true, force: true }));
  const dataDir = join(root, 'data');
  return {
    url: db.url,
    dataDir,
    async open() {
      const store = await openStore({ dataDir, database: db.url });
      cleanups.push(() => store.close());
      return store;
    },
    query: (text) => queryPostgres(db.url, text),
  };
}

it('runs every migration once, also when four processes open a new database together', async () => {
  const d = await database();
  const stores = await Promise.all([d.open(), d.open(), d.open(), d.open()]);
  await stores[0]!.createRepository({ name: 'photos', quotaBytes: null });
  expect((await stores[3]!.listRepositories()).map((r) => r.repository.name)).toEqual(['photos']);
  const done = await d.query('select name from kysely_migration order by name');
  expect(done.map((r) => r.name)).toEqual(Object.keys(MIGRATIONS).sort());
  // Opening a current schema changes nothing.
  await d.open();
  expect(await d.query('select count(*)::int as n from kysely_migration')).toEqual([{ n: Object.keys(MIGRATIONS).length }]);
});

it('refuses a database written by a newer borgkeep, in one sentence', async () => {
  const d = await database();
  await (await d.open()).close();
  await d.query("insert into kysely_migration (name, timestamp) values ('9999_future', 'x')");
  const error = await openStore({ dataDir: d.dataDir, database: d.url }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(BorgkeepError);
  expect((error as Error).message).toMatch(/was written by a newer borgkeep \(it has migration '9999_future'\); upgrade borgkeep$/);
});

it('says in one sentence that it cannot reach the server, naming it without the password', async () => {
  const root = mkdtempSync(join(tmpdir(), 'borgkeep-pg-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  // A loopback port nothing listens on.
  const url = 'postgres://borgkeep:s3cret-pass@127.0.0.1:9/borgkeep';
  const error = await openStore({ dataDir: join(root, 'data'), database: url }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(BorgkeepError);
  expect((error as Error).message).toMatch(/^cannot open the database postgres:\/\/borgkeep:\*\*\*@127\.0\.0\.1:9\/borgkeep: .*ECONNREFUSED/);
  expect((error as Error).message).not.toContain('s3cret');
});

it('keeps 64-bit counters exact and returns them as numbers', async () => {
  const d = await database();
  const store = await d.open();
  const repo = await store.createRepository({ name: 'photos', quotaBytes: 2 ** 40 });
  const id = await store.startSession({ keyId: null, keyName: null, clientAddress: null, startedAt: new Date('2025-01-01T00:00:00Z'), pid: 1, host: 'h' });
  await store.updateSession(id, { repositoryId: repo.id, repositoryName: 'photos', bytesIn: 2 ** 53 - 1, bytesOut: 5_000_000_000 });
  const [session] = await store.listSessions();
  expect(session).toMatchObject({ bytesIn: 2 ** 53 - 1, bytesOut: 5_000_000_000 });
  expect((await store.getRepository('photos')).quotaBytes).toBe(2 ** 40);
  // Columns SQLite calls integer are 64-bit here too.
  const types = await d.query("select data_type from information_schema.columns where table_schema = current_schema() and data_type = 'integer'");
  expect(types).toEqual([]);
});

it('watches every table: a write to any of them moves the change mark', async () => {
  const d = await database();
  await d.open();
  const tables = await d.query(`select tablename from pg_tables where schemaname = current_schema() and tablename not in ('${CHANGE_TABLE}', 'kysely_migration', 'kysely_migration_lock') order by tablename`);
  const watched = await d.query(`select c.relname as tablename from pg_trigger t join pg_class c on c.oid = t.tgrelid where t.tgname = c.relname || '_changes' order by c.relname`);
  expect(tables.length).toBeGreaterThan(20);
  expect(watched).toEqual(tables);
});

it("follows another process's writes at once: the status list is read again", async () => {
  const d = await database();
  const store = await d.open();
  const other = await d.open();
  await store.createRepository({ name: 'photos', quotaBytes: null });
  const since = new Date('2024-01-01T00:00:00Z');
  const first = await store.listRepositoryStatuses({ denialsSince: since });
  expect(await store.listRepositoryStatuses({ denialsSince: since })).toBe(first);
  await other.addKey({ name: 'laptop', publicKey: ed25519Key() });
  await other.setGrant('laptop', 'photos', { role: 'append', writesPerDay: null, fromCidrs: null, expiresAt: null });
  const after = await store.listRepositoryStatuses({ denialsSince: since });
  expect(after).not.toBe(first);
  expect(after[0]!.grantCount).toBe(1);
});

it("announces every process's writes to the live events at once (LISTEN/NOTIFY), with the timer out of the way", async () => {
  const d = await database();
  const gatewayA = await d.open();
  const gatewayB = await d.open();
  // A poll every 10 minutes (60 s, times WATCHED_POLL_FACTOR): only the notifications can bring the events within the test's time.
  const hub = createLiveEvents({ store: gatewayA, pollMs: 60_000 });
  cleanups.push(() => hub.close());
  const events: LiveEvent[] = [];
  const { unsubscribe } = await hub.subscribe((e) => events.push(e));
  cleanups.push(unsubscribe);
  const began = Date.now();
  const id = await gatewayB.startSession({ keyId: null, keyName: 'laptop', clientAddress: '192.0.2.7', startedAt: new Date(), pid: 1, host: 'other-gateway' });
  await expect.poll(() => events.map((e) => e.type), { timeout: 5_000, interval: 20 }).toContain('session.started');
  const startedMs = Date.now() - began;
  await gatewayB.updateSession(id, { bytesIn: 1_000_000, bytesOut: 10 });
  await expect.poll(() => events.map((e) => e.type), { timeout: 5_000, interval: 20 }).toContain('session.progress');
  await gatewayB.endSession(id, { endedAt: new Date(), result: 'ok', detail: null, bytesIn: 2_000_000, bytesOut: 20 });
  await expect.poll(() => events.map((e) => e.type), { timeout: 5_000, interval: 20 }).toContain('session.ended');
  expect(Date.now() - began).toBeLessThan(5_000);
  console.log(`live events across processes: the start seen after ${startedMs} ms`);
});

it('shares failed logins between gateways: an address over the limit on any mix of them is refused by all, within moments', async () => {
  const d = await database();
  const [a, b] = [await d.open(), await d.open()];
  const errors: unknown[] = [];
  const throttleOf = (store: Store) =>
    createSharedAuthThrottle({
      local: createAuthThrottle({ limit: 3, windowMs: 60_000, now: () => Date.now() }),
      store,
      watchChanges: store.watchChanges!,
      limit: 3,
      windowMs: 60_000,
      now: () => Date.now(),
      onError: (e) => errors.push(e),
    });
  const [gatewayA, gatewayB] = [throttleOf(a), throttleOf(b)];
  cleanups.push(() => gatewayA.stop(), () => gatewayB.stop());
  gatewayA.fail('192.0.2.1');
  gatewayA.fail('192.0.2.1');
  gatewayB.fail('192.0.2.1');
  // Neither saw three itself; the notifications bring the shared count (the timer is 5 s away).
  expect(gatewayA.blocked('192.0.2.1') || gatewayB.blocked('192.0.2.1')).toBe(false);
  await expect.poll(() => gatewayA.blocked('192.0.2.1') && gatewayB.blocked('192.0.2.1'), { timeout: 2_000, interval: 20 }).toBe(true);
  expect(gatewayB.blockedCount()).toBe(1);
  // A connection that logged in after all takes its failure back, on every gateway.
  gatewayA.fail('192.0.2.2');
  gatewayB.fail('192.0.2.2');
  gatewayA.fail('192.0.2.2');
  gatewayA.forgive('192.0.2.2');
  await expect.poll(async () => (await d.query("select count(*)::int as n from login_failures where address = '192.0.2.2'"))[0]!.n, { timeout: 2_000, interval: 20 }).toBe(2);
  await gatewayA.refresh();
  await gatewayB.refresh();
  expect(gatewayA.blocked('192.0.2.2') || gatewayB.blocked('192.0.2.2')).toBe(false);
  expect(errors).toEqual([]);
});
