// The check `--verify-objects` makes of every `put` before the guard forwards it: the object is
// one borg's client will read back (the repository's TYPE byte, its MAC, a payload that
// decompresses the way borg's own decompressors would), and its id is the id hash of that
// plaintext under the repository's id key (fact sheet C.1, C.4-C.6). This is what stops a hacked
// client from storing other content under a chunk id that older archives share.
//
// Pure and synchronous for borg's usual compressors (none, lz4, zstd): the guard runs it on every
// byte a backup sends. Where the native checker was built (native/objcheck.c) one call per object
// does the MAC, the decryption, lz4 and the id hash, several times faster than node:crypto can for
// borg's small objects; JavaScript then only says the sentences and decodes zstd. Without it the
// same check runs here in JavaScript, reusing its key objects, its IV and BLAKE2 state and one
// output buffer. zlib, lzma and obfuscated payloads take borg-key.ts's (async) path.
// It never throws for anything a client sends: every problem is a refusal, one sentence.

import { createDecipheriv, createHash, createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

import { Decompress as ZstdStream } from 'fzstd';

import { MAX_PLAINTEXT, MODE_TYPE_BYTE, createBlake2b256, decompressPayload, isBlake2, isEncrypted, type Blake2b256, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { MANIFEST_ID } from '../repository/manifest.js';
import { Lz4OutputFull, lz4DecompressInto } from '../repository/lz4.js';
import { CHECK, idHashOf, objcheck, type NativeVerifier, type Objcheck } from '../native/objcheck.js';

/** Why a put is refused. `id`: the content is not what the id names; `envelope`: borg could not read it back. */
export interface ObjectRefusal {
  readonly kind: 'id' | 'envelope';
  /** One sentence completing "put refused: ...", naming the object by its id's first 8 bytes. */
  readonly why: string;
}

export interface ObjectVerifier {
  readonly mode: KeyMode;
  /**
   * null when `envelope` is an object of this repository that borg reads back as content whose id
   * is `id` (the manifest, under 32 zero bytes, has no id to check: only its envelope is). A
   * promise only for the rare compressors that are decoded asynchronously (lzma, zlib, obfuscate).
   */
  verify(id: Uint8Array, envelope: Uint8Array): ObjectRefusal | null | Promise<ObjectRefusal | null>;
}

/** TYPE (1) | MAC (32) | IV (8). */
const ENVELOPE_HEADER = 41;
const MAC_END = 33;
/** How much is decrypted at a time. */
const DECRYPT_SLICE = 64 * 1024;
/** The output buffer's first size; it grows (to MAX_PLAINTEXT at most) as objects need. */
const FIRST_OUTPUT = 1024 * 1024;
/** zstd's largest block (RFC 8878 3.1.1.2.4). */
const ZSTD_MAX_BLOCK = 128 * 1024;

const idText = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, Math.min(8, id.length)).toString('hex');

/**
 * A verifier for a repository whose objects are written in `mode`, with its unlocked key (null
 * only for `none`, whose ids are plain SHA-256 and need no key). Throws when the key does not fit
 * the mode; use one verifier per session (it keeps state between calls, none of it secret-free).
 */
export async function createObjectVerifier(mode: KeyMode, key: BorgKey | null, { useNative = true }: { useNative?: boolean } = {}): Promise<ObjectVerifier> {
  if (mode !== 'none' && !key) throw new Error(`objects of a ${mode} repository cannot be verified without its key`);
  const blake2 = isBlake2(mode);
  if (key && key.idKey.length !== (blake2 ? 128 : 32)) throw new Error(`the key is not a ${mode} key`);
  const encrypted = isEncrypted(mode);
  const expectedTypes = mode === 'passphrase' || mode === 'repokey' ? [0x01, 0x03] : [MODE_TYPE_BYTE[mode]];
  // HMAC key objects are made once, not imported again for every object.
  const idKey: KeyObject | null = key && !blake2 ? createSecretKey(key.idKey) : null;
  const macKey: KeyObject | null = key && encrypted && !blake2 ? createSecretKey(key.encHmacKey) : null;
  // AES takes the raw key: node:crypto sets up a decipher from a Buffer faster (~2.5 µs) than
  // from a KeyObject (~4 µs), and small objects pay that once each.
  const encKey: Buffer | null = key && encrypted ? key.encKey : null;
  // The native checker, where it was built: then no BLAKE2 WebAssembly is loaded at all.
  const native = useNative ? objcheck() : null;
  const nativeVerifier = native
    ? native.createVerifier(idHashOf(mode), encrypted, key?.idKey ?? null, key?.encHmacKey ?? null, encKey, true)
    : null;
  // Two BLAKE2 states: the MAC and the id hash of an uncompressed payload are fed together.
  const idHasher = blake2 && !native ? await createBlake2b256() : null;
  const macHasher = blake2 && encrypted && !native ? await createBlake2b256() : null;
  const iv = Buffer.alloc(16);
  let output = Buffer.allocUnsafe(FIRST_OUTPUT);

  const blake2Digest = (h: Blake2b256): Buffer => {
    const d = h.digest('binary');
    return Buffer.from(d.buffer, d.byteOffset, d.length);
  };
  /** The MAC of an encrypted object (C.4), fed in parts: HMAC-SHA256, or BLAKE2b-256 over enc_hmac_key first. */
  const macHash = (): { update(data: Uint8Array): void; digest(): Buffer } => {
    if (macHasher) {
      macHasher.init();
      macHasher.update((key as BorgKey).encHmacKey);
      return { update: (data) => void macHasher.update(data), digest: () => blake2Digest(macHasher) };
    }
    const h = createHmac('sha256', macKey as KeyObject);
    return { update: (data) => void h.update(data), digest: () => h.digest() };
  };
  /** The id hash (C.5), fed in parts. */
  const idHash = (): { update(data: Uint8Array): void; digest(): Buffer } => {
    if (idHasher) {
      idHasher.init();
      idHasher.update((key as BorgKey).idKey);
      return { update: (data) => void idHasher.update(data), digest: () => blake2Digest(idHasher) };
    }
    const h = mode === 'none' ? createHash('sha256') : createHmac('sha256', idKey as KeyObject);
    return { update: (data) => void h.update(data), digest: () => h.digest() };
  };
  const idOf = (plain: Uint8Array): Buffer => {
    if (native) {
      const out = Buffer.alloc(32);
      native.idHash(nativeVerifier as NativeVerifier, plain, out);
      return out;
    }
    const h = idHash();
    h.update(plain);
    return h.digest();
  };
  /** The decrypted payload of the object being verified, when it is compressed (reused). */
  let input = Buffer.allocUnsafe(FIRST_OUTPUT);
  /** The output buffer, at least `size` bytes. */
  const outputOf = (size: number): Buffer => {
    if (output.length < size) output = Buffer.allocUnsafe(Math.min(MAX_PLAINTEXT + 1, Math.max(size, output.length * 2)));
    return output;
  };

  const lz4 = (block: Uint8Array): Uint8Array | string => {
    // The raw block does not say its output size: try the buffer as it is, double it when full.
    let size = Math.min(MAX_PLAINTEXT, Math.max(output.length, block.length * 4));
    for (;;) {
      const out = outputOf(size).subarray(0, size);
      try {
        return out.subarray(0, lz4DecompressInto(block, out));
      } catch (error) {
        if (!(error instanceof Lz4OutputFull)) return `its lz4 payload is not one borg can read (${(error as Error).message})`;
        if (size >= MAX_PLAINTEXT) return `its lz4 payload decompresses to more than ${MAX_PLAINTEXT} bytes`;
        size = Math.min(MAX_PLAINTEXT, size * 2);
      }
    }
  };

  const zstd = (frame: Uint8Array): Uint8Array | string => {
    const size = zstdFrameSize(frame);
    if (typeof size === 'string') return `its zstd payload is not one borg writes (${size})`;
    // fzstd's one-shot decompress() sizes its output by what the frame declares and says
    // nothing when the blocks hold more or less (libzstd, and so borg, refuses such a frame);
    // its streaming decoder hands over each block as decoded, so the sum is the true size.
    const out = outputOf(size).subarray(0, size);
    let at = 0;
    let over = false;
    try {
      new ZstdStream((block) => {
        if (at + block.length > size) {
          over = true;
          throw new Error('too much output');
        }
        out.set(block, at);
        at += block.length;
      }).push(frame, true);
    } catch (error) {
      if (over) return 'its zstd payload decompresses to more than its frame declares';
      return `its zstd payload cannot be decompressed (${(error as Error).message})`;
    }
    if (at !== size) return 'its zstd payload decompresses to less than its frame declares';
    return out;
  };

  /** The plaintext of a decrypted payload, a sentence why not, or a promise of either. */
  const decompress = (payload: Uint8Array): Uint8Array | string | Promise<Uint8Array | string> => {
    if (payload.length < 2) return 'its payload is shorter than its compression header';
    const a = payload[0];
    const b = payload[1];
    if (a === 0x00 && b === 0x00) return payload.subarray(2);
    if (a === 0x01 && b === 0x00) return lz4(payload.subarray(2));
    if (a === 0x03 && b === 0x00) return zstd(payload.subarray(2));
    const copy = Buffer.from(payload); // the async path must not see a buffer reused meanwhile
    return decompressPayload(copy).then(
      (plain) => plain,
      (error: Error) => `its payload cannot be decompressed: ${error.message}`,
    );
  };

  const judge = (id: Uint8Array, plain: Uint8Array | string, computedId?: Buffer): ObjectRefusal | null => {
    if (typeof plain === 'string') return { kind: 'envelope', why: `object ${idText(id)}…: ${plain}` };
    if (isManifest(id)) return null;
    const computed = computedId ?? idOf(plain);
    if (computed.length === id.length && computed.equals(id)) return null;
    return { kind: 'id', why: `object ${idText(id)}…: its content does not match its id (its content's id is ${computed.subarray(0, 8).toString('hex')}…)` };
  };

  const nativeId = Buffer.alloc(32);
  const nativeInfo = new Int32Array(2);

  /**
   * The same check in one native call (native/objcheck.c): MAC, decryption, lz4 and the id hash;
   * JavaScript only for the sentences and for compressors other than none and lz4.
   */
  const verifyNatively = (id: Uint8Array, envelope: Uint8Array, bad: (why: string) => ObjectRefusal): ObjectRefusal | null | Promise<ObjectRefusal | null> => {
    const n = native as Objcheck;
    if (encrypted && input.length < envelope.length) input = Buffer.allocUnsafe(Math.max(envelope.length, Math.min(input.length * 2, MAX_PLAINTEXT)));
    let size = Math.min(MAX_PLAINTEXT, output.length);
    for (;;) {
      const code = n.check(nativeVerifier as NativeVerifier, envelope, input, outputOf(size).subarray(0, size), nativeId, nativeInfo);
      const payload = (): Uint8Array => (encrypted ? input.subarray(0, nativeInfo[0]) : envelope.subarray(1));
      switch (code) {
        case CHECK.ok:
          return judge(id, nativeId, nativeId);
        case CHECK.mac:
          return bad('its MAC does not verify with the repository key');
        case CHECK.short:
          return bad(encrypted ? 'it is shorter than its envelope header' : 'its payload is shorter than its compression header');
        case CHECK.lz4Full:
          if (size >= MAX_PLAINTEXT) return bad(`its lz4 payload decompresses to more than ${MAX_PLAINTEXT} bytes`);
          size = Math.min(MAX_PLAINTEXT, size * 2);
          continue;
        case CHECK.lz4:
          // The sentence of the JavaScript decoder, which refuses the same blocks (objcheck.test.ts).
          return judge(id, lz4(payload().subarray(2)));
        case CHECK.decompress: {
          const plain = decompress(payload());
          return plain instanceof Promise ? plain.then((p) => judge(id, p)) : judge(id, plain);
        }
        default:
          throw new Error(`the native object checker failed (${code})`);
      }
    }
  };

  return {
    mode,
    verify(id, envelope) {
      const bad = (why: string): ObjectRefusal => ({ kind: 'envelope', why: `object ${idText(id)}…: ${why}` });
      if (id.length !== 32) return bad('its id is not 32 bytes');
      if (envelope.length === 0 || !expectedTypes.includes(envelope[0])) {
        return bad(`its type byte (${envelope.length ? envelope[0] : 'none'}) is not the repository's (${mode})`);
      }
      if (encrypted && envelope.length < ENVELOPE_HEADER) return bad('it is shorter than its envelope header');
      if (envelope.length < (encrypted ? ENVELOPE_HEADER : 1) + 2) return bad('its payload is shorter than its compression header');
      if (native) return verifyNatively(id, envelope, bad);
      let payload: Uint8Array;
      if (!encrypted) payload = envelope.subarray(1);
      else {
        const ciphertext = envelope.subarray(ENVELOPE_HEADER);
        iv.set(envelope.subarray(MAC_END, ENVELOPE_HEADER), 8);
        const decipher = createDecipheriv('aes-256-ctr', encKey as Buffer, iv);
        const mac = macHash();
        mac.update(envelope.subarray(MAC_END, ENVELOPE_HEADER));
        // Slice by slice, the MAC and the decryption read each slice while it is in the cache.
        // Decrypting in slices (AES-CTR has no padding and no final block) also spares V8 an
        // output of the object's size per object, whose collection cost more than decrypting.
        // An uncompressed payload goes straight into the id hash; a compressed one into a
        // buffer kept for the next object.
        const slice = (at: number): Buffer => {
          const part = ciphertext.subarray(at, at + DECRYPT_SLICE);
          mac.update(part);
          return decipher.update(part);
        };
        const macOk = (): boolean => timingSafeEqual(mac.digest(), envelope.subarray(1, MAC_END));
        const first = slice(0);
        if (first[0] === 0x00 && first[1] === 0x00) {
          const h = idHash();
          h.update(first.subarray(2));
          for (let at = DECRYPT_SLICE; at < ciphertext.length; at += DECRYPT_SLICE) h.update(slice(at));
          if (!macOk()) return bad('its MAC does not verify with the repository key');
          return judge(id, first, h.digest());
        }
        if (input.length < ciphertext.length) input = Buffer.allocUnsafe(Math.max(ciphertext.length, Math.min(input.length * 2, MAX_PLAINTEXT)));
        input.set(first, 0);
        for (let at = DECRYPT_SLICE; at < ciphertext.length; at += DECRYPT_SLICE) input.set(slice(at), at);
        if (!macOk()) return bad('its MAC does not verify with the repository key');
        payload = input.subarray(0, ciphertext.length);
      }
      const plain = decompress(payload);
      return plain instanceof Promise ? plain.then((p) => judge(id, p)) : judge(id, plain);
    },
  };
}

function isManifest(id: Uint8Array): boolean {
  return Buffer.from(id.buffer, id.byteOffset, id.length).equals(MANIFEST_ID);
}

/**
 * The content size a zstd frame declares, when the frame is one borg 1.2 writes (ZSTD_compress:
 * one frame with its content size, no dictionary, no checksum) and nothing follows it; else why
 * not. Its blocks are walked by their headers only, so trailing bytes or frames, which libzstd
 * would read differently from fzstd, are found before decoding.
 */
export function zstdFrameSize(frame: Uint8Array): number | string {
  if (frame.length < 6 || frame[0] !== 0x28 || frame[1] !== 0xb5 || frame[2] !== 0x2f || frame[3] !== 0xfd) return 'not a zstd frame';
  const fhd = frame[4];
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  if (fhd & 0x08) return 'a reserved bit is set';
  if (fhd & 0x04) return 'it has a checksum';
  if (fhd & 0x03) return 'it names a dictionary';
  let pos = 5;
  let window = 0;
  if (!singleSegment) {
    const wd = frame[pos++];
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
  }
  const fcsBytes = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  if (fcsBytes === 0) return 'it does not declare its content size';
  if (pos + fcsBytes > frame.length) return 'it is cut short';
  let size = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) size = size * 256 + frame[pos + i];
  if (fcsBytes === 2) size += 256;
  pos += fcsBytes;
  if (size > MAX_PLAINTEXT) return `it declares more than ${MAX_PLAINTEXT} bytes`;
  if (singleSegment) window = size;
  const maxBlock = Math.min(window, ZSTD_MAX_BLOCK);
  for (;;) {
    if (pos + 3 > frame.length) return 'it is cut short';
    const header = frame[pos] | (frame[pos + 1] << 8) | (frame[pos + 2] << 16);
    const type = (header >> 1) & 3;
    const blockSize = header >>> 3;
    if (type === 3) return 'it has a reserved block type';
    if (blockSize > maxBlock) return 'a block is larger than zstd allows';
    pos += 3 + (type === 1 ? 1 : blockSize);
    if (pos > frame.length) return 'it is cut short';
    if (header & 1) break;
  }
  if (pos !== frame.length) return 'bytes follow its last block';
  return size;
}
