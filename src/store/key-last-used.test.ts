// The Keys page's "last used": each key's newest session, right with sessions of several
// repositories and results, and answered by one index seek per key (never a walk over the
// ledger) so the page stays fast with 100,000 sessions.

import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ed25519Key, openTempStore, type TempStore } from '../../test/support/temp-store.js';

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
    const db = new Database(join(t.dataDir, 'borgkeep.db'));
    const insert = db.prepare("insert into sessions (key_id, key_name, repository_id, repository_name, started_at, result) values (?, ?, (select id from repositories where name = ?), ?, ?, ?)");
    insert.run(a.id, 'a', 'one', 'one', '2025-01-02T00:00:00.000Z', 'ok');
    insert.run(a.id, 'a', 'two', 'two', '2025-01-05T00:00:00.000Z', 'denied');
    insert.run(a.id, 'a', 'one', 'one', '2025-01-03T00:00:00.000Z', 'ok');
    insert.run(b.id, 'b', 'one', 'one', '2025-01-04T00:00:00.000Z', 'open');
    db.close();
    const used = await t.store.keysLastUsed();
    expect(used.get(a.id)?.toISOString()).toBe('2025-01-05T00:00:00.000Z');
    expect(used.get(b.id)?.toISOString()).toBe('2025-01-04T00:00:00.000Z');
    expect(used.has(idle.id)).toBe(false);
  });

  it('is found by one index seek per key: fast with 100,000 sessions of one key over many repositories', async () => {
    const keys: { id: number; name: string }[] = [];
    for (let i = 0; i < 20; i += 1) keys.push((await t.store.addKey({ name: `k${i}`, publicKey: ed25519Key() })).key);
    for (let r = 0; r < 50; r += 1) await t.store.createRepository({ name: `r${r}`, quotaBytes: null });
    const db = new Database(join(t.dataDir, 'borgkeep.db'));
    const insert = db.prepare('insert into sessions (key_id, key_name, repository_id, repository_name, started_at, result) values (?, ?, ?, ?, ?, ?)');
    const start = Date.parse('2025-01-01T00:00:00.000Z');
    db.transaction(() => {
      // Most sessions belong to one busy key, so a walk over a key's sessions would show.
      for (let i = 0; i < 100_000; i += 1) {
        const key = i % 10 === 0 ? keys[Math.floor(i / 10) % 20]! : keys[0]!;
        insert.run(key.id, key.name, (i % 50) + 1, `r${i % 50}`, new Date(start + i * 1000).toISOString(), 'ok');
      }
    })();
    const plan = db
      .prepare('explain query plan select k.id, (select max(s.started_at) from sessions as s where s.key_id = k.id) from ssh_keys as k')
      .all()
      .map((row) => (row as { detail: string }).detail)
      .join('\n');
    db.close();
    expect(plan).toMatch(/SEARCH s USING COVERING INDEX sessions_key_started_idx \(key_id=\?\)/);
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
