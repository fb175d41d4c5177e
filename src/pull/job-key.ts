// A pull job's own borg key (issue 16): a borg 1.2 repokey that shares the repository's id_key and
// chunk_seed (so the client's chunk ids and chunk boundaries are the repository's, and its
// objects deduplicate against it) but has fresh enc_key and enc_hmac_key and a random repository
// id of its own, sealed with a random passphrase exactly as borg seals a key (fact sheet C.3:
// PBKDF2-HMAC-SHA256, AES-256-CTR with a zero IV, HMAC-SHA256 of the plaintext).
//
// With it the client can write objects the server can check against their ids, but it can open
// no object of the repository: those are sealed with keys the job key does not hold.
//
// Must never: put the passphrase, or any key of the repository or the job, into a log, an error
// message or the ledger; write the job key anywhere (it lives in memory; the client gets the
// sealed blob through load_key and the passphrase through the job's private file).

import { createCipheriv, createHmac, pbkdf2Sync, randomBytes, randomInt } from 'node:crypto';

import { KeyError, unlockKey, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { metadataTamKey } from '../repository/manifest.js';
import { MsgMap, encode } from '../rpc/msgpack.js';

/** borg 1.2's PBKDF2_ITERATIONS. */
export const PBKDF2_ITERATIONS = 100_000;

/** The modes a job key can have: the repokey form of the repository's own encryption. */
export type JobKeyMode = 'repokey' | 'repokey-blake2';

export interface JobKey {
  /** The unlocked job key (repository_id is the job's own, random). */
  readonly key: BorgKey;
  readonly mode: JobKeyMode;
  /** Random, 43 characters of base64url: what BORG_PASSCOMMAND gives the client. */
  readonly passphrase: string;
  /** What `load_key` answers: the sealed key as base64 lines of 70 columns joined by "\n", as borg keeps it in a repokey config. */
  readonly blob: string;
}

/**
 * The job key's mode for a repository of `mode`: the repokey of the same MAC and id hash (a
 * keyfile repository's job still gets its key through load_key). Null for modes a job cannot
 * have: unencrypted and authenticated-only repositories would show the client its own data in
 * the clear to no purpose, and none has no id key to share.
 */
export function jobKeyModeFor(mode: KeyMode): JobKeyMode | null {
  if (mode === 'repokey' || mode === 'keyfile' || mode === 'passphrase') return 'repokey';
  if (mode === 'repokey-blake2' || mode === 'keyfile-blake2') return 'repokey-blake2';
  return null;
}

/** A fresh MAC key of the mode's shape: 32 random bytes, or for BLAKE2 64 random then 64 zero bytes (C.1). */
function freshMacKey(mode: JobKeyMode): Buffer {
  return mode === 'repokey' ? randomBytes(32) : Buffer.concat([randomBytes(64), Buffer.alloc(64)]);
}

/** borg's KeyBase._save: the inner Key map, sealed as an EncryptedKey, base64 in 70-column lines. */
export function sealKeyBlob(key: BorgKey, passphrase: string, iterations = PBKDF2_ITERATIONS): string {
  if (key.chunkSeed === undefined) throw new KeyError('the key has no chunk seed');
  // The fields and their order as borg 1.2 packs Key(...).as_dict().
  const inner = encode(
    MsgMap.of([
      ['version', 1],
      ['repository_id', key.repositoryId],
      ['enc_key', key.encKey],
      ['enc_hmac_key', key.encHmacKey],
      ['id_key', key.idKey],
      ['chunk_seed', key.chunkSeed],
      ['tam_required', key.tamRequired],
    ]),
  );
  const salt = randomBytes(32);
  const kek = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  const hash = createHmac('sha256', kek).update(inner).digest();
  const cipher = createCipheriv('aes-256-ctr', kek, Buffer.alloc(16));
  const data = Buffer.concat([cipher.update(inner), cipher.final()]);
  const outer = encode(
    MsgMap.of([
      ['version', 1],
      ['salt', salt],
      ['iterations', iterations],
      ['algorithm', Buffer.from('sha256')],
      ['hash', hash],
      ['data', data],
    ]),
  );
  // textwrap.wrap(b2a_base64(data)), joined by "\n": what load_key returns for a repokey.
  return (outer.toString('base64').match(/.{1,70}/g) ?? []).join('\n');
}

/**
 * A new job key for a repository whose unlocked key is `repositoryKey` (of `repositoryMode`).
 * Each call makes different keys, repository id and passphrase; only id_key and chunk_seed are
 * the repository's. Throws KeyError when the repository's mode or key cannot have a job key.
 */
export function createJobKey(repositoryKey: BorgKey, repositoryMode: KeyMode): JobKey {
  const mode = jobKeyModeFor(repositoryMode);
  if (!mode) throw new KeyError(`a pull job needs an encrypted repository, and this one is ${repositoryMode}`);
  if (repositoryKey.idKey.length !== (mode === 'repokey' ? 32 : 128)) throw new KeyError(`the repository's key is not a ${repositoryMode} key`);
  // borg packs the seed as a C int; a key without one (or a made-up one) would cut other chunks.
  const chunkSeed = repositoryKey.chunkSeed;
  if (chunkSeed === undefined) throw new KeyError("the repository's key has no chunk seed");
  const key: BorgKey = {
    repositoryId: randomBytes(32),
    encKey: randomBytes(32),
    encHmacKey: freshMacKey(mode),
    idKey: repositoryKey.idKey,
    tamRequired: true,
    chunkSeed,
  };
  const passphrase = randomBytes(32).toString('base64url');
  return { key, mode, passphrase, blob: sealKeyBlob(key, passphrase) };
}

/** Unlocks a job key blob (a check that borg would read it: the same code reads repository keys). */
export function unlockJobKey(blob: string, passphrase: string, repositoryId: Buffer): BorgKey {
  return unlockKey(blob.replace(/\n/g, ''), passphrase, repositoryId);
}

/** The manifest TAM key (C.8), as the manifest's reader checks it (repository/manifest.ts). */
export const manifestTamKey = (key: BorgKey, salt: Buffer): Buffer => metadataTamKey(key, salt, 'manifest');

/** A random 64-byte TAM salt, as borg's pack_and_authenticate_metadata makes one. */
export const tamSalt = (): Buffer => randomBytes(64);

/** A signed 32-bit chunk seed, for tests that make keys of their own. */
export const randomChunkSeed = (): number => randomInt(-0x80000000, 0x7fffffff);
