// For tests: borg segment entries written by hand (fact sheet B.4), to build repositories with
// exactly the history a test needs, damage included.

import { crc32 } from 'node:zlib';

import { COMMIT_ENTRY, SEGMENT_MAGIC, TAG_DELETE, TAG_PUT } from './segments.js';

/** One entry: crc32, size, tag, [id], [data]. */
export function segmentEntry(tag: number, id: Buffer | null, data = Buffer.alloc(0)): Buffer {
  const body = Buffer.concat([Buffer.alloc(5), id ?? Buffer.alloc(0), data]);
  body.writeUInt32LE(body.length + 4, 0);
  body[4] = tag;
  const out = Buffer.concat([Buffer.alloc(4), body]);
  out.writeUInt32LE(crc32(body), 0);
  return out;
}

/** A 32-byte object id made of one repeated byte. */
export const objectId = (n: number): Buffer => Buffer.alloc(32, n);
export const put = (id: Buffer, data: Buffer | string = Buffer.alloc(16)): Buffer => segmentEntry(TAG_PUT, id, Buffer.from(data));
export const del = (id: Buffer): Buffer => segmentEntry(TAG_DELETE, id);
/** A whole committed segment holding `entries`. */
export const committedSegment = (...entries: Buffer[]): Buffer => Buffer.concat([SEGMENT_MAGIC, ...entries, COMMIT_ENTRY]);
