import { existsSync, linkSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { VaultError, VaultLockedError, openVault, vaultMasterMode, vaultPaths, type RepositoryKeyMaterial } from './vault.js';

const dirs: string[] = [];
const dataDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'bk-vault-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const PASSPHRASE = 'correct horse battery staple 🐎 Ünïcödé';
const KEY_FILE = `BORG_KEY ${'ab'.repeat(32)}\nhqlhbGdvcml0aG2mc2hhMjU2pGRhdGHaAN5rZXlmaWxlLXRleHQtdGhhdC1tdXN0LW5ldmVyLWFwcGVhcg\n==\n`;
const REPO = '0123456789abcdef';

/** Every encoding a careless implementation might store the secret in. */
function encodings(secret: string): Buffer[] {
  const utf8 = Buffer.from(secret, 'utf8');
  return [
    utf8,
    Buffer.from(secret, 'utf16le'),
    Buffer.from(utf8.toString('hex')),
    Buffer.from(utf8.toString('hex').toUpperCase()),
    Buffer.from(utf8.toString('base64')),
    Buffer.from(utf8.toString('base64url')),
    Buffer.from(JSON.stringify(secret)),
  ];
}

function everyFileUnder(dir: string): Buffer[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name)));
}

function expectNoTrace(files: Buffer[], secrets: string[]): void {
  for (const file of files) {
    for (const secret of secrets) {
      for (const enc of encodings(secret)) expect(file.includes(enc), `found an encoding of the secret: ${enc.toString('latin1').slice(0, 20)}`).toBe(false);
      // and no longer fragment either (the key file's base64 line)
      for (const line of secret.split('\n').filter((l) => l.length >= 12)) expect(file.includes(Buffer.from(line))).toBe(false);
    }
  }
}

describe('the key vault with a master key file (the default)', () => {
  it('seals, reads back, and makes the master key file on first put, 0600 in a 0700 directory', () => {
    const d = dataDir();
    const vault = openVault(d);
    expect(vault.has(REPO)).toBe(false);
    expect(vault.get(REPO)).toBeNull();
    expect(existsSync(vaultPaths(d).masterKeyFile)).toBe(false);
    const m: RepositoryKeyMaterial = { passphrase: PASSPHRASE, keyFile: KEY_FILE };
    vault.put(REPO, m);
    expect(vault.has(REPO)).toBe(true);
    expect(vault.get(REPO)).toEqual(m);
    expect(openVault(d).get(REPO)).toEqual(m);
    const p = vaultPaths(d);
    expect(statSync(p.masterKeyFile).mode & 0o777).toBe(0o600);
    expect(statSync(p.masterKeyFile).size).toBe(32);
    expect(statSync(p.dir).mode & 0o777).toBe(0o700);
    expect(statSync(p.entry(REPO)).mode & 0o777).toBe(0o600);
    expect(readdirSync(p.dir)).toEqual([REPO]); // no temp file left behind
    expect(vaultMasterMode(d)).toBe('key-file');
  });

  it('stores the passphrase and the key file text in no encoding', () => {
    const d = dataDir();
    openVault(d).put(REPO, { passphrase: PASSPHRASE, keyFile: KEY_FILE });
    openVault(d).put('fedcba9876543210', { passphrase: 'another-passphrase-xyz', keyFile: null });
    expectNoTrace([...everyFileUnder(d)], [PASSPHRASE, KEY_FILE, 'another-passphrase-xyz']);
  });

  it('overwrites an entry, and forget leaves no file and no trace', () => {
    const d = dataDir();
    const vault = openVault(d);
    vault.put(REPO, { passphrase: 'first', keyFile: null });
    vault.put(REPO, { passphrase: PASSPHRASE, keyFile: null });
    expect(vault.get(REPO)?.passphrase).toBe(PASSPHRASE);
    const sealed = readFileSync(vaultPaths(d).entry(REPO));
    expect(vault.forget(REPO)).toBe(true);
    expect(vault.forget(REPO)).toBe(false);
    expect(vault.has(REPO)).toBe(false);
    expect(vault.get(REPO)).toBeNull();
    expect(readdirSync(vaultPaths(d).dir)).toEqual([]);
    const rest = everyFileUnder(d);
    expectNoTrace(rest, [PASSPHRASE]);
    // not even the sealed bytes (ciphertext) remain anywhere in the data directory
    for (const f of rest) expect(f.includes(sealed.subarray(8 + 12))).toBe(false);
  });

  it("forget overwrites the entry's bytes before unlinking (a second hard link to the file sees zeros)", () => {
    const d = dataDir();
    const vault = openVault(d);
    vault.put(REPO, { passphrase: PASSPHRASE, keyFile: null });
    const other = join(d, 'other-link');
    linkSync(vaultPaths(d).entry(REPO), other);
    const size = statSync(other).size;
    expect(vault.forget(REPO)).toBe(true);
    expect(readFileSync(other)).toEqual(Buffer.alloc(size));
  });

  it('a sealed entry does not open under another repository name, nor when tampered with', () => {
    const d = dataDir();
    const vault = openVault(d);
    vault.put(REPO, { passphrase: PASSPHRASE, keyFile: null });
    const p = vaultPaths(d);
    copyFileSync(p.entry(REPO), p.entry('1111111111111111'));
    expect(() => vault.get('1111111111111111')).toThrow(/does not open/);
    const bytes = readFileSync(p.entry(REPO));
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(p.entry(REPO), bytes);
    expect(() => vault.get(REPO)).toThrow(/does not open/);
  });

  it('refuses names that are not repository directory names (no path escapes)', () => {
    const vault = openVault(dataDir());
    for (const bad of ['../x', '.master-passphrase', '', 'a/b', '.']) {
      expect(() => vault.put(bad, { passphrase: 'x', keyFile: null })).toThrow(VaultError);
      expect(() => vault.has(bad)).toThrow(VaultError);
    }
  });

  it('refuses a master passphrase on a data directory that uses the master key file', () => {
    const d = dataDir();
    openVault(d).put(REPO, { passphrase: PASSPHRASE, keyFile: null });
    expect(() => openVault(d, { masterPassphrase: 'anything' })).toThrow(/sealed with its master key file/);
    expect(existsSync(vaultPaths(d).passphraseCheckFile)).toBe(false);
  });
});

describe('the key vault with a master passphrase', () => {
  it('derives the master secret, detects a wrong master passphrase in one sentence, and stores no master key file', () => {
    const d = dataDir();
    const vault = openVault(d, { masterPassphrase: 'master secret one' });
    expect(vaultMasterMode(d)).toBe('passphrase');
    vault.put(REPO, { passphrase: PASSPHRASE, keyFile: KEY_FILE });
    expect(existsSync(vaultPaths(d).masterKeyFile)).toBe(false);
    expect(openVault(d, { masterPassphrase: 'master secret one' }).get(REPO)).toEqual({ passphrase: PASSPHRASE, keyFile: KEY_FILE });
    let error: unknown;
    try {
      openVault(d, { masterPassphrase: 'master secret two' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(VaultError);
    expect((error as Error).message).toBe("the master passphrase is wrong: it does not open this data directory's key vault");
    expectNoTrace(everyFileUnder(d), [PASSPHRASE, KEY_FILE, 'master secret one']);
  });

  it('opens locked without the master passphrase: has and forget work, get and put fail closed', () => {
    const d = dataDir();
    openVault(d, { masterPassphrase: 'm' }).put(REPO, { passphrase: PASSPHRASE, keyFile: null });
    const locked = openVault(d);
    expect(locked.has(REPO)).toBe(true);
    expect(() => locked.get(REPO)).toThrow(VaultLockedError);
    expect(() => locked.put(REPO, { passphrase: 'x', keyFile: null })).toThrow(VaultLockedError);
    expect(locked.get('1111111111111111')).toBeNull();
    // a locked process must never fall back to making a master key file
    expect(existsSync(vaultPaths(d).masterKeyFile)).toBe(false);
    expect(locked.forget(REPO)).toBe(true);
    expect(locked.has(REPO)).toBe(false);
  });

  it('a master key file appearing beside a passphrase vault is an error, not a silent switch', () => {
    const d = dataDir();
    openVault(d, { masterPassphrase: 'm' }).put(REPO, { passphrase: PASSPHRASE, keyFile: null });
    writeFileSync(vaultPaths(d).masterKeyFile, Buffer.alloc(32), { mode: 0o600 });
    expect(() => openVault(d, { masterPassphrase: 'm' })).toThrow(/both a vault master key file and a master passphrase/);
  });

  it('refuses an empty master passphrase', () => {
    expect(() => openVault(dataDir(), { masterPassphrase: '' })).toThrow(/empty/);
  });
});
