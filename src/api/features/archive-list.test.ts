// listArchives when the key cannot be used: each case is one sentence of its own (never the
// cause's message, which may name files of the data directory), the list is null, and the ledger
// is not asked.
import { describe, expect, it } from 'vitest';

import { KeyError } from '../../repository/borg-key.js';
import { VaultLockedError } from '../../vault/vault.js';
import { listArchives, type ArchiveListDeps } from './archive-list.js';

const PATH = '/srv/borgkeep/data/repos/r-secret-dir';
const deps = (repositoryKey: ArchiveListDeps['repositoryKey']): ArchiveListDeps => ({
  repositoryKey,
  repositoryPath: () => PATH,
  store: {
    listArchiveSightings: () => Promise.reject(new Error('not to be asked')),
    listCommittedTransactions: () => Promise.reject(new Error('not to be asked')),
  },
});
const repository = { id: 1, dirName: 'r-secret-dir' };

describe('listArchives without a usable key', () => {
  it('not held: keyHeld false and one sentence', async () => {
    const r = await listArchives(deps(() => null), repository);
    expect(r).toEqual({ keyHeld: false, archives: null, reason: expect.stringMatching(/^borgkeep does not hold this repository's key.*\.$/) });
  });

  it('a sealed vault and a key that no longer unlocks: keyHeld true, no list, no path', async () => {
    const locked = await listArchives(deps(() => { throw new VaultLockedError(); }), repository);
    expect(locked.keyHeld).toBe(true);
    expect(locked.archives).toBeNull();
    expect(locked.reason).toMatch(/vault is sealed with a master passphrase/);
    const stale = await listArchives(deps(() => { throw new KeyError(`cannot read ${PATH}/config`); }), repository);
    expect(stale).toMatchObject({ keyHeld: true, archives: null });
    expect(stale.reason).toMatch(/no longer unlocks/);
    for (const r of [locked, stale]) expect(r.reason).not.toContain('r-secret-dir');
  });

  it('other failures are not hidden as a key problem', async () => {
    await expect(listArchives(deps(() => { throw new Error('disk on fire'); }), repository)).rejects.toThrow('disk on fire');
  });
});
