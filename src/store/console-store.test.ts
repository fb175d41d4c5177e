// The store parts the HTTP API added: repository status and settings, ledger pages with cursors,
// users with roles and second factor, console sessions and API tokens. Real SQLite, fixed clock.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTempStore, ed25519Key, type TempStore } from '../../test/support/temp-store.js';
import { DEFAULT_EXPECTED_INTERVAL_SECONDS } from './migrations.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (e: { code?: string; message: string }) => `${e.code}: ${e.message}`,
  );

async function sessionAt(keyId: number, repositoryId: number, at: string, result: 'ok' | 'error', committed: boolean, objects: { put: number; deleted: number } = { put: 1, deleted: 0 }) {
  const id = await t.store.startSession({ keyId, keyName: 'laptop', clientAddress: '192.0.2.1', startedAt: new Date(at), pid: 1, host: 'h' });
  await t.store.updateSession(id, { repositoryId, repositoryName: 'web' });
  if (committed) {
    await t.store.recordTransaction({
      sessionId: id, borgTransactionId: 5, objectsPut: objects.put, objectsOverwritten: 0, objectsDeleted: objects.deleted, manifestWritten: true,
      state: 'committed', startedAt: new Date(at), endedAt: new Date(at),
    });
  }
  await t.store.endSession(id, { endedAt: new Date(new Date(at).getTime() + 60_000), result, detail: null, bytesIn: 1, bytesOut: 1 });
  return id;
}

describe('repository status and settings', () => {
  it('has the default expected interval, changes quota and interval, refuses nonsense', async () => {
    const r = await t.store.createRepository({ name: 'web', quotaBytes: null });
    expect(r.expectedIntervalSeconds).toBe(DEFAULT_EXPECTED_INTERVAL_SECONDS);
    const changed = await t.store.updateRepository('web', { quotaBytes: 20_000_000, expectedIntervalSeconds: 3600 });
    expect(changed).toMatchObject({ quotaBytes: 20_000_000, expectedIntervalSeconds: 3600 });
    expect((await t.store.updateRepository('web', { quotaBytes: null })).quotaBytes).toBeNull();
    expect(await failure(t.store.updateRepository('web', { expectedIntervalSeconds: 5 }))).toBe(
      'BK_ERR_INVALID_INPUT: the expected backup interval must be a whole number of seconds from 60 to 31622400, not 5',
    );
    expect(await failure(t.store.updateRepository('nope', {}))).toBe("BK_ERR_NOT_FOUND: no repository named 'nope'");
  });

  it('the last backup is the last session that committed new objects besides the manifest: a prune or a compaction alone is none', async () => {
    const repo = await t.store.createRepository({ name: 'web', quotaBytes: null });
    const key = (await t.store.addKey({ name: 'laptop', publicKey: ed25519Key() })).key;
    await sessionAt(key.id, repo.id, '2025-01-01T01:00:00.000Z', 'ok', true); // a backup
    await sessionAt(key.id, repo.id, '2025-01-02T01:00:00.000Z', 'ok', true, { put: 0, deleted: 12 }); // a prune
    await sessionAt(key.id, repo.id, '2025-01-02T01:10:00.000Z', 'ok', true, { put: 0, deleted: 0 }); // a compaction
    const [web] = await t.store.listRepositoryStatuses({ denialsSince: new Date(0) });
    expect(web!.lastBackupAt).toEqual(new Date('2025-01-01T01:01:00.000Z'));
    // Every committed write still moves the repository's last write (its size is measured again).
    expect(web!.lastWriteAt).toEqual(new Date('2025-01-02T01:11:00.000Z'));
    const [one] = await t.store.listRepositoryStatuses({ denialsSince: new Date(0), name: 'web' });
    expect(one!.lastBackupAt).toEqual(new Date('2025-01-01T01:01:00.000Z'));
  });

  it('reports the last successful write, denials since a time, the last audit and the gate', async () => {
    const repo = await t.store.createRepository({ name: 'web', quotaBytes: null });
    await t.store.createRepository({ name: 'empty', quotaBytes: null });
    const key = (await t.store.addKey({ name: 'laptop', publicKey: ed25519Key() })).key;
    await sessionAt(key.id, repo.id, '2025-01-01T01:00:00.000Z', 'ok', true);
    await sessionAt(key.id, repo.id, '2025-01-01T02:00:00.000Z', 'ok', false); // read-only: not a write
    const failed = await sessionAt(key.id, repo.id, '2025-01-01T03:00:00.000Z', 'error', true);
    for (const at of ['2024-12-30T00:00:00.000Z', '2025-01-01T03:00:01.000Z']) {
      await t.store.recordDenial({ sessionId: failed, keyId: key.id, repositoryId: repo.id, method: 'delete', reason: 'BK_DENY_DELETE', message: 'no', at: new Date(at) });
    }
    await t.store.recordEvent({ repositoryId: repo.id, kind: 'audit', throughTxn: 5, verdict: 'clean', actor: 'ann', detail: 'fine', report: { verdict: 'clean' } });

    const [empty, web] = await t.store.listRepositoryStatuses({ denialsSince: new Date('2024-12-31T00:00:00Z') });
    expect(empty).toMatchObject({ lastWriteAt: null, lastBackupAt: null, denialsSince: 0, lastAudit: null, gate: { open: true, waitingTxn: null } });
    expect(web!.lastWriteAt).toEqual(new Date('2025-01-01T01:01:00.000Z'));
    expect(web!.lastBackupAt).toEqual(new Date('2025-01-01T01:01:00.000Z'));
    expect(web!.denialsSince).toBe(1);
    expect(web!.lastAudit).toMatchObject({ verdict: 'clean', detail: 'fine' });
    expect(web!.gate.open).toBe(true);
    expect((await t.store.listRepositoryStatuses({ denialsSince: new Date(0), name: 'web' }))[0]!.denialsSince).toBe(2);
    expect(await failure(t.store.listRepositoryStatuses({ denialsSince: new Date(0), name: 'x' }))).toBe("BK_ERR_NOT_FOUND: no repository named 'x'");
    expect((await t.store.lastAudit(repo.id))?.report).toEqual({ verdict: 'clean' });
  });
});

describe('ledger pages', () => {
  it('pages sessions newest first with a cursor that neither skips nor repeats, under filters', async () => {
    const repo = await t.store.createRepository({ name: 'web', quotaBytes: null });
    const key = (await t.store.addKey({ name: 'laptop', publicKey: ed25519Key() })).key;
    const ids: number[] = [];
    // Two sessions share each start time: the id breaks the tie.
    for (let i = 0; i < 7; i++) ids.push(await sessionAt(key.id, repo.id, `2025-01-0${1 + Math.floor(i / 2)}T00:00:00.000Z`, i % 3 === 0 ? 'error' : 'ok', true));
    const seen: number[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const result = await t.store.querySessions({ repositoryId: repo.id, limit: 3, ...(cursor !== undefined && { cursor }) });
      seen.push(...result.items.map((s) => s.id));
      if (result.next === null) break;
      cursor = result.next;
    }
    expect(seen).toEqual([...ids].reverse());
    const errors = await t.store.querySessions({ result: 'error', limit: 10 });
    expect(errors.items.map((s) => s.id)).toEqual([ids[6], ids[3], ids[0]]);
    const window = await t.store.querySessions({ from: new Date('2025-01-02T00:00:00Z'), to: new Date('2025-01-03T00:00:00Z'), limit: 10 });
    expect(window.items.map((s) => s.id)).toEqual([ids[3], ids[2]]);
    expect(window.items[0]!.transactions).toHaveLength(1);
    expect(await failure(t.store.querySessions({ limit: 1, cursor: 'garbage' }))).toBe(
      "BK_ERR_INVALID_INPUT: the cursor is not one this server handed out; start again without it",
    );
    expect((await t.store.listCommittedTransactions(repo.id)).map((c) => c.sessionId)).toEqual(ids);
  });
});

describe('users', () => {
  it('keeps one admin at least, ends sessions on a new password, claims each TOTP step once', async () => {
    const ann = await t.store.addUser({ name: 'ann', role: 'admin', passwordHash: 'h1' });
    expect(ann).toMatchObject({ hasPassword: true, totpEnabled: false });
    expect(await failure(t.store.setUserRole('ann', 'viewer'))).toBe("BK_ERR_CONFLICT: 'ann' is the only admin; make another user admin first");
    expect(await failure(t.store.removeUser('ann'))).toMatch(/only admin and cannot be removed/);
    await t.store.addUser({ name: 'bob', role: 'operator' });
    expect(await failure(t.store.setUserRole('bob', 'root'))).toBe("BK_ERR_INVALID_INPUT: unknown user role 'root'; use admin, operator or viewer");
    await t.store.setUserRole('bob', 'admin');
    expect((await t.store.setUserRole('ann', 'viewer')).role).toBe('viewer');

    await t.store.createConsoleSession({ userId: ann.id, idHash: 'x'.repeat(64), address: null, expiresAt: new Date('2026-01-01Z') });
    await t.store.setPasswordHash('ann', 'h2');
    expect(await t.store.findConsoleSession('x'.repeat(64))).toBeUndefined();
    expect((await t.store.findUserCredentials('ann'))?.passwordHash).toBe('h2');

    await t.store.setTotp(ann.id, { secret: 'ABC', enabled: true });
    expect(await t.store.claimTotpStep(ann.id, 10)).toBe(true);
    expect(await t.store.claimTotpStep(ann.id, 10)).toBe(false);
    expect(await t.store.claimTotpStep(ann.id, 9)).toBe(false);
    expect(await t.store.claimTotpStep(ann.id, 11)).toBe(true);
    expect((await t.store.getUser('ann')).totpEnabled).toBe(true);

    const token = await t.store.createApiToken({ userId: ann.id, name: 'ci', tokenHash: 'y'.repeat(64), prefix: 'bk_abc', role: 'viewer', expiresAt: null });
    await t.store.removeUser('ann');
    expect(await t.store.findApiToken('y'.repeat(64))).toBeUndefined();
    expect(await failure(t.store.getApiToken(token.id))).toBe(`BK_ERR_NOT_FOUND: no API token with id ${token.id}`);
  });
});
