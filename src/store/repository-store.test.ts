import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTempStore, ed25519Key, type TempStore } from '../../test/support/temp-store.js';
import { openStore } from './database.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

const code = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (e: { code?: string; message: string }) => `${e.code}: ${e.message}`,
  );

describe('repository store', () => {
  it('creates a repository with a random 16-hex directory name and the clock time', async () => {
    const a = await t.store.createRepository({ name: 'photos', quotaBytes: 10_000_000 });
    const b = await t.store.createRepository({ name: 'mail', quotaBytes: null });
    expect(a).toMatchObject({ name: 'photos', quotaBytes: 10_000_000, createdAt: new Date('2025-01-01T00:00:00Z') });
    expect(a.dirName).toMatch(/^[0-9a-f]{16}$/);
    expect(b.dirName).not.toBe(a.dirName);
    expect(await t.store.findRepository('photos')).toEqual(a);
    expect(await t.store.findRepository('nope')).toBeUndefined();
  });

  it('refuses duplicates, bad names and quotas under 10M, and writes nothing', async () => {
    await t.store.createRepository({ name: 'photos', quotaBytes: null });
    expect(await code(t.store.createRepository({ name: 'photos', quotaBytes: null }))).toBe(
      "BK_ERR_CONFLICT: a repository named 'photos' already exists",
    );
    expect(await code(t.store.createRepository({ name: '-x', quotaBytes: null }))).toBe(
      "BK_ERR_INVALID_INPUT: a repository name cannot start with '.' or '-' ('-x')",
    );
    expect(await code(t.store.createRepository({ name: 'a/b', quotaBytes: null }))).toBe(
      "BK_ERR_INVALID_INPUT: the repository name 'a/b' may only contain letters, digits, '.', '_' and '-'",
    );
    expect(await code(t.store.createRepository({ name: 'x'.repeat(65), quotaBytes: null }))).toMatch(
      /longer than 64 characters$/,
    );
    expect(await code(t.store.createRepository({ name: 'small', quotaBytes: 9_999_999 }))).toBe(
      'BK_ERR_INVALID_INPUT: the quota must be at least 10M (10000000 bytes), since borg refuses less',
    );
    expect((await t.store.listRepositories()).map((r) => r.repository.name)).toEqual(['photos']);
  });

  it('lists repositories by name with their grant count and last session', async () => {
    await t.store.createRepository({ name: 'b-repo', quotaBytes: null });
    const a = await t.store.createRepository({ name: 'a-repo', quotaBytes: null });
    await t.store.addKey({ name: 'k1', publicKey: ed25519Key() });
    await t.store.addKey({ name: 'k2', publicKey: ed25519Key() });
    const terms = { role: 'read', writesPerDay: null, fromCidrs: null, expiresAt: null } as const;
    await t.store.setGrant('k1', 'a-repo', terms);
    await t.store.setGrant('k2', 'a-repo', terms);
    const sessionId = await t.store.startSession({
      keyId: 1,
      keyName: 'k1',
      clientAddress: null,
      startedAt: new Date('2025-01-02T03:04:05Z'),
      pid: 1,
      host: 'h',
    });
    await t.store.updateSession(sessionId, { repositoryId: a.id, repositoryName: 'a-repo' });

    const list = await t.store.listRepositories();
    expect(list.map((r) => [r.repository.name, r.grantCount, r.lastSessionAt?.toISOString() ?? null])).toEqual([
      ['a-repo', 2, '2025-01-02T03:04:05.000Z'],
      ['b-repo', 0, null],
    ]);
    expect((await t.store.getRepositorySummary('a-repo')).grantCount).toBe(2);
    expect(await code(t.store.getRepositorySummary('zzz'))).toBe("BK_ERR_NOT_FOUND: no repository named 'zzz'");
  });

  it('deletes the registration and its grants, handing the directory to moveFiles', async () => {
    const repo = await t.store.createRepository({ name: 'photos', quotaBytes: null });
    await t.store.addKey({
      name: 'k1',
      publicKey: ed25519Key(),
      grant: { repositoryName: 'photos', role: 'append', writesPerDay: null, fromCidrs: null, expiresAt: null },
    });
    let handed: string | undefined;
    const result = await t.store.deleteRepository('photos', async (r) => {
      handed = r.dirName;
      return { to: '/trash/x', undo: async () => undefined };
    });
    expect(handed).toBe(repo.dirName);
    expect(result).toMatchObject({ grantsRemoved: 1, movedTo: '/trash/x' });
    expect(await t.store.findRepository('photos')).toBeUndefined();
    expect(await t.store.listGrants()).toEqual([]);
    expect(await code(t.store.deleteRepository('photos'))).toBe("BK_ERR_NOT_FOUND: no repository named 'photos'");
  });

  it('keeps everything when moveFiles fails', async () => {
    await t.store.createRepository({ name: 'photos', quotaBytes: null });
    await t.store.addKey({
      name: 'k1',
      publicKey: ed25519Key(),
      grant: { repositoryName: 'photos', role: 'append', writesPerDay: null, fromCidrs: null, expiresAt: null },
    });
    await expect(
      t.store.deleteRepository('photos', async () => {
        throw new Error('disk on fire');
      }),
    ).rejects.toThrow('disk on fire');
    expect(await t.store.findRepository('photos')).toBeDefined();
    expect(await t.store.listGrants()).toHaveLength(1);
  });

  it('refuses to delete a repository while a session is open on it', async () => {
    const repo = await t.store.createRepository({ name: 'photos', quotaBytes: null });
    const id = await t.store.startSession({ keyId: null, keyName: null, clientAddress: null, startedAt: t.clock.now(), pid: 4242, host: 'box' });
    await t.store.updateSession(id, { repositoryId: repo.id, repositoryName: repo.name });
    let moved = false;
    expect(
      await code(
        t.store.deleteRepository('photos', async () => {
          moved = true;
          return null;
        }),
      ),
    ).toBe("BK_ERR_CONFLICT: repository 'photos' is in use by 1 open session (pid 4242 on box); try again when it has ended");
    expect(moved).toBe(false);
    await t.store.endSession(id, { endedAt: t.clock.now(), result: 'ok', detail: null, bytesIn: 0, bytesOut: 0 });
    await t.store.deleteRepository('photos');
    // The ledger keeps the session, with the repository's name but no id.
    const [session] = await t.store.listSessions();
    expect(session).toMatchObject({ repositoryId: null, repositoryName: 'photos' });
  });

  it("lists statuses that follow every write, this process's and another process's (the list is reused only while nothing changed)", async () => {
    const repo = await t.store.createRepository({ name: 'photos', quotaBytes: null });
    const since = new Date('2024-12-31T00:00:00Z');
    const first = await t.store.listRepositoryStatuses({ denialsSince: since });
    expect(first[0]).toMatchObject({ lastWriteAt: null, lastAudit: null, gate: { open: false } });
    expect(await t.store.listRepositoryStatuses({ denialsSince: since })).toBe(first);

    // Another process (a borg-serve session, the CLI) writes through its own connection.
    const other = await openStore({ dataDir: t.dataDir, now: t.clock.now });
    try {
      const id = await other.startSession({ keyId: null, keyName: null, clientAddress: null, startedAt: new Date('2025-01-01T01:00:00Z'), pid: 1, host: 'h' });
      await other.updateSession(id, { repositoryId: repo.id, repositoryName: 'photos' });
      const at = new Date('2025-01-01T01:05:00Z');
      await other.recordTransaction({ sessionId: id, borgTransactionId: 7, objectsPut: 1, objectsOverwritten: 0, objectsDeleted: 0, manifestWritten: true, state: 'committed', startedAt: at, endedAt: at });
      await other.endSession(id, { endedAt: at, result: 'ok', detail: null, bytesIn: 1, bytesOut: 1 });
      await other.recordEvent({ repositoryId: repo.id, kind: 'audit', throughTxn: 7, verdict: 'clean', actor: 'cli', detail: 'clean' });
    } finally {
      await other.close();
    }
    const [afterOther] = await t.store.listRepositoryStatuses({ denialsSince: since });
    expect(afterOther).toMatchObject({ lastWriteAt: new Date('2025-01-01T01:05:00Z'), lastAudit: { verdict: 'clean' }, gate: { open: true } });

    // This process's own writes, and the newest events ahead of the ones already seen.
    await t.store.recordEvent({ repositoryId: repo.id, kind: 'rollback', throughTxn: 5, verdict: null, actor: 'admin', detail: 'to 5' });
    await t.store.updateRepository('photos', { quotaBytes: 20_000_000 });
    const [afterOwn] = await t.store.listRepositoryStatuses({ denialsSince: since });
    expect(afterOwn).toMatchObject({ repository: { quotaBytes: 20_000_000 }, gate: { open: false } });
    expect(afterOwn!.gate.why).toMatch(/rolled back/);
    // One repository's status (its page) says the same.
    expect((await t.store.listRepositoryStatuses({ denialsSince: since, name: 'photos' }))[0]).toEqual(afterOwn);
  });
});
