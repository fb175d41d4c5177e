// The warm child (warm-child.ts): taken only for the very command line the guard would start,
// killed in every other case; and guessed from the store only for a key with one live grant on
// a repository that exists.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ed25519Key, openTempStore, type TempStore } from '../../test/support/temp-store.js';
import type { BorgChild, BorgServeOptions } from './borg-child.js';
import { guessChild, warmSpawner } from './warm-child.js';

function fakeSpawner() {
  const started: Array<{ opts: BorgServeOptions; killed: boolean; child: BorgChild }> = [];
  const spawn = (opts: BorgServeOptions): BorgChild => {
    const entry = { opts, killed: false, child: null as unknown as BorgChild };
    entry.child = { kill: () => (entry.killed = true) } as unknown as BorgChild;
    started.push(entry);
    return entry.child;
  };
  return { spawn, started };
}

const GUESS: BorgServeOptions = { repositoryPath: '/data/repos/abc', appendOnly: true, storageQuota: null, logLevel: null };

describe('warmSpawner', () => {
  it('hands over the warm child for the same command line, and spawns nothing more', () => {
    const f = fakeSpawner();
    const warm = warmSpawner(f.spawn, GUESS);
    expect(f.started).toHaveLength(1);
    const child = warm.spawnBorg({ ...GUESS });
    expect(child).toBe(f.started[0].child);
    expect(warm.adopted).toBe(true);
    warm.discard();
    expect(f.started[0].killed).toBe(false);
    expect(f.started).toHaveLength(1);
  });

  it.each([
    ['another repository', { repositoryPath: '/data/repos/other' }],
    ['a full role where the guess was append', { appendOnly: false }],
    ['a quota', { storageQuota: 100_000_000 }],
    ['a log level', { logLevel: 'debug' as const }],
  ])('kills the warm child and starts a fresh one for %s', (_what, change) => {
    const f = fakeSpawner();
    const warm = warmSpawner(f.spawn, GUESS);
    const child = warm.spawnBorg({ ...GUESS, ...change });
    expect(f.started[0].killed).toBe(true);
    expect(f.started).toHaveLength(2);
    expect(child).toBe(f.started[1].child);
    expect(f.started[1].opts).toEqual({ ...GUESS, ...change });
    expect(warm.adopted).toBe(false);
  });

  it('kills an unused warm child when the session ends, and never hands it out afterwards', () => {
    const f = fakeSpawner();
    const warm = warmSpawner(f.spawn, GUESS);
    warm.discard();
    expect(f.started[0].killed).toBe(true);
    const child = warm.spawnBorg({ ...GUESS });
    expect(child).toBe(f.started[1].child);
    expect(warm.adopted).toBe(false);
  });

  it('hands the warm child out once: a second spawn of the same command line is a fresh process', () => {
    const f = fakeSpawner();
    const warm = warmSpawner(f.spawn, GUESS);
    warm.spawnBorg({ ...GUESS });
    const second = warm.spawnBorg({ ...GUESS });
    expect(second).toBe(f.started[1].child);
    expect(f.started[0].killed).toBe(false);
  });
});

describe('guessChild', () => {
  let t: TempStore;
  let reposDir: string;
  const guess = (ref: string, now = new Date()) => {
    const db = new Database(join(t.dataDir, 'borgkeep.db'), { readonly: true, fileMustExist: true });
    try {
      return guessChild(db, reposDir, ref, 'info', now);
    } finally {
      db.close();
    }
  };
  const terms = { writesPerDay: null, fromCidrs: null, expiresAt: null };
  beforeEach(async () => {
    t = await openTempStore();
    reposDir = join(t.dataDir, 'repos');
  });
  afterEach(() => t.cleanup());

  const repoOnDisk = async (name: string, quotaBytes: number | null = null) => {
    const r = await t.store.createRepository({ name, quotaBytes });
    mkdirSync(join(reposDir, r.dirName), { recursive: true });
    return r;
  };

  it("is the key's one grant: its repository, role and quota, by the key's name or id", async () => {
    const r = await repoOnDisk('laptop', 50_000_000);
    const { key } = await t.store.addKey({ name: 'writer', publicKey: ed25519Key() });
    await t.store.setGrant('writer', 'laptop', { role: 'append', ...terms });
    const expected = { repositoryPath: join(reposDir, r.dirName), appendOnly: true, storageQuota: 50_000_000, logLevel: 'info' };
    expect(guess('writer')).toEqual(expected);
    expect(guess(String(key.id))).toEqual(expected);
    await t.store.setGrant('writer', 'laptop', { role: 'full', ...terms });
    expect(guess('writer')).toEqual({ ...expected, appendOnly: false });
  });

  it('is nothing for a key with no grant, several grants, a revoked key, an expired grant, or a repository not on disk', async () => {
    await repoOnDisk('one');
    await repoOnDisk('two');
    await t.store.createRepository({ name: 'uninitialised', quotaBytes: null });
    await t.store.addKey({ name: 'none', publicKey: ed25519Key() });
    expect(guess('none')).toBeNull();
    expect(guess('nobody')).toBeNull();

    await t.store.addKey({ name: 'two-grants', publicKey: ed25519Key() });
    await t.store.setGrant('two-grants', 'one', { role: 'append', ...terms });
    await t.store.setGrant('two-grants', 'two', { role: 'append', ...terms });
    expect(guess('two-grants')).toBeNull();

    await t.store.addKey({ name: 'expiring', publicKey: ed25519Key() });
    await t.store.setGrant('expiring', 'one', { role: 'append', ...terms, expiresAt: new Date('2030-01-01T00:00:00Z') });
    expect(guess('expiring', new Date('2029-12-31T00:00:00Z'))).not.toBeNull();
    expect(guess('expiring', new Date('2030-01-01T00:00:00Z'))).toBeNull();

    await t.store.addKey({ name: 'revoked', publicKey: ed25519Key() });
    await t.store.setGrant('revoked', 'one', { role: 'append', ...terms });
    await t.store.revokeKey('revoked');
    expect(guess('revoked')).toBeNull();

    await t.store.addKey({ name: 'fresh', publicKey: ed25519Key() });
    await t.store.setGrant('fresh', 'uninitialised', { role: 'full', ...terms });
    expect(guess('fresh')).toBeNull();
  });
});
