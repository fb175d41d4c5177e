// `borgkeep ledger` end to end: sessions written through the store API (as the guard writes
// them), read back through the built CLI.
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/database.js';
import { ed25519Key } from '../support/temp-store.js';
import { createSandbox, expectOneSentence, type CliSandbox } from './cli-harness.js';

let cli: CliSandbox;
let ids: { backup: number; denied: number; other: number; dead: number; alive: number };

beforeAll(async () => {
  cli = createSandbox();
  const store = await openStore({ dataDir: cli.dataDir });
  try {
    const photos = await store.createRepository({ name: 'photos', quotaBytes: null });
    const mail = await store.createRepository({ name: 'mail', quotaBytes: null });
    const { key } = await store.addKey({ name: 'laptop', publicKey: ed25519Key() });
    const at = (s: string) => new Date(`2025-03-01T${s}Z`);
    const start = async (time: string, pid: number, repo = photos) => {
      const id = await store.startSession({ keyId: key.id, keyName: key.name, clientAddress: '192.0.2.7', startedAt: at(time), pid, host: hostname() });
      await store.updateSession(id, { repositoryId: repo.id, repositoryName: repo.name, role: 'append', clientVersion: '1.2.8' });
      return id;
    };

    const backup = await start('01:00:00', 11);
    await store.recordTransaction({
      sessionId: backup,
      borgTransactionId: 41,
      objectsPut: 120,
      objectsOverwritten: 0,
      objectsDeleted: 2,
      manifestWritten: true,
      state: 'committed',
      startedAt: at('01:00:01'),
      endedAt: at('01:04:59'),
    });
    await store.endSession(backup, { endedAt: at('01:05:00'), result: 'ok', detail: null, bytesIn: 12_300_000, bytesOut: 1_200 });

    const denied = await start('02:00:00', 12);
    await store.recordDenial({
      sessionId: denied,
      keyId: key.id,
      repositoryId: photos.id,
      method: 'delete',
      reason: 'BK_DENY_DELETE',
      message: 'append grants may not delete objects written before this session',
      at: at('02:00:05'),
    });
    await store.endSession(denied, { endedAt: at('02:00:06'), result: 'denied', detail: 'a call was denied', bytesIn: 10, bytesOut: 20 });

    const other = await start('03:00:00', 13, mail);
    await store.endSession(other, { endedAt: at('03:00:01'), result: 'ok', detail: null, bytesIn: 0, bytesOut: 0 });

    // Still `open`: one whose process has exited, one whose process (this test) runs.
    const deadPid = spawnSync('true').pid!;
    const dead = await start('04:00:00', deadPid);
    const alive = await start('05:00:00', process.pid);
    ids = { backup, denied, other, dead, alive };
  } finally {
    await store.close();
  }
});
afterAll(() => cli.cleanup());

describe('borgkeep ledger', () => {
  it('lists sessions newest first with transactions and denials, closing sessions whose process is gone', async () => {
    const { sessions } = await cli.json(['ledger']);
    expect(sessions.map((s: { id: number }) => s.id)).toEqual([ids.alive, ids.dead, ids.other, ids.denied, ids.backup]);
    expect(sessions[0]).toMatchObject({ result: 'open', endedAt: null });
    expect(sessions[1]).toMatchObject({
      result: 'aborted',
      endedAt: expect.any(String),
      detail: "the session's process ended without closing it",
    });
    expect(sessions[4]).toEqual({
      id: ids.backup,
      keyId: 1,
      keyName: 'laptop',
      repositoryId: 1,
      repositoryName: 'photos',
      role: 'append',
      clientAddress: '192.0.2.7',
      clientVersion: '1.2.8',
      startedAt: '2025-03-01T01:00:00.000Z',
      endedAt: '2025-03-01T01:05:00.000Z',
      bytesIn: 12_300_000,
      bytesOut: 1_200,
      result: 'ok',
      kind: 'client',
      detail: null,
      pid: 11,
      host: hostname(),
      transactions: [
        {
          id: 1,
          sessionId: ids.backup,
          borgTransactionId: 41,
          objectsPut: 120,
          objectsOverwritten: 0,
          objectsDeleted: 2,
          objectsDeletedOlder: null,
          manifestWritten: true,
          state: 'committed',
          startedAt: '2025-03-01T01:00:01.000Z',
          endedAt: '2025-03-01T01:04:59.000Z',
        },
      ],
      denials: [],
      runKind: 'backup',
      archives: [],
    });
    expect(sessions[3].denials).toEqual([
      {
        id: 1,
        sessionId: ids.denied,
        keyId: 1,
        repositoryId: 1,
        method: 'delete',
        reason: 'BK_DENY_DELETE',
        message: 'append grants may not delete objects written before this session',
        at: '2025-03-01T02:00:05.000Z',
      },
    ]);
  });

  it('filters by repository, limits, and reads well in a terminal', async () => {
    const [filtered, limited, text] = await Promise.all([
      cli.json(['ledger', '--repo', 'mail']),
      cli.json(['ledger', '--limit', '2']),
      cli.ok(['ledger', '--repo', 'photos', '--limit', '4']),
    ]);
    expect(filtered.sessions.map((s: { id: number }) => s.id)).toEqual([ids.other]);
    expect(limited.sessions.map((s: { id: number }) => s.id)).toEqual([ids.alive, ids.dead]);

    const blocks = text.trimEnd().split('\n\n');
    expect(blocks).toHaveLength(4);
    expect(blocks[2]).toBe(
      [
        `#${ids.denied}  2025-03-01T02:00:00Z to 2025-03-01T02:00:06Z  DENIED  prune`,
        '    key laptop (id 1), repository photos, role append, from 192.0.2.7, borg 1.2.8',
        `    received 10 B, sent 20 B, pid 12 on ${hostname()}`,
        '    a call was denied',
        '    DENIED delete at 2025-03-01T02:00:05Z (BK_DENY_DELETE): append grants may not delete objects written before this session',
      ].join('\n'),
    );
    expect(blocks[3]).toContain('    received 12 MB, sent 1.2 KB');
    expect(blocks[3]).toContain('    transaction 41 committed at 2025-03-01T01:04:59Z: 120 put, 0 overwritten, 2 deleted, manifest written');
    expect(blocks[0]).toMatch(/^#\d+  2025-03-01T05:00:00Z to \(still open\)  OPEN  other$/m);

    expectOneSentence(await cli.run(['ledger', '--limit', '0']), "--limit must be a whole number from 1 to 10000, not '0'");
  });

  it('filters by key, result, kind of run and time range, like the console', async () => {
    const ids_ = async (args: string[]) => (await cli.json(['ledger', ...args])).sessions.map((s: { id: number }) => s.id);
    expect(await ids_(['--key', 'laptop', '--result', 'denied'])).toEqual([ids.denied]);
    expect(await ids_(['--kind', 'backup'])).toEqual([ids.backup]);
    expect(await ids_(['--kind', 'prune', '--repo', 'photos'])).toEqual([ids.denied]); // a refused prune is a prune
    expect(await ids_(['--since', '2025-03-01T01:30:00Z', '--until', '2025-03-01T03:30:00Z'])).toEqual([ids.other, ids.denied]);
    expect(await ids_(['--since', '2025-03-02'])).toEqual([]);
    expect(await cli.ok(['ledger', '--key', 'laptop', '--since', '2030-01-01'])).toBe('no sessions match these filters\n');
    const text = await cli.ok(['ledger', '--kind', 'backup']);
    expect(text.split('\n')[0]).toBe(`#${ids.backup}  2025-03-01T01:00:00Z to 2025-03-01T01:05:00Z  OK  backup`);

    expectOneSentence(await cli.run(['ledger', '--kind', 'restore']), "'restore' is not a kind of run; use backup, prune, compact, list-extract, check, key-change, init, rollback, retention, pull or other");
    expectOneSentence(await cli.run(['ledger', '--result', 'fine']), "'fine' is not a session result; use open, ok, denied, error or aborted");
    expectOneSentence(await cli.run(['ledger', '--since', 'yesterday']), "'yesterday' is not a time; use an ISO-8601 date (2030-12-31), a date-time with a zone (2030-12-31T18:00Z) or a time ago (7d, 12h, 90m)");
    expectOneSentence(await cli.run(['ledger', '--since', '2d', '--until', '3d']), 'the start of the time range (since) must be before its end (until)');
    expectOneSentence(await cli.run(['ledger', '--key', 'nobody']), "no key named 'nobody'", 1);
  });
});
