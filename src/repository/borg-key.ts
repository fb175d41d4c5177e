// borg 1.2 keys and object envelopes (fact sheet C.1-C.6): unlocking the encrypted key blob with
// the passphrase (PBKDF2-SHA256, AES-256-CTR, HMAC-SHA256), then opening stored objects: check
// the TYPE byte against the key, verify the MAC (HMAC-SHA256 or borg's BLAKE2b-256
// construction) in constant time, AES-CTR-decrypt, decompress. Read-only; the passphrase and the
// keys live only in memory.

import { createCipheriv, createDecipheriv, createHash, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { inflateSync } from 'node:zlib';

import { decompress as zstdDecompress } from 'fzstd';

import { MsgMap, decode, scanFrame, type MsgValue, type UnpackLimits } from '../rpc/msgpack.js';
import { lz4BlockDecompress } from './lz4.js';
import { objcheck } from '../native/objcheck.js';

export class KeyError extends Error {}
export class ObjectError extends Error {}

export type KeyMode =
  | 'keyfile'
  | 'passphrase'
  | 'none'
  | 'repokey'
  | 'keyfile-blake2'
  | 'repokey-blake2'
  | 'authenticated-blake2'
  | 'authenticated';

const MODES: Record<number, KeyMode> = {
  0x00: 'keyfile',
  0x01: 'passphrase',
  0x02: 'none',
  0x03: 'repokey',
  0x04: 'keyfile-blake2',
  0x05: 'repokey-blake2',
  0x06: 'authenticated-blake2',
  0x07: 'authenticated',
};

/** borg's MAX_DATA_SIZE bound on any decompressed object. */
export const MAX_PLAINTEXT = 20 * 1024 * 1024;
const KEY_LIMITS: UnpackLimits = { maxArrayLen: 0, maxMapLen: 10, maxStrLen: 4000, maxFrameSize: 60 * 1024 * 1024, maxDepth: 4 };

export interface BorgKey {
  readonly repositoryId: Buffer;
  readonly encKey: Buffer;
  readonly encHmacKey: Buffer;
  readonly idKey: Buffer;
  readonly tamRequired: boolean;
  /**
   * The buzhash seed (a signed 32-bit int) from the key's plaintext, as unlockKey found it. A
   * pull job's key shares it with the repository's, so the client cuts the same chunks.
   */
  readonly chunkSeed?: number;
}

/** The TYPE byte borg 1.2 writes for each mode (C.1). */
export const MODE_TYPE_BYTE: Readonly<Record<KeyMode, number>> = {
  keyfile: 0x00,
  passphrase: 0x01,
  none: 0x02,
  repokey: 0x03,
  'keyfile-blake2': 0x04,
  'repokey-blake2': 0x05,
  'authenticated-blake2': 0x06,
  authenticated: 0x07,
};

/** The mode an object was written with, from its TYPE byte. */
export function objectMode(envelope: Buffer): KeyMode | null {
  return envelope.length > 0 ? (MODES[envelope[0]] ?? null) : null;
}

export const isEncrypted = (mode: KeyMode): boolean => !['none', 'authenticated', 'authenticated-blake2'].includes(mode);
export const isBlake2 = (mode: KeyMode): boolean => mode.endsWith('blake2');

function unpack(data: Buffer, limits: UnpackLimits, what: string): MsgValue {
  const r = scanFrame(data, 0, limits);
  if (r.kind !== 'complete' || r.end !== data.length) throw new KeyError(`${what} is not valid msgpack within borg's limits`);
  return decode(data, 0, data.length);
}

function field(map: MsgValue, name: string): MsgValue | undefined {
  return map instanceof MsgMap ? map.get(name) : undefined;
}

function bytesField(map: MsgValue, name: string, what: string, lengths?: number[]): Buffer {
  const v = field(map, name);
  if (!Buffer.isBuffer(v) || (lengths && !lengths.includes(v.length))) throw new KeyError(`${what}: '${name}' is missing or has the wrong size`);
  return v;
}

/** The base64 blob of a keyfile (line 1 `BORG_KEY <repository id>`), checked against the repository id. */
export function keyBlobFromKeyfile(text: string, repositoryId: Buffer): string {
  const [first, ...rest] = text.split(/\r?\n/);
  const m = /^BORG_KEY ([0-9a-f]{64})$/i.exec(first.trim());
  if (!m) throw new KeyError("the key file does not start with 'BORG_KEY <repository id>'");
  if (!Buffer.from(m[1], 'hex').equals(repositoryId)) throw new KeyError('the key file belongs to another repository');
  return rest.join('').replace(/\s+/g, '');
}

/** The six fields of borg 1.2's EncryptedKey (item.pyx VALID_KEYS), and nothing else. */
const KEY_BLOB_FIELDS = ['algorithm', 'data', 'hash', 'iterations', 'salt', 'version'];
/** Far above the ~450 bytes of base64 borg writes for a key; the decoded map's strings are bounded by KEY_LIMITS. */
const MAX_KEY_BLOB_TEXT = 8192;

/**
 * Why `keydata` (what `save_key` carries: base64 wrapped into lines joined by "\n") is not an
 * encrypted key blob borg 1.2 could load, or null when it is. Checks the form only; whether it
 * opens with any passphrase cannot be known without one. (borg 2's argon2 blobs are not 1.2's.)
 */
export function keyBlobProblem(keydata: Buffer): string | null {
  if (keydata.length === 0 || keydata.length > MAX_KEY_BLOB_TEXT) return `its size (${keydata.length} bytes) is not that of a key`;
  const text = keydata.toString('latin1');
  if (!/^[A-Za-z0-9+/=\n]+$/.test(text)) return 'it is not base64 text';
  const b64 = text.replace(/\n/g, '');
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return 'it is not base64 text';
  let outer: MsgValue;
  try {
    outer = unpack(Buffer.from(b64, 'base64'), KEY_LIMITS, 'the key blob');
  } catch {
    return 'it is not a msgpack map';
  }
  if (!(outer instanceof MsgMap)) return 'it is not a msgpack map';
  const names = outer.entries.map(([k]) => (Buffer.isBuffer(k) ? k.toString('latin1') : '')).sort();
  if (names.join() !== KEY_BLOB_FIELDS.join()) return `its fields are not borg's (${KEY_BLOB_FIELDS.join(', ')})`;
  if (outer.get('version') !== 1) return 'its version is not 1';
  const algorithm = outer.get('algorithm');
  if (!Buffer.isBuffer(algorithm) || algorithm.toString('latin1') !== 'sha256') return "its algorithm is not 'sha256'";
  const iterations = outer.get('iterations');
  if (typeof iterations !== 'number' || !Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000) return 'its iteration count is not usable';
  const salt = outer.get('salt');
  if (!Buffer.isBuffer(salt) || salt.length !== 32) return 'its salt is not 32 bytes';
  const hash = outer.get('hash');
  if (!Buffer.isBuffer(hash) || hash.length !== 32) return 'its hash is not 32 bytes';
  const data = outer.get('data');
  // The encrypted inner key: four keys of 32 bytes or more, the chunk seed and flags, packed.
  if (!Buffer.isBuffer(data) || data.length < 128) return 'its encrypted key is too short to hold a key';
  return null;
}

/** Unlocks an encrypted key blob (base64) with the passphrase; KeyError for a wrong passphrase. */
export function unlockKey(blobBase64: string, passphrase: string, repositoryId: Buffer): BorgKey {
  const outer = unpack(Buffer.from(blobBase64, 'base64'), KEY_LIMITS, 'the key blob');
  if (field(outer, 'version') !== 1) throw new KeyError('the key blob has an unknown version');
  const algorithm = field(outer, 'algorithm');
  if (!Buffer.isBuffer(algorithm) || algorithm.toString('latin1') !== 'sha256') throw new KeyError('the key blob uses an unknown algorithm');
  const iterations = field(outer, 'iterations');
  if (typeof iterations !== 'number' || !Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000) {
    throw new KeyError('the key blob has an unusable iteration count');
  }
  const salt = bytesField(outer, 'salt', 'the key blob');
  const hash = bytesField(outer, 'hash', 'the key blob', [32]);
  const data = bytesField(outer, 'data', 'the key blob');
  const kek = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  const decipher = createDecipheriv('aes-256-ctr', kek, Buffer.alloc(16));
  const plain = Buffer.concat([decipher.update(data), decipher.final()]);
  if (!timingSafeEqual(createHmac('sha256', kek).update(plain).digest(), hash)) throw new KeyError('the passphrase is wrong');
  const inner = unpack(plain, KEY_LIMITS, 'the decrypted key');
  const key: BorgKey = {
    repositoryId: bytesField(inner, 'repository_id', 'the key', [32]),
    encKey: bytesField(inner, 'enc_key', 'the key', [32]),
    encHmacKey: bytesField(inner, 'enc_hmac_key', 'the key', [32, 128]),
    idKey: bytesField(inner, 'id_key', 'the key', [32, 128]),
    tamRequired: field(inner, 'tam_required') === true,
    chunkSeed: chunkSeedOf(field(inner, 'chunk_seed')),
  };
  if (!key.repositoryId.equals(repositoryId)) throw new KeyError("the key's repository id is not this repository's");
  return key;
}

/** The key's chunk seed; undefined when it is missing or not a 32-bit number (nothing else reads it). */
function chunkSeedOf(v: MsgValue | undefined): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0xffffffff) return undefined;
  // borg keeps it signed (it packs a C int); an unsigned form would chunk the same.
  return v > 0x7fffffff ? v - 0x100000000 : v;
}

/** A BLAKE2b-256 state of hash-wasm (init, update in parts, digest). */
export interface Blake2b256 {
  init(): unknown;
  update(data: Uint8Array): unknown;
  digest(format: 'binary'): Uint8Array;
}

/** A fresh BLAKE2b-256 state (not yet initialised). */
export async function createBlake2b256(): Promise<Blake2b256> {
  // The native checker's BLAKE2b where it was built (faster, and no WebAssembly to compile).
  const native = objcheck();
  if (native) {
    const state = native.blake2bState();
    return {
      init: () => native.blake2bUpdate(state, null),
      update: (data) => native.blake2bUpdate(state, data),
      digest: () => {
        const out = new Uint8Array(32);
        native.blake2bDigest(state, out);
        return out;
      },
    };
  }
  // Loaded on first use: the WebAssembly of hash-wasm is most of the audit's code, and only the
  // BLAKE2 modes need it.
  // (From the bundle it is loaded as CommonJS: its exports are then under `default`.)
  const mod: typeof import('hash-wasm') & { default?: typeof import('hash-wasm') } = await import('hash-wasm');
  const createBLAKE2b = mod.createBLAKE2b ?? mod.default?.createBLAKE2b;
  return (await createBLAKE2b(256)) as unknown as Blake2b256;
}

/** borg's BLAKE2b-256 construction: unkeyed BLAKE2b-256 over the parts in order (C.4, C.5). */
export async function blake2b256(...parts: Buffer[]): Promise<Buffer> {
  const h = await createBlake2b256();
  h.init();
  for (const p of parts) h.update(p);
  return Buffer.from(h.digest('binary'));
}

/** The .xz container borg's lzma compressor writes (check NONE), decompressed with a size bound. */
async function xzDecompress(data: Buffer): Promise<Buffer> {
  // Loaded only when a repository really holds lzma objects (WebAssembly, kept out of the bundle).
  const { default: xz } = await import('xz-decompress');
  const reader = new xz.XzReadableStream(new Blob([data]).stream()).getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_PLAINTEXT) throw new ObjectError('the lzma payload is too large');
      parts.push(value);
    }
  } catch (error) {
    if (error instanceof ObjectError) throw error;
    throw new ObjectError(`the lzma payload cannot be decompressed: ${(error as Error).message}`);
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(parts);
}

/** A damaged zlib or zstd payload: the library's own error, as one ObjectError sentence. */
function decompressing<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (error) {
    throw new ObjectError(`the ${what} payload cannot be decompressed: ${(error as Error).message}`);
  }
}

/**
 * Decompresses a decrypted payload by its 2-byte header (C.6); detection order as borg's. The
 * result may be a view of `payload` (stored uncompressed) or, for lz4, of `scratch` when given
 * and large enough (a caller that reuses it must be done with the result first).
 */
export async function decompressPayload(payload: Buffer, depth = 0, scratch?: Buffer): Promise<Buffer> {
  if (payload.length < 2) throw new ObjectError('the payload is shorter than its compression header');
  const [a, b] = payload;
  if (a === 0x01 && b === 0x00) return lz4BlockDecompress(payload.subarray(2), MAX_PLAINTEXT, scratch);
  if (a === 0x03 && b === 0x00) {
    const out = Buffer.from(decompressing('zstd', () => zstdDecompress(payload.subarray(2))));
    if (out.length > MAX_PLAINTEXT) throw new ObjectError('the zstd payload is too large');
    return out;
  }
  if (a === 0x00 && b === 0x00) return payload.subarray(2);
  if ((a & 0x0f) === 8 && (a * 256 + b) % 31 === 0) return decompressing('zlib', () => inflateSync(payload, { maxOutputLength: MAX_PLAINTEXT }));
  if (a === 0x02 && b === 0x00) return xzDecompress(payload.subarray(2));
  if (a === 0x04 && b === 0x00) {
    if (depth > 0 || payload.length < 6) throw new ObjectError('a malformed obfuscated payload');
    const n = payload.readUInt32BE(2);
    if (6 + n > payload.length) throw new ObjectError('an obfuscated payload runs past its end');
    return decompressPayload(payload.subarray(6, 6 + n), depth + 1, scratch);
  }
  throw new ObjectError(`unknown compression header ${a.toString(16).padStart(2, '0')} ${b.toString(16).padStart(2, '0')}`);
}

/** The TYPE byte of `envelope` against `mode` (legacy 'passphrase' objects are read as repokey, C.1). */
function checkObjectMode(envelope: Buffer, mode: KeyMode): void {
  const found = objectMode(envelope);
  const expected = mode === 'passphrase' ? 'repokey' : mode;
  if (found !== expected && !(found === 'passphrase' && expected === 'repokey')) {
    throw new ObjectError(`the object's type byte says ${found ?? `unknown (${envelope[0]})`}, the repository uses ${mode}`);
  }
}

/**
 * The compressed payload of a stored object: TYPE checked against `mode`, MAC verified, AES-CTR
 * decrypted (for unencrypted modes the payload as stored). ObjectError when it does not open.
 */
export async function decryptPayload(envelope: Buffer, mode: KeyMode, key: BorgKey | null): Promise<Buffer> {
  checkObjectMode(envelope, mode);
  if (!isEncrypted(mode)) return envelope.subarray(1);
  if (!key) throw new ObjectError('the object is encrypted and no key was given');
  if (envelope.length < 41) throw new ObjectError('the object is shorter than its envelope header');
  const payload = Buffer.allocUnsafe(envelope.length - 41);
  await decryptPayloadInto(envelope, mode, key, payload);
  return payload;
}

/**
 * Bytes per step of the in-place functions below. A whole ~2 MiB object in one cipher `update`
 * runs at a sixth of the speed of 64 KiB steps (node allocates and faults in an object-sized
 * output each time), and a slice just decrypted is still in the cache for the MAC and the copy.
 */
const SLICE = 64 * 1024;

/** An object MAC being computed: HMAC-SHA256, or borg's BLAKE2b-256 construction (key first). */
interface ObjectMac {
  update(part: Uint8Array): void;
  digest(): Buffer;
}

async function objectMac(mode: KeyMode, macKey: Buffer): Promise<ObjectMac> {
  if (!isBlake2(mode)) {
    const h = createHmac('sha256', macKey);
    return { update: (part) => void h.update(part), digest: () => h.digest() };
  }
  const h = await createBlake2b256();
  h.init();
  h.update(macKey);
  return { update: (part) => void h.update(part), digest: () => Buffer.from(h.digest('binary')) };
}

/**
 * decryptPayload of an encrypted object into `dst` (from its start; it needs envelope.length - 41
 * bytes), in slices, with no object-sized temporary: the payload's length. The MAC is checked
 * over the same slices before this returns; when it does not verify this throws ObjectError and
 * `dst` holds bytes nobody may use.
 */
export async function decryptPayloadInto(envelope: Buffer, mode: KeyMode, key: BorgKey, dst: Buffer): Promise<number> {
  checkObjectMode(envelope, mode);
  if (!isEncrypted(mode)) throw new ObjectError(`objects of a ${mode} repository are not encrypted`);
  if (envelope.length < 41) throw new ObjectError('the object is shorter than its envelope header');
  const n = envelope.length - 41;
  if (dst.length < n) throw new RangeError('the payload buffer is too small');
  const mac = await objectMac(mode, key.encHmacKey);
  mac.update(envelope.subarray(33, 41));
  const decipher = createDecipheriv('aes-256-ctr', key.encKey, Buffer.concat([Buffer.alloc(8), envelope.subarray(33, 41)]));
  for (let at = 0; at < n; at += SLICE) {
    const ct = envelope.subarray(41 + at, 41 + Math.min(n, at + SLICE));
    mac.update(ct);
    decipher.update(ct).copy(dst, at);
  }
  if (!timingSafeEqual(envelope.subarray(1, 33), mac.digest())) throw new ObjectError('the object MAC does not verify (damaged or forged)');
  return n;
}

/** Opens a stored object: TYPE, MAC, decryption, decompression. `mode` is the repository's key mode. */
export async function openObject(envelope: Buffer, mode: KeyMode, key: BorgKey | null): Promise<Buffer> {
  return decompressPayload(await decryptPayload(envelope, mode, key));
}

/** The id borg gives a plaintext (C.5): HMAC-SHA256, SHA-256 (none) or the BLAKE2b-256 construction. */
export async function objectId(mode: KeyMode, key: BorgKey | null, plain: Buffer): Promise<Buffer> {
  if (mode === 'none') return createHash('sha256').update(plain).digest();
  if (!key) throw new ObjectError(`ids of a ${mode} repository cannot be computed without its key`);
  return isBlake2(mode) ? blake2b256(key.idKey, plain) : createHmac('sha256', key.idKey).update(plain).digest();
}

/** AES blocks an object of `length` ciphertext bytes uses of the counter space (borg's num_cipher_blocks). */
export const cipherBlocks = (length: number): bigint => BigInt(Math.ceil(length / 16));

/** The counter as the 8-byte IV of an envelope; RangeError-free checks first (ObjectError). */
function ivBytes(iv: bigint, payloadLength: number): Buffer {
  if (iv < 0n || iv + cipherBlocks(payloadLength) >= 2n ** 64n) throw new ObjectError('the AES-CTR counter is out of range');
  const iv8 = Buffer.alloc(8);
  iv8.writeBigUInt64BE(iv);
  return iv8;
}

/** The TYPE byte borg 1.2 seals an object of a `mode` repository with. */
export const typeByteOf = (mode: KeyMode): number => (mode === 'passphrase' ? MODE_TYPE_BYTE.repokey : MODE_TYPE_BYTE[mode]);

/**
 * Seals a compressed payload as borg's encrypt() does (C.4): TYPE | MAC | IV | AES-256-CTR
 * ciphertext, the IV being the 64-bit AES-CTR counter `iv`. The caller owns the counter: an IV
 * may never be used twice with the same key (reserve it first, as borg's NonceManager does).
 */
export async function sealObject(payload: Buffer, mode: KeyMode, key: BorgKey, iv: bigint): Promise<Buffer> {
  const out = Buffer.allocUnsafe(sealedLength(payload.length));
  await sealObjectInto(payload, mode, key, iv, out, 0);
  return out;
}

/** Bytes sealObject makes of a payload of `payloadLength` bytes. */
export const sealedLength = (payloadLength: number): number => 41 + payloadLength;

/**
 * sealObject written into `out` at `at` (sealedLength(payload.length) bytes), in slices, with no
 * object-sized temporary.
 */
export async function sealObjectInto(payload: Buffer, mode: KeyMode, key: BorgKey, iv: bigint, out: Buffer, at: number): Promise<void> {
  if (!isEncrypted(mode)) throw new ObjectError(`objects of a ${mode} repository are not encrypted`);
  if (out.length - at < sealedLength(payload.length)) throw new RangeError('the output buffer is too small');
  const iv8 = ivBytes(iv, payload.length);
  const mac = await objectMac(mode, key.encHmacKey);
  mac.update(iv8);
  const cipher = createCipheriv('aes-256-ctr', key.encKey, Buffer.concat([Buffer.alloc(8), iv8]));
  for (let p = 0; p < payload.length; p += SLICE) {
    const ct = cipher.update(payload.subarray(p, p + SLICE));
    mac.update(ct);
    ct.copy(out, at + 41 + p);
  }
  out[at] = typeByteOf(mode);
  mac.digest().copy(out, at + 1);
  iv8.copy(out, at + 33);
}

/** The AES-CTR counter an encrypted object was sealed with (its IV). */
export function objectIv(envelope: Buffer): bigint {
  if (envelope.length < 41) throw new ObjectError('the object is shorter than its envelope header');
  return envelope.readBigUInt64BE(33);
}
