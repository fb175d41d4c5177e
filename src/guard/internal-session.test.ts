// The server's own guarded session (GuardSession.internal, a retention run): it never looks up
// an SSH key, records its ledger session as kind 'retention', and opens only the repository it
// was started for: an open of any other path is refused before a `borg serve` is started.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { expect, test } from 'vitest';

import { MsgMap } from '../rpc/msgpack.js';
import { encodeRequest } from '../rpc/messages.js';
import type { GuardStore, NewSession, Repository } from '../store/types.js';
import { runGuardSession } from './guard.js';

const repository: Repository = { id: 7, name: 'main', dirName: 'd7', quotaBytes: null, expectedIntervalSeconds: 93_600, createdAt: new Date(0) };

test("an internal session opens only its own repository, looks up no key, and is recorded as kind 'retention'", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bk-internal-'));
  const started: NewSession[] = [];
  const denials: string[] = [];
  let keyLookups = 0;
  let spawned = 0;
  const store = {
    findKey: async () => {
      keyLookups++;
      return undefined;
    },
    findGrant: async () => {
      keyLookups++;
      return undefined;
    },
    startSession: async (s: NewSession) => {
      started.push(s);
      return 1;
    },
    updateSession: async () => undefined,
    endSession: async () => undefined,
    recordDenial: async (d: { reason: string }) => {
      denials.push(d.reason);
      return 1;
    },
  } as unknown as GuardStore;
  const input = new PassThrough();
  const output = new PassThrough();
  const replies: Buffer[] = [];
  output.on('data', (d: Buffer) => replies.push(d));
  try {
    const session = runGuardSession(
      {
        store,
        reposDir: dir,
        spawnBorg: () => {
          spawned++;
          throw new Error('no borg serve may start for another repository');
        },
        borgVersion: () => [1, 2, 4, -1],
      },
      { keyRef: 'retention', clientAddress: null, logLevel: null, input, output, errOutput: new PassThrough(), internal: { kind: 'retention', repository, role: 'full' } },
    );
    input.write(encodeRequest('dict', 1, 'negotiate', new Map([['client_data', MsgMap.of([['client_version', [1, 2, 4]]])]])));
    input.write(encodeRequest('dict', 2, 'open', new Map<string, unknown>([['path', Buffer.from('/./other')], ['create', false], ['lock_wait', 1], ['lock', true], ['exclusive', true], ['append_only', false]]) as never));
    input.end();
    const outcome = await session;
    expect(started[0]).toMatchObject({ kind: 'retention', keyId: null, keyName: null });
    expect(keyLookups).toBe(0);
    expect(spawned).toBe(0);
    expect(outcome.result).not.toBe('ok');
    expect(Buffer.concat(replies).toString('latin1')).toMatch(/does not exist|no such repository/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
