// unlockRepositoryKey and checkRepositoryKey against repositories the real borg 1.2 made locally
// (repokey and keyfile), and the guard's key source over a vault.

import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { KeyError } from '../repository/borg-key.js';
import { checkRepositoryKey, createRepositoryKeySource, unlockRepositoryKey } from './repository-key.js';
import { openVault } from './vault.js';

const PASS = 'repo-pass-☂';
let root: string;
let repokey: string;
let keyfileRepo: string;
let keyFileText: string;

function borg(args: string[], passphrase = PASS): void {
  execFileSync('borg', args, {
    env: { ...process.env, BORG_PASSPHRASE: passphrase, BORG_BASE_DIR: join(root, 'base'), BORG_KEYS_DIR: join(root, 'keys'), BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' },
    stdio: 'pipe',
  });
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'bk-repokey-'));
  repokey = join(root, 'repokey');
  keyfileRepo = join(root, 'keyfile');
  borg(['init', '-e', 'repokey-blake2', repokey]);
  borg(['init', '-e', 'keyfile', keyfileRepo]);
  borg(['init', '-e', 'none', join(root, 'plain')]);
  const keys = readdirSync(join(root, 'keys'));
  keyFileText = readFileSync(join(root, 'keys', keys[0]!), 'utf8');
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('unlockRepositoryKey', () => {
  it('unlocks a repokey repository from its config and a keyfile repository from the key file text', () => {
    expect(unlockRepositoryKey(repokey, { passphrase: PASS, keyFile: null }).encKey).toHaveLength(32);
    expect(unlockRepositoryKey(keyfileRepo, { passphrase: PASS, keyFile: keyFileText }).encKey).toHaveLength(32);
  });

  it('refuses a wrong passphrase, a missing or superfluous key file, and an uninitialised directory, each in one sentence', () => {
    const cases: [string, () => unknown, RegExp][] = [
      ['wrong passphrase', () => unlockRepositoryKey(repokey, { passphrase: 'nope', keyFile: null }), /^the passphrase is wrong$/],
      ['keyfile repo without file', () => unlockRepositoryKey(keyfileRepo, { passphrase: PASS, keyFile: null }), /give its key file/],
      ['repokey with a file', () => unlockRepositoryKey(repokey, { passphrase: PASS, keyFile: keyFileText }), /without a key file/],
      ['keyfile of another repo', () => unlockRepositoryKey(keyfileRepo, { passphrase: PASS, keyFile: keyFileText.replace(/^BORG_KEY [0-9a-f]+/, `BORG_KEY ${'00'.repeat(32)}`) }), /another repository/],
      ['not initialised', () => unlockRepositoryKey(join(root, 'nothing'), { passphrase: PASS, keyFile: null }), /not initialised/],
    ];
    for (const [what, f, message] of cases) {
      let error: unknown;
      try {
        f();
      } catch (e) {
        error = e;
      }
      expect(error, what).toBeInstanceOf(KeyError);
      expect((error as Error).message, what).toMatch(message);
      expect((error as Error).message, what).not.toContain(PASS);
    }
  });
});

describe('checkRepositoryKey', () => {
  it("opens the current manifest with the key and checks its TAM", async () => {
    const r = await checkRepositoryKey(repokey, { passphrase: PASS, keyFile: null });
    expect(r.mode).toBe('repokey-blake2');
    expect(r.manifest.tam).toBe('ok');
    expect((await checkRepositoryKey(keyfileRepo, { passphrase: PASS, keyFile: keyFileText })).mode).toBe('keyfile');
  });

  it("refuses a key that unlocks but does not open the current manifest (another repository's data under this config)", async () => {
    const other = join(root, 'other');
    const mixed = join(root, 'mixed');
    borg(['init', '-e', 'repokey-blake2', other]);
    cpSync(other, mixed, { recursive: true });
    copyFileSync(join(repokey, 'config'), join(mixed, 'config'));
    expect(unlockRepositoryKey(mixed, { passphrase: PASS, keyFile: null }).encKey).toHaveLength(32);
    await expect(checkRepositoryKey(mixed, { passphrase: PASS, keyFile: null })).rejects.toThrow(/^the key does not open the repository's current manifest: the object MAC does not verify/);
  });

  it('refuses an unencrypted repository and a wrong passphrase', async () => {
    await expect(checkRepositoryKey(join(root, 'plain'), { passphrase: PASS, keyFile: null })).rejects.toThrow(/not encrypted/);
    await expect(checkRepositoryKey(repokey, { passphrase: 'wrong', keyFile: null })).rejects.toThrow(KeyError);
  });
});

describe('createRepositoryKeySource', () => {
  it('gives the key of a repository the vault holds, null for one it does not, and fails closed when locked', () => {
    const data = join(root, 'data');
    openVault(data).put('aaaaaaaaaaaaaaaa', { passphrase: PASS, keyFile: null });
    const source = createRepositoryKeySource(openVault(data));
    const key = source({ dirName: 'aaaaaaaaaaaaaaaa' }, repokey);
    expect(key?.encKey).toHaveLength(32);
    expect(source({ dirName: 'aaaaaaaaaaaaaaaa' }, repokey)).toBe(key); // cached
    expect(source({ dirName: 'bbbbbbbbbbbbbbbb' }, repokey)).toBeNull();
    const locked = join(root, 'locked');
    openVault(locked, { masterPassphrase: 'm' }).put('aaaaaaaaaaaaaaaa', { passphrase: PASS, keyFile: null });
    expect(() => createRepositoryKeySource(openVault(locked))({ dirName: 'aaaaaaaaaaaaaaaa' }, repokey)).toThrow(/master passphrase/);
  });

  it('keeps the key unlocked in the entry, bound to the key blob: no PBKDF2 while the blob is the same, the passphrase again once it changed', async () => {
    const checked = await checkRepositoryKey(repokey, { passphrase: PASS, keyFile: null });
    const u = checked.material.unlocked!;
    expect(u.encKey).toBe(checked.key.encKey.toString('hex'));
    expect(u.idKey).toBe(checked.key.idKey.toString('hex'));
    const data = join(root, 'data-unlocked');
    // A passphrase that unlocks nothing beside the kept key: a key can only come from the kept one.
    openVault(data).put('cccccccccccccccc', { ...checked.material, passphrase: 'not the passphrase' });
    const key = createRepositoryKeySource(openVault(data))({ dirName: 'cccccccccccccccc' }, repokey);
    expect(key?.encKey.equals(checked.key.encKey)).toBe(true);
    expect(key?.encHmacKey.equals(checked.key.encHmacKey)).toBe(true);
    expect(key?.idKey.equals(checked.key.idKey)).toBe(true);
    expect(key?.chunkSeed).toBe(checked.key.chunkSeed);
    expect(key?.tamRequired).toBe(checked.key.tamRequired);

    // borg key change-passphrase writes a new blob (new salt): the kept key no longer applies.
    const changed = join(root, 'changed');
    cpSync(repokey, changed, { recursive: true });
    execFileSync('borg', ['key', 'change-passphrase', changed], {
      env: { ...process.env, BORG_PASSPHRASE: PASS, BORG_NEW_PASSPHRASE: 'new-pass', BORG_BASE_DIR: join(root, 'base'), BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' },
      stdio: 'pipe',
    });
    openVault(data).put('dddddddddddddddd', { ...checked.material, passphrase: PASS });
    expect(() => createRepositoryKeySource(openVault(data))({ dirName: 'dddddddddddddddd' }, changed)).toThrow(/^the passphrase is wrong$/);
    openVault(data).put('eeeeeeeeeeeeeeee', { ...checked.material, passphrase: 'new-pass' });
    expect(createRepositoryKeySource(openVault(data))({ dirName: 'eeeeeeeeeeeeeeee' }, changed)?.encKey.equals(checked.key.encKey)).toBe(true);

    // A kept key that is not one (damaged fields) is ignored: the passphrase decides.
    openVault(data).put('ffffffffffffffff', { passphrase: 'not the passphrase', keyFile: null, unlocked: { ...u, encKey: 'zz' } });
    expect(openVault(data).get('ffffffffffffffff')?.unlocked).toBeUndefined();
    expect(() => createRepositoryKeySource(openVault(data))({ dirName: 'ffffffffffffffff' }, repokey)).toThrow(/^the passphrase is wrong$/);
  });
});
