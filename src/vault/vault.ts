// The key vault: what borgkeep needs to read a repository's manifests (the passphrase of a
// repokey repository, or a keyfile's text and its passphrase), sealed at rest. One file per
// repository in `<data-dir>/vault/` (directory 0700, files 0600), named by the repository's
// dirName (stable across renames), written atomically (temp file, fsync, rename).
//
// Sealing: AES-256-GCM with a fresh 96-bit IV per write; the associated data binds a file to its
// dirName, so a sealed file moved to another repository's name does not open. The sealing key is
// derived (HKDF-SHA256) from the master secret, which is one of two kinds; a data directory uses
// exactly one, and opening it with the other is a clear error, never a silent switch:
//   - master key file (the default): `<data-dir>/vault-master.key`, 32 random bytes, mode 0600,
//     made at the first `put`. Anyone who can read the data directory can open the vault: this
//     protects against leaks of single files, not against a copy of the whole directory.
//   - master passphrase (`serve --vault-passphrase-file`, or `repo key --vault-passphrase-file`):
//     scrypt(passphrase, stored random salt). `<data-dir>/vault/.master-passphrase` stores only
//     the salt, the scrypt parameters and a check value (an HMAC under the derived secret), so a
//     wrong master passphrase is detected at `openVault` and a copy of the disk alone opens
//     nothing. A process without the passphrase (e.g. a `borg-serve` session under sshd's forced
//     command) gets a vault whose `get`/`put` throw VaultLockedError: it fails closed.
//
// Never logs, never returns the master secret, never writes a passphrase or key text anywhere but
// into a sealed file; `forget` overwrites the file's bytes before it unlinks it.

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { BorgkeepError, type ErrorCode } from '../errors.js';

export interface RepositoryKeyMaterial {
  passphrase: string;
  /** The text of a borg keyfile, or null for repokey (the key is in the repository's config). */
  keyFile: string | null;
  /**
   * The key as the passphrase unlocked it when it was handed over, for the key blob whose SHA-256
   * is `blob`: a process that reads the repository then skips borg's PBKDF2 (about 20 ms, paid by
   * every backup session and every `borgkeep verify` otherwise) while that blob is unchanged.
   * Sealed like the passphrase, which unlocks the same key anyway.
   */
  unlocked?: UnlockedKey;
}

/** An unlocked borg key with the hash of the key blob it came from (all bytes in hex). */
export interface UnlockedKey {
  blob: string;
  repositoryId: string;
  encKey: string;
  encHmacKey: string;
  idKey: string;
  tamRequired: boolean;
  chunkSeed: number | null;
}

const isHex = (v: unknown, sizes: readonly number[]): v is string => typeof v === 'string' && sizes.includes(v.length / 2) && /^[0-9a-f]*$/.test(v);

/** An unlocked key read from a sealed entry, or undefined when it is not one (the entry then unlocks with its passphrase). */
function unlockedOf(v: unknown): UnlockedKey | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const u = v as Record<string, unknown>;
  const ok =
    isHex(u.blob, [32]) && isHex(u.repositoryId, [32]) && isHex(u.encKey, [32]) && isHex(u.encHmacKey, [32, 128]) && isHex(u.idKey, [32, 128]) &&
    typeof u.tamRequired === 'boolean' && (u.chunkSeed === null || (typeof u.chunkSeed === 'number' && Number.isInteger(u.chunkSeed)));
  if (!ok) return undefined;
  return { blob: u.blob as string, repositoryId: u.repositoryId as string, encKey: u.encKey as string, encHmacKey: u.encHmacKey as string, idKey: u.idKey as string, tamRequired: u.tamRequired as boolean, chunkSeed: u.chunkSeed as number | null };
}

export interface Vault {
  /** By the repository's dirName (stable, unlike its name). Needs no master secret. */
  has(dirName: string): boolean;
  /** The dirNames holding an entry, from one listing of the vault directory (a list of many repositories asks once, not once each). */
  held?(): Set<string>;
  /** Throws VaultLockedError (one sentence) when the master secret is not available. */
  get(dirName: string): RepositoryKeyMaterial | null;
  put(dirName: string, m: RepositoryKeyMaterial): void;
  /** Removes the entry (its bytes overwritten first); false when there was none. */
  forget(dirName: string): boolean;
}

/** A vault problem, in one sentence for the person who caused it. */
export class VaultError extends BorgkeepError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'VaultError';
  }
}

/** The vault is sealed with a master passphrase this process was not given. */
export class VaultLockedError extends VaultError {
  // Also reaches borg clients through the guard (a session under sshd's forced command): it names
  // no path, flag or file, only why the key cannot be used here.
  constructor(message = 'the key vault is sealed with a master passphrase, which only the running borgkeep serve holds') {
    super('BK_ERR_CONFLICT', message);
    this.name = 'VaultLockedError';
  }
}

export type VaultMasterMode = 'key-file' | 'passphrase' | 'unset';

export interface VaultPaths {
  dir: string;
  masterKeyFile: string;
  passphraseCheckFile: string;
  entry(dirName: string): string;
}

export function vaultPaths(dataDir: string): VaultPaths {
  const root = resolve(dataDir);
  const dir = join(root, 'vault');
  return {
    dir,
    masterKeyFile: join(root, 'vault-master.key'),
    passphraseCheckFile: join(dir, '.master-passphrase'),
    entry: (dirName) => join(dir, checkedDirName(dirName)),
  };
}

/** Which master secret a data directory's vault uses, from the files present. */
export function vaultMasterMode(dataDir: string): VaultMasterMode {
  const p = vaultPaths(dataDir);
  if (existsSync(p.passphraseCheckFile)) return 'passphrase';
  if (existsSync(p.masterKeyFile)) return 'key-file';
  return 'unset';
}

const MAGIC = Buffer.from('BKVAULT1', 'latin1');
const IV_SIZE = 12;
const TAG_SIZE = 16;
const MASTER_SIZE = 32;
/** scrypt cost: 2^15 x 8 is ~32 MiB and ~0.1 s, paid once per process that opens the vault. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1 };
const SCRYPT_MAXMEM = 128 * 1024 * 1024;
/** Far above any key file borg writes (~700 bytes) and any sane passphrase. */
const MAX_ENTRY_FILE = 64 * 1024;

/** dirNames are 16 hex digits (repository-store); anything else must never become a path. */
function checkedDirName(dirName: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(dirName)) throw new VaultError('BK_ERR_INVALID_INPUT', 'that is not a repository directory name');
  return dirName;
}

const subkey = (master: Buffer, info: string): Buffer => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), Buffer.from(info, 'latin1'), 32));
const checkValue = (master: Buffer): Buffer => createHmac('sha256', master).update('borgkeep vault master passphrase check v1').digest();

/** Writes `data` to `path` so that readers see the old file or the whole new one, never a part. */
function writeAtomically(path: string, data: Buffer): void {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(tmp);
    throw error;
  }
  closeSync(fd);
  renameSync(tmp, path);
  syncDir(join(path, '..'));
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic
  } finally {
    closeSync(fd);
  }
}

function ensureVaultDir(p: VaultPaths): void {
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is masked by the umask, and an existing directory keeps its mode.
  chmodSync(p.dir, 0o700);
}

interface PassphraseCheck {
  version: 1;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  check: string;
}

function deriveFromPassphrase(passphrase: string, c: Pick<PassphraseCheck, 'N' | 'r' | 'p'>, salt: Buffer): Buffer {
  return scryptSync(Buffer.from(passphrase, 'utf8'), salt, MASTER_SIZE, { N: c.N, r: c.r, p: c.p, maxmem: SCRYPT_MAXMEM });
}

function readPassphraseCheck(path: string): PassphraseCheck {
  let c: PassphraseCheck;
  try {
    c = JSON.parse(readFileSync(path, 'utf8')) as PassphraseCheck;
  } catch {
    throw new VaultError('BK_ERR_INTERNAL', "the key vault's master passphrase check file is damaged");
  }
  const ok =
    c && c.version === 1 && c.kdf === 'scrypt' &&
    [c.N, c.r, c.p].every((n) => Number.isSafeInteger(n) && n > 0) && c.N <= 1 << 20 && c.r <= 32 && c.p <= 16 &&
    typeof c.salt === 'string' && typeof c.check === 'string';
  if (!ok) throw new VaultError('BK_ERR_INTERNAL', "the key vault's master passphrase check file is damaged");
  return c;
}

/** The master secret of a passphrase vault: checked against the stored value, or made (first use). */
function masterFromPassphrase(p: VaultPaths, passphrase: string): Buffer {
  if (passphrase.length === 0) throw new VaultError('BK_ERR_INVALID_INPUT', 'the master passphrase is empty');
  if (existsSync(p.passphraseCheckFile)) {
    const c = readPassphraseCheck(p.passphraseCheckFile);
    const master = deriveFromPassphrase(passphrase, c, Buffer.from(c.salt, 'base64'));
    const stored = Buffer.from(c.check, 'base64');
    const expected = checkValue(master);
    if (stored.length !== expected.length || !timingSafeEqual(stored, expected)) {
      throw new VaultError('BK_ERR_INVALID_INPUT', "the master passphrase is wrong: it does not open this data directory's key vault");
    }
    return master;
  }
  if (existsSync(p.masterKeyFile)) {
    throw new VaultError('BK_ERR_INVALID_INPUT', "this data directory's key vault is sealed with its master key file (vault-master.key), not a master passphrase; start without --vault-passphrase-file");
  }
  ensureVaultDir(p);
  const salt = randomBytes(32);
  const master = deriveFromPassphrase(passphrase, SCRYPT, salt);
  const c: PassphraseCheck = { version: 1, kdf: 'scrypt', ...SCRYPT, salt: salt.toString('base64'), check: checkValue(master).toString('base64') };
  writeAtomically(p.passphraseCheckFile, Buffer.from(`${JSON.stringify(c)}\n`));
  return master;
}

function readMasterKeyFile(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size !== MASTER_SIZE) throw new VaultError('BK_ERR_INTERNAL', "the key vault's master key file (vault-master.key) is not 32 bytes");
    const b = Buffer.alloc(MASTER_SIZE);
    const n = readFileSync(fd).copy(b);
    if (n !== MASTER_SIZE) throw new VaultError('BK_ERR_INTERNAL', "the key vault's master key file (vault-master.key) is not 32 bytes");
    return b;
  } finally {
    closeSync(fd);
  }
}

function aad(dirName: string): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([0]), Buffer.from(dirName, 'latin1')]);
}

export function seal(master: Buffer, dirName: string, m: RepositoryKeyMaterial): Buffer {
  const key = subkey(master, 'borgkeep vault seal v1');
  const iv = randomBytes(IV_SIZE);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad(dirName));
  const plain = Buffer.from(JSON.stringify({ passphrase: m.passphrase, keyFile: m.keyFile, ...(m.unlocked && { unlocked: m.unlocked }) }), 'utf8');
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  plain.fill(0);
  key.fill(0);
  return Buffer.concat([MAGIC, iv, cipher.getAuthTag(), ct]);
}

export function unseal(master: Buffer, dirName: string, sealed: Buffer): RepositoryKeyMaterial {
  const damaged = () => new VaultError('BK_ERR_INTERNAL', "the vault's entry for this repository does not open: it was damaged, or sealed with another master secret");
  if (sealed.length < MAGIC.length + IV_SIZE + TAG_SIZE || !sealed.subarray(0, MAGIC.length).equals(MAGIC)) throw damaged();
  const key = subkey(master, 'borgkeep vault seal v1');
  const iv = sealed.subarray(MAGIC.length, MAGIC.length + IV_SIZE);
  const tag = sealed.subarray(MAGIC.length + IV_SIZE, MAGIC.length + IV_SIZE + TAG_SIZE);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(aad(dirName));
  decipher.setAuthTag(tag);
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(sealed.subarray(MAGIC.length + IV_SIZE + TAG_SIZE)), decipher.final()]);
  } catch {
    throw damaged();
  } finally {
    key.fill(0);
  }
  try {
    let v: RepositoryKeyMaterial;
    try {
      v = JSON.parse(plain.toString('utf8')) as RepositoryKeyMaterial;
    } catch {
      throw damaged();
    }
    if (typeof v?.passphrase !== 'string' || (v.keyFile !== null && typeof v.keyFile !== 'string')) throw damaged();
    const unlocked = unlockedOf(v.unlocked);
    return { passphrase: v.passphrase, keyFile: v.keyFile, ...(unlocked && { unlocked }) };
  } finally {
    plain.fill(0);
  }
}

/** Overwrites a file's bytes (random, then synced) and unlinks it. */
function shred(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size > 0) {
      writeSync(fd, randomBytes(size), 0, size, 0);
      fsyncSync(fd);
      writeSync(fd, Buffer.alloc(size), 0, size, 0);
      fsyncSync(fd);
    }
  } finally {
    closeSync(fd);
  }
  unlinkSync(path);
  syncDir(join(path, '..'));
}

/**
 * Opens a data directory's vault. With `masterPassphrase`, the vault is (or becomes, when it has
 * no master secret yet) a passphrase vault, and a wrong passphrase throws here. Without it, a
 * key-file vault opens fully and a passphrase vault opens locked (has/forget work; get/put throw
 * VaultLockedError).
 */
export function openVault(dataDir: string, opts: { masterPassphrase?: string } = {}): Vault {
  const p = vaultPaths(dataDir);
  let master: Buffer | null = null;
  let locked = false;
  if (opts.masterPassphrase !== undefined) {
    master = masterFromPassphrase(p, opts.masterPassphrase);
  } else if (existsSync(p.passphraseCheckFile)) {
    locked = true;
  }
  if (master && existsSync(p.masterKeyFile)) {
    throw new VaultError('BK_ERR_INTERNAL', "this data directory has both a vault master key file and a master passphrase; remove the one it does not use");
  }

  const masterSecret = (create: boolean): Buffer | null => {
    if (locked) throw new VaultLockedError();
    if (master) return master;
    if (existsSync(p.masterKeyFile)) return (master = readMasterKeyFile(p.masterKeyFile));
    if (!create) return null;
    ensureVaultDir(p);
    const fresh = randomBytes(MASTER_SIZE);
    // 'wx': two processes making the first key at once must not end with two different keys.
    try {
      const fd = openSync(p.masterKeyFile, 'wx', 0o600);
      try {
        writeSync(fd, fresh);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      syncDir(join(p.masterKeyFile, '..'));
      return (master = fresh);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return (master = readMasterKeyFile(p.masterKeyFile));
      throw error;
    }
  };

  const readEntry = (path: string): Buffer | null => {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    try {
      if (fstatSync(fd).size > MAX_ENTRY_FILE) throw new VaultError('BK_ERR_INTERNAL', "the vault's entry for this repository is too large to be one");
      return readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  };

  return {
    has(dirName) {
      try {
        return statSync(p.entry(dirName)).isFile();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      }
    },
    held() {
      try {
        // Entries are named by dirName; temp files of a write under way (NAME.tmp-…) and the
        // passphrase check file are not.
        return new Set(readdirSync(p.dir, { withFileTypes: true }).filter((e) => e.isFile() && /^[A-Za-z0-9_-]{1,64}$/.test(e.name)).map((e) => e.name));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
        throw error;
      }
    },
    get(dirName) {
      const path = p.entry(dirName);
      if (locked) {
        if (!existsSync(path)) return null;
        throw new VaultLockedError();
      }
      const sealed = readEntry(path);
      if (!sealed) return null;
      const secret = masterSecret(false);
      if (!secret) throw new VaultError('BK_ERR_INTERNAL', "the key vault's master key file (vault-master.key) is missing, so its entries cannot be opened");
      return unseal(secret, dirName, sealed);
    },
    put(dirName, m) {
      if (typeof m.passphrase !== 'string' || (m.keyFile !== null && typeof m.keyFile !== 'string')) throw new VaultError('BK_ERR_INVALID_INPUT', 'the key material is not a passphrase and an optional key file text');
      const path = p.entry(dirName);
      const secret = masterSecret(true)!;
      ensureVaultDir(p);
      writeAtomically(path, seal(secret, dirName, m));
    },
    forget(dirName) {
      const path = p.entry(dirName);
      if (!existsSync(path)) return false;
      shred(path);
      return true;
    },
  };
}
