// The native object checker (native/objcheck.c), built by `npm run build` into
// dist/native/objcheck.node: what `--verify-objects` runs per object, several times faster than
// node:crypto can for borg's ~15 KB objects. Optional: when it is not there (no C compiler where
// borgkeep was built) or BORGKEEP_NATIVE=0, `objcheck()` is null and the callers use JavaScript.

import { existsSync } from 'node:fs';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Types only: segments.ts (on borg-serve's start-up path) takes its CRC from here, and must not
// load borg-key.ts and its decompressors with it (test/cli/startup-footprint.test.ts).
import type { KeyMode } from '../repository/borg-key.js';

/** A verifier's keys, held in native memory (wiped when the object is collected). */
export type NativeVerifier = { readonly __nativeVerifier: unique symbol };

/** The id hash a repository's ids are made with (C.5). */
export const ID_HASH = { sha256: 0, hmacSha256: 1, blake2b: 2 } as const;

/** The id hash of a `mode` repository; the MAC of an encrypted one is made the same way (HMAC or BLAKE2b). */
export const idHashOf = (mode: KeyMode): number => (mode === 'none' ? ID_HASH.sha256 : mode.endsWith('blake2') ? ID_HASH.blake2b : ID_HASH.hmacSha256);

/** What `check` answers (native/objcheck.c, enum CHECK_). */
export const CHECK = {
  ok: 0,
  decompress: 1,
  mac: -1,
  lz4: -2,
  lz4Full: -3,
  short: -4,
  crypto: -5,
} as const;

export interface Objcheck {
  /**
   * Keys are copied: idKey for HMAC/BLAKE2 ids, macKey and encKey for encrypted modes. With
   * `macChecked` false, check() does not check the MAC: only for an opener whose MAC key the
   * sender holds (a pull job's key), where a MAC that verifies proves nothing.
   */
  createVerifier(idHash: number, encrypted: boolean, idKey: Uint8Array | null, macKey: Uint8Array | null, encKey: Uint8Array | null, macChecked: boolean): NativeVerifier;
  /**
   * The MAC, decryption into `scratch`, lz4 into `out` and the id hash into `idOut` of one
   * envelope; a CHECK code. `info[0]` is then the payload's length (decrypted into scratch, or
   * the envelope's bytes after its TYPE byte when not encrypted); after CHECK.ok `info[1]` is the
   * plaintext's (in `out` after lz4, else after the payload's 2-byte header).
   */
  check(v: NativeVerifier, envelope: Uint8Array, scratch: Uint8Array, out: Uint8Array, idOut: Uint8Array, info: Int32Array): number;
  idHash(v: NativeVerifier, data: Uint8Array, idOut: Uint8Array): void;
  /**
   * Seals a compressed payload with the verifier's encryption and MAC keys as borg does (TYPE |
   * MAC | IV | ciphertext, 41 + payload bytes) into `out` at `at`; `iv8` is the counter, big-endian.
   */
  seal(v: NativeVerifier, typeByte: number, iv8: Uint8Array, payload: Uint8Array, out: Uint8Array, at: number): void;
  /** The output's length, -1 for a block liblz4 refuses, -2 when `dst` is too small. */
  lz4(src: Uint8Array, dst: Uint8Array): number;
  /** A BLAKE2b-256 state (borg's, unkeyed), initialised. */
  blake2bState(): NativeBlake2b;
  /** Feeds `data` to the state, or initialises it again when `data` is null. */
  blake2bUpdate(state: NativeBlake2b, data: Uint8Array | null): void;
  /** The digest of what the state was fed, into `out` (32 bytes); then the state needs initialising. */
  blake2bDigest(state: NativeBlake2b, out: Uint8Array): void;
  /** zlib's CRC-32 of `data`, continuing from `crc` (0 by default). */
  crc32(data: Uint8Array, crc?: number): number;
}

export type NativeBlake2b = { readonly __nativeBlake2b: unique symbol };

let loaded: Objcheck | null | undefined;

/** Where the build puts the module, from this file in src/ or dist/ (or the bundle in dist/cli/). */
export function objcheckPath(): string | null {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = basename(dir) === 'dist' ? join(dir, 'native', 'objcheck.node') : join(dir, 'dist', 'native', 'objcheck.node');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

/** The native checker, or null when it is not built or is switched off (BORGKEEP_NATIVE=0). */
export function objcheck(): Objcheck | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.BORGKEEP_NATIVE === '0') return loaded;
  const path = objcheckPath();
  if (!path) return loaded;
  try {
    loaded = createRequire(import.meta.url)(path) as Objcheck;
  } catch {
    // Built for another Node.js, or not loadable here: JavaScript does the same work.
    loaded = null;
  }
  return loaded;
}

let crcOf: ((data: Uint8Array, crc?: number) => number) | undefined;

/**
 * zlib's CRC-32 (of segment entries), continuing from `crc`: the native one where the module is
 * built (folding with PCLMULQDQ, several times node:zlib's speed), else node:zlib's.
 */
export function crc32(data: Uint8Array, crc = 0): number {
  crcOf ??= objcheck()?.crc32 ?? zlibCrc32;
  return crcOf(data, crc);
}
