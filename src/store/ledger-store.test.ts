import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTempStore, ed25519Key, type TempStore } from '../../test/support/temp-store.js';
import type { NewTransaction } from './types.js';

let t: TempStore;
let keyId: number;
let otherKeyId: number;
let repoId: number;

beforeEach(async () => {
  t = await openTempStore();
  repoId = (await t.store.createRepository({ name: 'photos', quotaBytes: null })).id;
  await t.store.createRepository({ name: 'mail', quotaBytes: null });
  keyId = (await t.store.addKey({ name: 'laptop', publicKey: ed25519Key() })).key.id;
  otherKeyId = (await t.store.addKey({ name: 'desk', publicKey: ed25519Key() })).key.id;
});
afterEach(() => t.cleanup());

async function session(opts: { key?: number; repo?: number | null; at: string; pid?: number; host?: string }) {
  const id = await t.store.startSession({
    keyId: opts.key ?? keyId,
    keyName: 'laptop',
    clientAddress: '192.0.2.7',
    startedAt: new Date(opts.at),
    pid: opts.pid ?? 100,
    host: opts.host ?? 'box',
  });
  if (opts.repo !== null) await t.store.updateSession(id, { repositoryId: opts.repo ?? repoId, repositoryName: 'photos' });
  return id;
}

function txn(sessionId: number, state: NewTransaction['state'], borgTransactionId: number | null = 7): NewTransaction {
  return {
    sessionId,
    borgTransactionId,
    objectsPut: 3,
    objectsOverwritten: 0,
    objectsDeleted: 1,
    objectsDeletedOlder: 1,
    manifestWritten: true,
    state,
    startedAt: new Date('2025-01-01T00:00:00Z'),
    endedAt: new Date('2025-01-01T00:00:01Z'),
  };
}

describe('ledger store', () => {
  it('records a whole session with its transactions and denials', async () => {
    const id = await session({ at: '2025-01-01T10:00:00Z' });
    await t.store.updateSession(id, { role: 'append', clientVersion: '1.2.8', bytesIn: 5 });
    await t.store.updateSession(id, {});
    const txId = await t.store.recordTransaction(txn(id, 'committed', 12));
    await t.store.recordTransaction(txn(id, 'rolled_back', null));
    const denialId = await t.store.recordDenial({
      sessionId: id,
      keyId,
      repositoryId: repoId,
      method: 'delete',
      reason: 'BK_DENY_DELETE',
      message: 'append keys may not delete older objects',
      at: new Date('2025-01-01T10:00:02Z'),
    });
    await t.store.endSession(id, {
      endedAt: new Date('2025-01-01T10:05:00Z'),
      result: 'denied',
      detail: 'a call was denied',
      bytesIn: 1_000_000_000_000,
      bytesOut: 42,
    });

    const [entry] = await t.store.listSessions();
    expect(entry).toMatchObject({
      id,
      keyId,
      keyName: 'laptop',
      repositoryId: repoId,
      repositoryName: 'photos',
      role: 'append',
      clientAddress: '192.0.2.7',
      clientVersion: '1.2.8',
      startedAt: new Date('2025-01-01T10:00:00Z'),
      endedAt: new Date('2025-01-01T10:05:00Z'),
      bytesIn: 1_000_000_000_000,
      bytesOut: 42,
      result: 'denied',
      detail: 'a call was denied',
      pid: 100,
      host: 'box',
    });
    expect(entry!.transactions).toEqual([
      { id: txId, ...txn(id, 'committed', 12) },
      { id: txId + 1, ...txn(id, 'rolled_back', null) },
    ]);
    expect(entry!.denials).toEqual([
      {
        id: denialId,
        sessionId: id,
        keyId,
        repositoryId: repoId,
        method: 'delete',
        reason: 'BK_DENY_DELETE',
        message: 'append keys may not delete older objects',
        at: new Date('2025-01-01T10:00:02Z'),
      },
    ]);
  });

  it('lists newest first, filters by repository and honours the limit', async () => {
    const mailId = (await t.store.findRepository('mail'))!.id;
    const a = await session({ at: '2025-01-01T01:00:00Z' });
    const b = await session({ at: '2025-01-01T03:00:00Z', repo: mailId });
    const c = await session({ at: '2025-01-01T02:00:00Z' });
    expect((await t.store.listSessions()).map((s) => s.id)).toEqual([b, c, a]);
    expect((await t.store.listSessions({ repositoryId: repoId })).map((s) => s.id)).toEqual([c, a]);
    expect((await t.store.listSessions({ limit: 1 })).map((s) => s.id)).toEqual([b]);
  });

  it('a backup claim counts committed backups (new objects besides the manifest) in the window and running claims, and nothing else', async () => {
    const since = new Date('2025-01-02T00:00:00Z');
    const at = new Date('2025-01-02T12:00:00Z');
    const grantId = (await t.store.setGrant('laptop', 'photos', { role: 'append', writesPerDay: 2, fromCidrs: null, expiresAt: null })).grant.id;
    const claim = (sessionId: number, limit = 2) => t.store.claimBackup({ sessionId, grantId, keyId, repositoryId: repoId, limit, since, at });
    const ended = (id: number) => t.store.endSession(id, { endedAt: at, result: 'ok', detail: null, bytesIn: 0, bytesOut: 0 });
    const committed = (sessionId: number, over: Partial<NewTransaction> = {}) =>
      t.store.recordTransaction({ ...txn(sessionId, 'committed'), startedAt: new Date('2025-01-02T01:00:00Z'), endedAt: new Date('2025-01-02T01:00:01Z'), ...over });

    // Not backups: a prune (deletes and the manifest only), a compaction, a rolled-back put, one
    // before the window, another key's, another repository's.
    const prune = await session({ at: '2025-01-02T01:00:00Z' });
    await committed(prune, { objectsPut: 0, objectsDeleted: 40 });
    await ended(prune);
    await committed(await session({ at: '2025-01-02T01:00:00Z' }), { objectsPut: 0, objectsDeleted: 0, manifestWritten: false });
    await t.store.recordTransaction(txn(await session({ at: '2025-01-02T01:00:00Z' }), 'rolled_back'));
    await committed(await session({ at: '2025-01-01T23:00:00Z' }), { endedAt: new Date('2025-01-01T23:59:59Z') });
    await committed(await session({ at: '2025-01-02T01:00:00Z', key: otherKeyId }));
    await committed(await session({ at: '2025-01-02T01:00:00Z', repo: (await t.store.findRepository('mail'))!.id }));

    // A committed backup in the window counts; so does a running session that holds a claim.
    await committed(await session({ at: '2025-01-02T02:00:00Z' }));
    const running = await session({ at: '2025-01-02T03:00:00Z' });
    expect(await claim(running)).toEqual({ claimed: true, backups: 1 });
    // Claiming twice in one session is one claim.
    expect(await claim(running)).toEqual({ claimed: true, backups: 1 });
    const third = await session({ at: '2025-01-02T04:00:00Z' });
    expect(await claim(third)).toEqual({ claimed: false, backups: 2 });

    // The running session ends without committing: its claim is released.
    await t.store.recordTransaction(txn(running, 'rolled_back'));
    await ended(running);
    expect(await claim(third)).toEqual({ claimed: true, backups: 1 });
    expect(await claim(await session({ at: '2025-01-02T05:00:00Z' }), 3)).toEqual({ claimed: true, backups: 2 });
  });

  it('concurrent claims on one grant: exactly the limit is granted', async () => {
    const grantId = (await t.store.setGrant('laptop', 'photos', { role: 'append', writesPerDay: 1, fromCidrs: null, expiresAt: null })).grant.id;
    const sessions = await Promise.all(Array.from({ length: 8 }, (_, i) => session({ at: `2025-01-02T0${i}:00:00Z` })));
    const at = new Date('2025-01-02T12:00:00Z');
    const results = await Promise.all(sessions.map((sessionId) => t.store.claimBackup({ sessionId, grantId, keyId, repositoryId: repoId, limit: 1, since: new Date(0), at })));
    expect(results.filter((r) => r.claimed)).toHaveLength(1);
  });

  it("a key's sessions at once, started by two processes together: each sees the others, so exactly the limit get in", async () => {
    // Sessions of two gateways (or a gateway and sshd's forced command) on one database.
    const other = await t.openAnother();
    try {
      const one = await session({ at: '2025-01-02T00:00:00Z' }); // already running
      const done = await session({ at: '2025-01-02T00:00:00Z' }); // ended: does not count
      await t.store.endSession(done, { endedAt: new Date('2025-01-02T00:01:00Z'), result: 'ok', detail: null, bytesIn: 1, bytesOut: 1 });
      await session({ key: otherKeyId, at: '2025-01-02T00:00:00Z' }); // another key's: does not count
      const start = (s: typeof t.store, i: number) =>
        s.startSessionCounted!({ keyId, keyName: 'laptop', clientAddress: null, startedAt: new Date('2025-01-02T01:00:00Z'), pid: 1000 + i, host: 'box' });
      const started = await Promise.all(Array.from({ length: 8 }, (_, i) => start(i % 2 ? other : t.store, i)));
      expect(new Set(started.map((r) => r.id)).size).toBe(8);
      expect(started.map((r) => r.openBefore).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(started.filter((r) => r.openBefore < 3)).toHaveLength(2); // with `one`, three at once
      expect(one).toBeGreaterThan(0);
    } finally {
      await other.close();
    }
  });

  it('closes open sessions whose process is gone as aborted, and leaves the rest', async () => {
    const dead = await session({ at: '2025-01-01T01:00:00Z', pid: 111 });
    const alive = await session({ at: '2025-01-01T01:00:00Z', pid: 222 });
    const elsewhere = await session({ at: '2025-01-01T01:00:00Z', pid: 111, host: 'other' });
    const ended = await session({ at: '2025-01-01T01:00:00Z', pid: 111 });
    await t.store.endSession(ended, { endedAt: new Date('2025-01-01T02:00:00Z'), result: 'ok', detail: null, bytesIn: 1, bytesOut: 2 });
    t.clock.set('2025-01-01T05:00:00Z');

    const asked: string[] = [];
    const closed = await t.store.closeStaleSessions((pid, host) => {
      asked.push(`${pid}@${host}`);
      return !(pid === 111 && host === 'box');
    });
    expect(closed).toBe(1);
    expect(asked.sort()).toEqual(['111@box', '111@other', '222@box']);

    const byId = new Map((await t.store.listSessions()).map((s) => [s.id, s]));
    expect(byId.get(dead)).toMatchObject({
      result: 'aborted',
      endedAt: new Date('2025-01-01T05:00:00Z'),
      detail: "the session's process ended without closing it",
    });
    expect(byId.get(alive)?.result).toBe('open');
    expect(byId.get(elsewhere)?.result).toBe('open');
    expect(byId.get(ended)).toMatchObject({ result: 'ok', endedAt: new Date('2025-01-01T02:00:00Z'), detail: null });
    expect(await t.store.closeStaleSessions(() => false)).toBe(2);
  });
});
