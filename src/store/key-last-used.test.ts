// The Keys page's "last used": each key's newest session, right with sessions of several
// repositories and results, and answered by one index seek per key (never a walk over the
// ledger) so the page stays fast with 100,000 sessions.

import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ed25519Key, openTempStore, TEST_DATABASE, type TempStore } from '../../test/support/temp-store.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

describe("a key's last use", () => {
  it('is the newest session of the key, on any repository and with any result; a key never used has none', async () => {
    const a = (await t.store.addKey({ name: 'a', publicKey: ed25519Key() })).key;
    const b = (await t.store.addKey({ name: 'b', publicKey: ed25519Key() })).key;
    const idle = (await t.store.addKey({ name: 'idle', publicKey: ed25519Key() })).key;
    await t.store.createRepository({ name: 'one', quotaBytes: null });
    await t.store.createRepository({ name: 'two', quotaBytes: null });
    const insert = (...row: unknown[]) =>
      t.query('insert into sessions (key_id, key_name, repository_id, repository_name, started_at, result) values (?, ?, (select id from repositories where name = ?), ?, ?, ?)', row);
    await insert(a.id, 'a', 'one', 'one', '2025-01-02T00:00:00.000Z', 'ok');
    await insert(a.id, 'a', 'two', 'two', '2025-01-05T00:00:00.000Z', 'denied');
    await insert(a.id, 'a', 'one', 'one', '2025-01-03T00:00:00.000Z', 'ok');
    await insert(b.id, 'b', 'one', 'one', '2025-01-04T00:00:00.000Z', 'open');
    const used = await t.store.keysLastUsed();
    expect(used.get(a.id)?.toISOString()).toBe('2025-01-05T00:00:00.000Z');
    expect(used.get(b.id)?.toISOString()).toBe('2025-01-04T00:00:00.000Z');
    expect(used.has(idle.id)).toBe(false);
  });

  it('is found by one index seek per key: fast with 100,000 sessions of one key over many repositories', async () => {
    const keys: { id: number; name: string }[] = [];
    for (let i = 0; i < 20; i += 1) keys.push((await t.store.addKey({ name: `k${i}`, publicKey: ed25519Key() })).key);
    for (let r = 0; r < 50; r += 1) await t.store.createRepository({ name: `r${r}`, quotaBytes: null });
    const start = Date.parse('2025-01-01T00:00:00.000Z');
    const lastUse = 'select k.id, (select max(s.started_at) from sessions as s where s.key_id = k.id) from ssh_keys as k';
    let plan: string;
    if (TEST_DATABASE === 'sqlite') {
      const db = new Database(join(t.dataDir, 'borgkeep.db'));
      const insert = db.prepare('insert into sessions (key_id, key_name, repository_id, repository_name, started_at, result) values (?, ?, ?, ?, ?, ?)');
      db.transaction(() => {
        // Most sessions belong to one busy key, so a walk over a key's sessions would show.
        for (let i = 0; i < 100_000; i += 1) {
          const key = i % 10 === 0 ? keys[Math.floor(i / 10) % 20]! : keys[0]!;
          insert.run(key.id, key.name, (i % 50) + 1, `r${i % 50}`, new Date(start + i * 1000).toISOString(), 'ok');
        }
      })();
      plan = db
        .prepare(`explain query plan ${lastUse}`)
        .all()
        .map((row) => (row as { detail: string }).detail)
        .join('\n');
      db.close();
      expect(plan).toMatch(/SEARCH s USING COVERING INDEX sessions_key_started_idx \(key_id=\?\)/);
    } else {
      // The same rows in one statement (without the per-row status triggers: 100,000 updates of 50
      // rows in one transaction would take minutes; statuses are not what this tests); then the
      // planner's statistics, as autovacuum would gather them.
      const ids = keys.map((k) => k.id);
      await t.query('alter table sessions disable trigger user');
      await t.query(
        `insert into sessions (key_id, key_name, repository_id, repository_name, started_at, result)
         select k, 'k', (i % 50) + 1, 'r' || (i % 50), to_char(timestamp '2025-01-01' + i * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'ok'
         from generate_series(0, 99999) as i, lateral (select case when i % 10 = 0 then (?::bigint[])[((i / 10) % 20) + 1] else ? end as k) as pick`,
        [ids, ids[0]],
      );
      await t.query('alter table sessions enable trigger user');
      await t.query('analyze sessions');
      plan = (await t.query(`explain ${lastUse}`)).map((row) => String(row['QUERY PLAN'])).join('\n');
      expect(plan).toMatch(/Index Only Scan (Backward )?using sessions_key_started_idx on sessions s/);
    }
    const began = performance.now();
    const used = await t.store.keysLastUsed();
    const ms = performance.now() - began;
    expect(used.get(keys[0]!.id)?.toISOString()).toBe(new Date(start + 99_999 * 1000).toISOString());
    expect(used.get(keys[19]!.id)?.toISOString()).toBe(new Date(start + 99_990 * 1000).toISOString());
    expect(used.size).toBe(20);
    console.log(`keysLastUsed over 100,000 sessions and 20 keys: ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(50);
  }, 60_000);
});
