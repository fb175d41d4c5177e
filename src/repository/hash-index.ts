// borg's committed repository index, `index.N` (fact sheet B.6), looked up on disk.
//
// The file is an open-addressing hash table of 40-byte buckets (32-byte id, segment u32le,
// offset u32le) with linear probing from `u32le(id[0..4]) % buckets`. A lookup reads a few
// buckets with pread, so memory stays constant whether the repository holds a thousand objects
// or a hundred million. Never writes.

import { closeSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** borg's HashIndex file format (_hashindex.c), shared with chunk-index-writer.ts. */
export const MAGIC = Buffer.from('BORG_IDX', 'latin1');
export const HEADER_SIZE = 18;
export const KEY_SIZE = 32;
/** The repository index's value: segment and offset. */
const VALUE_SIZE = 8;
const BUCKET_SIZE = KEY_SIZE + VALUE_SIZE;
export const EMPTY = 0xffffffff;
const DELETED = 0xfffffffe;
/** Buckets read per pread; neighbours are usually what the next probe needs. */
const PROBE_BATCH = 8;

export interface IndexEntry {
  readonly segment: number;
  readonly offset: number;
}

export interface CommittedIndex {
  /** borg's transaction id of this index (the N of index.N). */
  readonly transactionId: number;
  readonly entries: number;
  lookup(id: Buffer): IndexEntry | undefined;
  close(): void;
}

/** The N of the highest non-empty `index.N` in the repository, as borg picks it; null if none. */
export function latestIndexTransaction(repoPath: string): number | null {
  let best: number | null = null;
  for (const name of readdirSync(repoPath)) {
    if (!name.startsWith('index.')) continue;
    const digits = name.slice(6);
    if (!/^\d+$/.test(digits)) continue;
    const n = Number(digits);
    if (best !== null && n <= best) continue;
    try {
      if (statSync(join(repoPath, name)).size > 0) best = n;
    } catch {
      // removed between readdir and stat: a commit replaced it
    }
  }
  return best;
}

export class IndexFormatError extends Error {}

/** Opens `index.N`; throws IndexFormatError when it is not a valid borg repository index. */
export function openCommittedIndex(repoPath: string, transactionId: number): CommittedIndex {
  const fd = openSync(join(repoPath, `index.${transactionId}`), 'r');
  try {
    const header = Buffer.alloc(HEADER_SIZE);
    if (readSync(fd, header, 0, HEADER_SIZE, 0) !== HEADER_SIZE || !header.subarray(0, 8).equals(MAGIC)) {
      throw new IndexFormatError(`index.${transactionId} is not a borg index`);
    }
    const entries = header.readInt32LE(8);
    const buckets = header.readInt32LE(12);
    if (header[16] !== KEY_SIZE || header[17] !== VALUE_SIZE || buckets <= 0 || entries < 0 || entries > buckets) {
      throw new IndexFormatError(`index.${transactionId} has an unexpected layout`);
    }
    if (fstatSync(fd).size !== HEADER_SIZE + buckets * BUCKET_SIZE) {
      throw new IndexFormatError(`index.${transactionId} has the wrong size for ${buckets} buckets`);
    }
    const batch = Buffer.alloc(PROBE_BATCH * BUCKET_SIZE);
    let closed = false;
    return {
      transactionId,
      entries,
      lookup(id: Buffer): IndexEntry | undefined {
        if (closed) throw new Error('index is closed');
        let bucket = id.readUInt32LE(0) % buckets;
        // At most `buckets` probes: a full table without the id must still end.
        for (let probed = 0; probed < buckets; ) {
          const count = Math.min(PROBE_BATCH, buckets - bucket);
          const got = readSync(fd, batch, 0, count * BUCKET_SIZE, HEADER_SIZE + bucket * BUCKET_SIZE);
          if (got !== count * BUCKET_SIZE) throw new IndexFormatError(`index.${transactionId} was truncated while reading`);
          for (let i = 0; i < count; i++, probed++) {
            const base = i * BUCKET_SIZE;
            const segment = batch.readUInt32LE(base + KEY_SIZE);
            if (segment === EMPTY) return undefined;
            if (segment !== DELETED && batch.compare(id, 0, KEY_SIZE, base, base + KEY_SIZE) === 0) {
              return { segment, offset: batch.readUInt32LE(base + KEY_SIZE + 4) };
            }
            if (probed + 1 >= buckets) return undefined;
          }
          bucket = (bucket + count) % buckets;
        }
        return undefined;
      },
      close() {
        if (!closed) closeSync(fd);
        closed = true;
      },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
