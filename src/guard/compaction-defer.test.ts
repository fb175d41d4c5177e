// The guard's side of the compaction gate when the gate's own look fails: a history it cannot
// read, or manifest versions it cannot keep, is not verified, so the compacting commit is
// deferred (sent on as compact=False), never forwarded as it came and never left unanswered.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { afterEach, expect, test } from 'vitest';

import { createFrameSplitter } from '../rpc/frame-splitter.js';
import { encodeResultReply, parseRequest, type RpcRequest } from '../rpc/messages.js';
import { MsgMap, SERVER_LIMITS, encode } from '../rpc/msgpack.js';
import type { RepositoryEvent } from '../store/history-store.js';
import { NO_ARCHIVE_RULES, type GuardStore } from '../store/types.js';
import type { BorgChild } from './borg-child.js';
import type { checkCompaction } from './compaction-check.js';
import { runGuardSession } from './guard.js';

const created = new Date('2026-01-01T00:00:00Z');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const request = (msgid: number, method: string, args: Array<[string, unknown]>): Buffer =>
  encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method)], ['a', MsgMap.of(args.map(([k, v]) => [k, v as never]))]]));

async function compactWith(look: typeof checkCompaction) {
  const reposDir = mkdtempSync(join(tmpdir(), 'defer-'));
  dirs.push(reposDir);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(reposDir, 'r1'));
  const events: Array<Omit<RepositoryEvent, 'id' | 'at'>> = [];
  const grant = { id: 1, keyId: 7, repositoryId: 3, role: 'full' as const, writesPerDay: null, fromCidrs: null, expiresAt: null, createdAt: created, ...NO_ARCHIVE_RULES };
  const store = {
    findKey: async () => ({ id: 7, name: 'admin', type: 'ssh-ed25519', blob: '', fingerprint: 'SHA256:x', comment: null, bits: 256, createdAt: created, revokedAt: null }),
    findGrant: async () => ({ grant, repository: { id: 3, name: 'repo', dirName: 'r1', quotaBytes: null, expectedIntervalSeconds: 86400, createdAt: created } }),
    claimBackup: async () => ({ claimed: true, backups: 0 }),
    grantStanding: async () => ({ keyRevokedAt: null, grant }),
    startSession: async () => 1,
    updateSession: async () => undefined,
    endSession: async () => undefined,
    recordTransaction: async () => 1,
    recordDenial: async () => 1,
    listEvents: async () => [],
    recordEvent: async (e: Omit<RepositoryEvent, 'id' | 'at'>) => {
      events.push(e);
      return { ...e, id: 1, at: created };
    },
    listCommittedTransactions: async () => [],
  } as unknown as GuardStore;
  // borg serve as far as this test needs it: every request answered with None, and remembered.
  const received: RpcRequest[] = [];
  const spawnBorg = (): BorgChild => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let resolveExit: (v: number) => void = () => undefined;
    const exited = new Promise<number>((r) => (resolveExit = r));
    const splitter = createFrameSplitter(SERVER_LIMITS);
    stdin.on('data', (chunk: Buffer) => {
      for (const frame of splitter.push(chunk)) {
        const req = parseRequest(frame);
        received.push(req);
        stdout.write(encodeResultReply(req.format, req.msgid, req.method === 'negotiate' ? MsgMap.of([['server_version', [1, 2, 4, -1]]]) : null));
      }
    });
    stdin.on('finish', () => {
      stdout.end();
      stderr.end();
      resolveExit(0);
    });
    return { stdin, stdout, stderr, exited, kill: () => resolveExit(0) };
  };
  const replies: Buffer[] = [];
  let errText = '';
  const input = Readable.from([
    request(1, 'negotiate', [['client_data', MsgMap.of([['client_version', [1, 2, 4]]])]]),
    request(2, 'open', [['path', Buffer.from('/./repo')], ['create', false], ['lock_wait', 1], ['lock', true], ['exclusive', true], ['append_only', false], ['make_parent_dirs', false]]),
    request(3, 'commit', [['save_space', false], ['compact', true], ['threshold', { float: 0.1 }], ['cleanup_commits', false]]),
  ]);
  const output = new Writable({ write: (c: Buffer, _e, done) => (replies.push(c), done()) });
  const errOutput = new Writable({ write: (c: Buffer, _e, done) => ((errText += c.toString()), done()) });
  const outcome = await runGuardSession(
    { store, reposDir, spawnBorg, borgVersion: () => [1, 2, 4, -1], host: 'test', pid: 1, checkCompaction: look },
    { keyRef: 'admin', clientAddress: null, logLevel: null, input, output, errOutput },
  );
  return { outcome, received, events, errText, replies };
}

const ok = { decision: { allow: true, unverified: [], structurallyVerified: 1, coverage: { keyVerifiedThrough: null, coveredThrough: null, by: null } }, freeable: 0, fromTxn: 5, why: '' };

test.each([
  ['the history cannot be read', (async () => Promise.reject(Object.assign(new Error('gone'), { code: 'EIO' }))) as unknown as typeof checkCompaction, "could not read the repository's history (EIO)"],
  [
    'the manifest versions cannot be kept',
    (async () => ({ ...ok, keep: async () => Promise.reject(Object.assign(new Error('full'), { code: 'ENOSPC' })) })) as unknown as typeof checkCompaction,
    'could not keep the manifest versions compaction would remove (ENOSPC)',
  ],
])('when %s, the compacting commit is deferred, answered and recorded', async (_what, look, why) => {
  const { outcome, received, events, errText } = await compactWith(look);
  const commit = received.find((r) => r.method === 'commit');
  expect(commit?.args.get('compact')).toBe(false);
  expect(errText).toContain(`borgkeep: compaction deferred: borgkeep ${why}`);
  expect(events.map((e) => e.kind)).toEqual(['compaction-deferred']);
  expect(outcome.result).toBe('ok');
});

test('when the gate allows and the versions are kept, the commit goes on as it came', async () => {
  let kept = 0;
  const look = (async () => ({ ...ok, keep: async () => ++kept })) as unknown as typeof checkCompaction;
  const { received, errText } = await compactWith(look);
  expect(received.find((r) => r.method === 'commit')?.args.get('compact')).toBe(true);
  expect(kept).toBe(1);
  expect(errText).toBe('');
});
