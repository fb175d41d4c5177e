// A repository's borg key from what the vault holds: the encrypted key blob from the repository's
// `config` (repokey and authenticated modes) or from the given keyfile text (keyfile modes),
// unlocked with the passphrase. `checkRepositoryKey` goes further before anything is stored: it
// also opens the repository's current manifest with that key and checks its TAM, so the vault
// never holds material that does not read this repository. Read-only: never writes the repository
// and never puts the passphrase or the key into an error message.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { KeyError, keyBlobFromKeyfile, objectMode, openObject, unlockKey, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { IndexFormatError, latestIndexTransaction, openCommittedIndex } from '../repository/hash-index.js';
import { MANIFEST_ID, parseManifest, type Manifest } from '../repository/manifest.js';
import { RepoFormatError, parseRepoConfig, type RepoConfig } from '../repository/repo-config.js';
import { MAX_ENTRY_SIZE, readPutData, type SegmentFile } from '../repository/segments.js';
import type { RepositoryKeyMaterial, UnlockedKey, Vault } from './vault.js';

export { KeyError } from '../repository/borg-key.js';

function readConfig(repositoryPath: string): RepoConfig {
  const path = join(repositoryPath, 'config');
  if (!existsSync(path)) throw new KeyError('the repository is not initialised yet (no borg init has run), so it has no key to check');
  try {
    return parseRepoConfig(readFileSync(path, 'utf8'));
  } catch (error) {
    if (error instanceof RepoFormatError) throw new KeyError(`cannot read the repository: ${error.message}`);
    throw error;
  }
}

function keyBlob(config: RepoConfig, m: RepositoryKeyMaterial): string {
  if (config.key !== null) {
    // borg reads a repokey repository's key from its config and never from a key file.
    if (m.keyFile !== null) throw new KeyError('the repository keeps its key in its config (repokey): give the passphrase without a key file');
    return config.key;
  }
  if (m.keyFile === null) throw new KeyError("the repository keeps no key in its config (keyfile mode, or not encrypted): give its key file with the passphrase");
  return keyBlobFromKeyfile(m.keyFile, config.id);
}

const blobHash = (blob: string): string => createHash('sha256').update(blob, 'latin1').digest('hex');

/**
 * The key the material unlocks: the one kept unlocked in it when it came from this very key blob
 * and repository (no PBKDF2), else unlocked with the passphrase. A changed blob (`borg key
 * change-passphrase`, a key file replaced) is always unlocked again, and fails as before when the
 * held passphrase no longer fits.
 */
function unlockHeld(config: RepoConfig, m: RepositoryKeyMaterial): BorgKey {
  const blob = keyBlob(config, m);
  const u = m.unlocked;
  if (u && u.blob === blobHash(blob) && u.repositoryId === config.id.toString('hex')) {
    return {
      repositoryId: Buffer.from(u.repositoryId, 'hex'),
      encKey: Buffer.from(u.encKey, 'hex'),
      encHmacKey: Buffer.from(u.encHmacKey, 'hex'),
      idKey: Buffer.from(u.idKey, 'hex'),
      tamRequired: u.tamRequired,
      ...(u.chunkSeed !== null && { chunkSeed: u.chunkSeed }),
    };
  }
  return unlockKey(blob, m.passphrase, config.id);
}

/** The key in the form the vault keeps it unlocked, bound to the key blob it came from. */
function keptUnlocked(config: RepoConfig, m: RepositoryKeyMaterial, key: BorgKey): UnlockedKey {
  return {
    blob: blobHash(keyBlob(config, m)),
    repositoryId: key.repositoryId.toString('hex'),
    encKey: key.encKey.toString('hex'),
    encHmacKey: key.encHmacKey.toString('hex'),
    idKey: key.idKey.toString('hex'),
    tamRequired: key.tamRequired,
    chunkSeed: key.chunkSeed ?? null,
  };
}

/** The repository's key, unlocked with the material; KeyError (one sentence) when it does not unlock. */
export function unlockRepositoryKey(repositoryPath: string, m: RepositoryKeyMaterial): BorgKey {
  return unlockHeld(readConfig(repositoryPath), m);
}

/** The envelope of the manifest of the last commit, from index.N and its segment; null when there is none. */
export async function readCurrentManifestEnvelope(repositoryPath: string, config: Pick<RepoConfig, 'segmentsPerDir'>): Promise<Buffer | null> {
  const txn = latestIndexTransaction(repositoryPath);
  if (txn === null) return null;
  let at;
  try {
    const index = openCommittedIndex(repositoryPath, txn);
    try {
      at = index.lookup(MANIFEST_ID);
    } finally {
      index.close();
    }
  } catch (error) {
    if (error instanceof IndexFormatError) throw new KeyError(`cannot read the repository's index: ${error.message}`);
    throw error;
  }
  if (!at) return null;
  const path = join(repositoryPath, 'data', String(Math.floor(at.segment / config.segmentsPerDir)), String(at.segment));
  let st;
  try {
    st = statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new KeyError(`the repository's manifest is in segment ${at.segment}, which is missing`);
    throw error;
  }
  const header = Buffer.alloc(9);
  const fd = openSync(path, 'r');
  try {
    if (readSync(fd, header, 0, 9, at.offset) !== 9) throw new KeyError("the repository's manifest entry is cut short");
  } finally {
    closeSync(fd);
  }
  const size = header.readUInt32LE(4);
  if (size < 41 || size > MAX_ENTRY_SIZE || at.offset + size > st.size) throw new KeyError("the repository's manifest entry is damaged");
  const file: SegmentFile = { segment: at.segment, path, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
  const { data, crcOk } = await readPutData(file, { offset: at.offset, size });
  if (!crcOk) throw new KeyError("the repository's manifest entry fails its CRC check");
  return data;
}

export interface CheckedRepositoryKey {
  readonly key: BorgKey;
  readonly mode: KeyMode;
  readonly manifest: Manifest;
  /** The material with the key kept unlocked in it: what the vault stores. */
  readonly material: RepositoryKeyMaterial;
}

/**
 * Unlocks the key and opens the current manifest with it, checking its TAM (required when the key
 * says so; a TAM present must verify). Throws KeyError with one sentence on any failure.
 */
export async function checkRepositoryKey(repositoryPath: string, m: RepositoryKeyMaterial): Promise<CheckedRepositoryKey> {
  const config = readConfig(repositoryPath);
  const envelope = await readCurrentManifestEnvelope(repositoryPath, config);
  if (!envelope) throw new KeyError('the repository has no committed manifest yet, so the key cannot be checked against it');
  const mode = objectMode(envelope);
  if (mode === null) throw new KeyError("the repository's manifest has an unknown encryption type");
  if (mode === 'none') throw new KeyError('the repository is not encrypted: borgkeep needs no key to read it');
  // Always with the passphrase here: what is stored must be what the passphrase unlocks.
  const key = unlockKey(keyBlob(config, m), m.passphrase, config.id);
  let manifest: Manifest;
  try {
    manifest = parseManifest(await openObject(envelope, mode, key), key, true);
  } catch (error) {
    throw new KeyError(`the key does not open the repository's current manifest: ${(error as Error).message}`);
  }
  if (manifest.tam === 'invalid') throw new KeyError("the repository's current manifest fails its authentication (TAM) check with this key");
  if (manifest.tam === 'missing' && key.tamRequired) throw new KeyError("the repository's current manifest has no authentication (TAM) though its key requires one");
  return { key, mode, manifest, material: { passphrase: m.passphrase, keyFile: m.keyFile, unlocked: keptUnlocked(config, m, key) } };
}

/**
 * The guard's `repositoryKey` seam over a vault: the unlocked key of a repository whose key the
 * vault holds, else null. The key kept unlocked in the entry serves while the key blob is the one
 * it came from; else borg's PBKDF2 (~20 ms) unlocks it. Either is cached per repository for as
 * long as the sealed entry and the key blob stay the same. Throws VaultLockedError when the vault is
 * sealed with a master passphrase this process lacks, and KeyError when the held material no
 * longer unlocks the key (e.g. after `borg key change-passphrase`): callers must fail closed.
 */
export function createRepositoryKeySource(vault: Vault): (repository: { readonly dirName: string }, repositoryPath: string) => BorgKey | null {
  const cache = new Map<string, { stamp: string; key: BorgKey }>();
  return (repository, repositoryPath) => {
    if (!vault.has(repository.dirName)) {
      cache.delete(repository.dirName);
      return null;
    }
    const m = vault.get(repository.dirName);
    if (!m) return null;
    const config = readConfig(repositoryPath);
    const stamp = `${config.key ?? ''}\n${m.keyFile ?? ''}\n${m.passphrase}\n${m.unlocked?.blob ?? ''}`;
    const hit = cache.get(repository.dirName);
    if (hit && hit.stamp === stamp) return hit.key;
    const key = unlockHeld(config, m);
    cache.set(repository.dirName, { stamp, key });
    return key;
  };
}
