import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTempStore, ed25519Key, type TempStore } from '../../test/support/temp-store.js';

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
    expect(await t.store.listRepositoryRecords()).toEqual((await t.store.listRepositories()).map((r) => r.repository));
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
    expect(first[0]).toMatchObject({ lastWriteAt: null, lastAudit: null, gate: { open: true, waitingTxn: null } });
    expect(await t.store.listRepositoryStatuses({ denialsSince: since })).toBe(first);

    // Another process (a borg-serve session, the CLI) writes through its own connection.
    const other = await t.openAnother();
    try {
      const id = await other.startSession({ keyId: null, keyName: null, clientAddress: null, startedAt: new Date('2025-01-01T01:00:00Z'), pid: 1, host: 'h' });
      await other.updateSession(id, { repositoryId: repo.id, repositoryName: 'photos' });
      const at = new Date('2025-01-01T01:05:00Z');
      // A prune's transaction: it deleted objects of earlier sessions, so it waits for review until the audit covers it.
      await other.recordTransaction({ sessionId: id, borgTransactionId: 7, objectsPut: 1, objectsOverwritten: 0, objectsDeleted: 2, objectsDeletedOlder: 2, manifestWritten: true, state: 'committed', startedAt: at, endedAt: at });
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
    expect(afterOwn!.gate.why).toMatch(/^transaction 7 removed or overwrote data that nobody has verified yet/);
    // One repository's status (its page) says the same.
    expect((await t.store.listRepositoryStatuses({ denialsSince: since, name: 'photos' }))[0]).toEqual(afterOwn);
  });

  it("one repository's status reuses the list's status columns while its status_version has not moved, and reads them afresh once it has", async () => {
    await t.store.createRepository({ name: 'photos', quotaBytes: 20_000_000 });
    await t.store.createRepository({ name: 'mail', quotaBytes: null });
    const since = new Date('2024-12-31T00:00:00Z');
    const one = async (name: string) => (await t.store.listRepositoryStatuses({ denialsSince: since, name }))[0]!;
    // Never listed: read afresh.
    expect((await one('mail')).repository.quotaBytes).toBeNull();
    await t.store.listRepositoryStatuses({ denialsSince: since });
    // A change behind the store's back that does not move status_version (no write of borgkeep's
    // own does that: it shows which copy is read): the list's copy serves.
    await t.query('update repositories set quota_bytes = ? where name = ?', [30_000_000, 'photos']);
    expect((await one('photos')).repository.quotaBytes).toBe(20_000_000);
    // Once the version moves (as every write of the status's inputs does), it is read afresh,
    // without the list having looked again; the list's order and contents stay the list's own.
    await t.query('update repositories set status_version = status_version + 1 where name = ?', ['photos']);
    expect((await one('photos')).repository.quotaBytes).toBe(30_000_000);
    expect((await t.store.listRepositoryStatuses({ denialsSince: since })).map((s) => [s.repository.name, s.repository.quotaBytes])).toEqual([
      ['mail', null],
      ['photos', 30_000_000],
    ]);
    // A repository created after the last listing, and an unknown name.
    await t.store.createRepository({ name: 'docs', quotaBytes: null });
    expect((await one('docs')).repository.name).toBe('docs');
    await expect(one('nope')).rejects.toThrow("no repository named 'nope'");
  });

  it('keeps the whole status list equal to reading each repository afresh through 200 random writes from two processes, and keeps the status of every repository a write did not touch', async () => {
    // A seeded walk over every kind of write the status depends on (and one it does not: a
    // running session's byte counters), half of them through another connection as sshd's
    // forced command writes. After each, the incrementally kept list must equal each
    // repository's status read whole, and the repositories the write did not touch must keep
    // their status objects (the API reuses what it made of them).
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
    const other = await t.openAnother();
    try {
      const names = ['a', 'b', 'c', 'd'];
      for (const name of names) await t.store.createRepository({ name, quotaBytes: null });
      const keys: string[] = [];
      for (let k = 0; k < 3; k++) keys.push((await t.store.addKey({ name: `k${k}`, publicKey: ed25519Key(`k${k}@x`) })).key.name);
      const open: Array<{ id: number; repository: string }> = [];
      const ended: Array<{ id: number; repository: string }> = [];
      const since = () => new Date(t.clock.now().getTime() - 86_400_000);
      const repoId = async (name: string) => (await t.store.getRepository(name)).id;
      let created = 0;
      let before = await t.store.listRepositoryStatuses({ denialsSince: since() });
      for (let step = 0; step < 200; step++) {
        const s = rnd() < 0.5 ? t.store : other;
        const name = pick(names);
        let touched: string | null = name;
        const op = Math.floor(rnd() * 13);
        if (op === 0) {
          const fresh = `n${created++}`;
          await s.createRepository({ name: fresh, quotaBytes: null });
          names.push(fresh);
          touched = fresh;
        } else if (op === 1 && names.length > 2 && !open.some((o) => o.repository === name)) {
          await s.deleteRepository(name);
          names.splice(names.indexOf(name), 1);
        } else if (op === 2) {
          await s.updateRepository(name, rnd() < 0.5 ? { quotaBytes: 10_000_000 + step } : { expectedIntervalSeconds: 3600 + step });
        } else if (op === 3) {
          await s.setGrant(pick(keys), name, { role: pick(['read', 'append', 'prune', 'full'] as const), writesPerDay: null, fromCidrs: null, expiresAt: null });
        } else if (op === 4) {
          const key = pick(keys);
          if ((await s.listGrants({ repositoryId: await repoId(name) })).some((g) => g.keyName === key)) await s.removeGrant(key, name);
        } else if (op === 5 || op === 6) {
          const id = await s.startSession({ keyId: null, keyName: null, clientAddress: null, startedAt: t.clock.now(), pid: process.pid, host: 'h' });
          if (op === 6) touched = null;
          else {
            await s.updateSession(id, { repositoryId: await repoId(name), repositoryName: name });
            open.push({ id, repository: name });
          }
        } else if (op === 7 && open.length > 0) {
          const session = pick(open);
          touched = null; // byte counters only: nobody's status changes
          await s.updateSession(session.id, { bytesIn: step, bytesOut: step });
        } else if (op === 8 && open.length > 0) {
          const session = open.splice(Math.floor(rnd() * open.length), 1)[0]!;
          touched = session.repository;
          if (rnd() < 0.7) {
            const at = t.clock.now();
            await s.recordTransaction({ sessionId: session.id, borgTransactionId: step, objectsPut: 1, objectsOverwritten: 0, objectsDeleted: 0, manifestWritten: true, state: rnd() < 0.8 ? 'committed' : 'rolled_back', startedAt: at, endedAt: at });
          }
          await s.endSession(session.id, { endedAt: t.clock.now(), result: pick(['ok', 'ok', 'error', 'aborted'] as const), detail: null, bytesIn: 1, bytesOut: 1 });
          ended.push(session);
        } else if (op === 9) {
          await s.recordDenial({ sessionId: null, keyId: null, repositoryId: await repoId(name), method: 'delete', reason: 'BK_DENY_DELETE', message: 'no', at: t.clock.now() });
        } else if (op === 10) {
          const kind = pick(['audit', 'approve', 'rollback'] as const);
          await s.recordEvent({ repositoryId: await repoId(name), kind, throughTxn: step, verdict: kind === 'audit' ? pick(['clean', 'suspicious'] as const) : null, actor: 'test', detail: kind });
        } else if (op === 11) {
          t.clock.advance(Math.floor(rnd() * 6) * 3_600_000); // denials leave the day's window
          touched = '*';
        } else touched = null;
        if (names.length === 0) break;
        const list = await t.store.listRepositoryStatuses({ denialsSince: since() });
        const whole = await Promise.all([...names].sort().map(async (n) => (await t.store.listRepositoryStatuses({ denialsSince: since(), name: n }))[0]!));
        expect(list, `after step ${step} (op ${op})`).toEqual(whole);
        if (touched !== '*') {
          for (const status of list) {
            const was = before.find((b) => b.repository.id === status.repository.id);
            if (was && status.repository.name !== touched) expect(status, `${status.repository.name} after step ${step} (op ${op} on ${touched})`).toBe(was);
          }
        }
        before = list;
      }
      expect(ended.length).toBeGreaterThan(5);
    } finally {
      await other.close();
    }
  });
});
