// Writes borg's HashIndex file format for a client cache's `chunks` file (borg 1.2's ChunkIndex:
// 32-byte id -> refcount u32le, size u32le, csize u32le), as borg's _hashindex.c lays it out:
//
//   HashHeader (18 bytes, packed): "BORG_IDX" | num_entries i32le | num_buckets i32le | key_size i8 (32) | value_size i8 (12)
//   num_buckets × 44-byte buckets: key[32] | refcount | size | csize
//
// An empty bucket has 0xffffffff in its first value word (refcount), a deleted one 0xfffffffe, so a
// live refcount is at most borg's MAX_VALUE (2^32 - 1025). Open addressing with linear probing
// from u32le(id[0..4]) % num_buckets. The table gets the bucket count borg's own
// ChunkIndex(usable=N) would have (the first of borg's hash_sizes holding N at a load of 0.75),
// so borg reads it without a rebuild and grows it as it would its own.
//
// Pure: no I/O. The format's constants are hash-index.ts's (the repository index reader).

import { EMPTY, HEADER_SIZE, KEY_SIZE, MAGIC } from './hash-index.js';

const VALUE_SIZE = 12;
const BUCKET_SIZE = KEY_SIZE + VALUE_SIZE;
/** borg's _MAX_VALUE: refcounts above are the empty/deleted markers' range. */
export const CHUNK_INDEX_MAX_VALUE = 0xffffffff - 1024;
/** borg's HASH_MAX_LOAD. */
const MAX_LOAD = 0.75;

/** borg 1.2's hash_sizes (_hashindex.c): the bucket counts a table may have. */
const HASH_SIZES = [
  1031, 2053, 4099, 8209, 16411, 32771, 65537, 131101, 262147, 445649, 757607, 1287917, 2189459, 3065243, 4291319, 6007867, 8410991, 11775359,
  16485527, 23079703, 27695653, 33234787, 39881729, 47858071, 57429683, 68915617, 82698751, 99238507, 119086189, 144378011, 157223263, 173476439,
  190253911, 209915011, 230493629, 253169431, 278728861, 306647623, 337318939, 370742809, 408229973, 449387209, 493428073, 543105119, 596976533,
  657794869, 722676499, 795815791, 874066969, 962279771, 1057701643, 1164002657, 1280003147, 1407800297, 1548442699, 1703765389, 1873768367,
  2062383853,
];

export interface ChunkIndexEntry {
  readonly refcount: number;
  /** The chunk's plaintext length (before compression). */
  readonly size: number;
  /** The stored object's length (the encrypted envelope). */
  readonly csize: number;
}

/** The bucket count of borg's ChunkIndex(usable=entries): fit_size(usable / HASH_MAX_LOAD). */
export function chunkIndexBuckets(entries: number): number {
  const capacity = Math.trunc(entries / MAX_LOAD);
  return HASH_SIZES.find((s) => s >= capacity) ?? HASH_SIZES[HASH_SIZES.length - 1]!;
}

/**
 * A ChunkIndex file holding `entries` (id hex -> entry). Throws on an id that is not 32 bytes or a
 * value borg cannot hold (refcounts are clamped to MAX_VALUE, as borg's incref saturates).
 */
export function writeChunkIndex(entries: ReadonlyMap<string, ChunkIndexEntry>): Buffer {
  const buckets = chunkIndexBuckets(entries.size);
  if (entries.size > buckets * MAX_LOAD + 1) throw new Error('too many chunks for one borg chunk index');
  const out = Buffer.alloc(HEADER_SIZE + buckets * BUCKET_SIZE);
  MAGIC.copy(out, 0);
  out.writeInt32LE(entries.size, 8);
  out.writeInt32LE(buckets, 12);
  out.writeInt8(KEY_SIZE, 16);
  out.writeInt8(VALUE_SIZE, 17);
  for (let i = 0; i < buckets; i++) out.writeUInt32LE(EMPTY, HEADER_SIZE + i * BUCKET_SIZE + KEY_SIZE);
  for (const [hex, e] of entries) {
    const id = Buffer.from(hex, 'hex');
    if (id.length !== KEY_SIZE) throw new Error('a chunk id is 32 bytes');
    for (const v of [e.size, e.csize]) if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error('a chunk size does not fit borg\'s chunk index');
    if (!Number.isInteger(e.refcount) || e.refcount < 1) throw new Error('a chunk in the index has a refcount of at least 1');
    let b = id.readUInt32LE(0) % buckets;
    while (out.readUInt32LE(HEADER_SIZE + b * BUCKET_SIZE + KEY_SIZE) !== EMPTY) b = (b + 1) % buckets;
    const at = HEADER_SIZE + b * BUCKET_SIZE;
    id.copy(out, at);
    out.writeUInt32LE(Math.min(e.refcount, CHUNK_INDEX_MAX_VALUE), at + KEY_SIZE);
    out.writeUInt32LE(e.size, at + KEY_SIZE + 4);
    out.writeUInt32LE(e.csize, at + KEY_SIZE + 8);
  }
  return out;
}
