// borg's segment files (fact sheet B.3, B.4), read entry by entry: small entries many at a time
// through a 64 KiB block, big ones by a short read of their header only. Object data is read only
// when the caller asks for it (the manifest), so a structural walk over a repository of real-size
// chunks reads a few hundred bytes per object, not the objects. CRCs are
// checked for every entry whose bytes were read whole (DELETE, COMMIT, PUTs whose data was
// asked for). Never writes.

import { closeSync, openSync, read, readdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

import { crc32 } from '../native/objcheck.js';

export const SEGMENT_MAGIC = Buffer.from('BORG_SEG', 'latin1');
export const TAG_PUT = 0;
export const TAG_DELETE = 1;
export const TAG_COMMIT = 2;
/** The fixed 9 bytes of a COMMIT entry. */
export const COMMIT_ENTRY = Buffer.from('40f43c250900000002', 'hex');
const HEADER = 9;
const BLOCK_SIZE = 64 * 1024;
const SMALL_READ = 512;
const ID_HEADER = 41;
/** borg's MAX_OBJECT_SIZE: the largest entry, header included. */
export const MAX_ENTRY_SIZE = 20 * 1024 * 1024;

export interface SegmentFile {
  readonly segment: number;
  readonly path: string;
  readonly size: number;
  /** With size, the file's identity: a segment number borg reused is another file. */
  readonly mtimeMs: number;
  readonly ino: number;
}

export type SegmentEntry =
  | { readonly tag: 'put'; readonly offset: number; readonly size: number; readonly id: Buffer; readonly data: Buffer | null; readonly crcOk: boolean | null }
  | { readonly tag: 'delete'; readonly offset: number; readonly size: number; readonly id: Buffer; readonly crcOk: boolean }
  | { readonly tag: 'commit'; readonly offset: number; readonly size: number; readonly crcOk: boolean };

export interface SegmentProblem {
  readonly segment: number;
  readonly offset: number;
  readonly problem: string;
}

export interface ReadSegment {
  readonly segment: number;
  readonly entries: SegmentEntry[];
  /** The segment ends with a COMMIT entry, and nothing but valid entries precede it. */
  readonly committed: boolean;
  readonly problems: SegmentProblem[];
}

/** Segment files in borg's order (numeric directories, then numeric files); empty files count as deleted. */
export function listSegments(repoPath: string): SegmentFile[] {
  const data = join(repoPath, 'data');
  const numeric = (names: string[]) => names.filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b));
  const out: SegmentFile[] = [];
  for (const dir of numeric(readdirSync(data))) {
    let names: string[];
    try {
      names = readdirSync(join(data, dir));
    } catch {
      continue; // a file where a directory was expected: not a segment directory
    }
    for (const name of numeric(names)) {
      const path = join(data, dir, name);
      const st = statSync(path);
      if (st.isFile() && st.size > 0) out.push({ segment: Number(name), path, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
    }
  }
  return out.sort((a, b) => a.segment - b.segment);
}

/**
 * Reads a segment's entries. `wantData(id)` says which PUTs' data to read (and CRC-check).
 * A damaged entry ends the walk of this segment with a problem, as borg's own reader does.
 */
export async function readSegment(file: SegmentFile, wantData: (id: Buffer) => boolean): Promise<ReadSegment> {
  const problems: SegmentProblem[] = [];
  const entries: SegmentEntry[] = [];
  // Asynchronous reads, so a caller can walk several segments at once: on a cold page cache a
  // walk is one disk round trip per big object, and the disk serves many in parallel.
  const fh = await open(file.path, 'r');
  const readAt = async (buf: Buffer, length: number, position: number): Promise<number> => (await fh.read(buf, 0, length, position)).bytesRead;
  const problem = (offset: number, text: string) => problems.push({ segment: file.segment, offset, problem: text });
  try {
    const magic = Buffer.alloc(8);
    if ((await readAt(magic, 8, 0)) !== 8 || !magic.equals(SEGMENT_MAGIC)) {
      problem(0, 'not a segment file (bad magic)');
      return { segment: file.segment, entries, committed: false, problems };
    }
    // Reads go through one 64 KiB block: small entries are parsed many per read, and for a big
    // chunk only the block at its header is read before the walk seeks past its data.
    // After a big entry the next is likely big too: then read just enough for a header.
    const block = Buffer.alloc(BLOCK_SIZE);
    let blockStart = 0;
    let blockLength = 0;
    let readSize = BLOCK_SIZE;
    const slice = (at: number, length: number): Buffer => block.subarray(at - blockStart, Math.min(at - blockStart + length, blockLength));
    const inBlock = (at: number, length: number): boolean => at >= blockStart && at + length <= blockStart + blockLength;
    const view = async (at: number, length: number): Promise<Buffer> => {
      blockStart = at;
      blockLength = await readAt(block, Math.min(Math.max(readSize, length), file.size - at), at);
      return slice(at, length);
    };
    let offset = 8;
    while (offset < file.size) {
      if (file.size - offset < HEADER) {
        problem(offset, `${file.size - offset} trailing bytes, shorter than an entry header`);
        break;
      }
      // No promise for the many entries already in the block (most of them, for small objects).
      const header = inBlock(offset, ID_HEADER) ? slice(offset, ID_HEADER) : await view(offset, ID_HEADER);
      const got = header.length;
      const crc = header.readUInt32LE(0);
      const size = header.readUInt32LE(4);
      const tag = header[8];
      if (size < HEADER || size > MAX_ENTRY_SIZE || offset + size > file.size) {
        problem(offset, `entry size ${size} is impossible here`);
        break;
      }
      if (tag === TAG_COMMIT) {
        if (size !== HEADER) {
          problem(offset, `COMMIT entry of size ${size}`);
          break;
        }
        const crcOk = crc32(header.subarray(4, HEADER)) === crc;
        if (!crcOk) problem(offset, 'CRC mismatch in a COMMIT entry');
        entries.push({ tag: 'commit', offset, size, crcOk });
      } else if (tag === TAG_PUT || tag === TAG_DELETE) {
        if (size < ID_HEADER || got < ID_HEADER) {
          problem(offset, `${tag === TAG_PUT ? 'PUT' : 'DELETE'} entry of size ${size}`);
          break;
        }
        const id = Buffer.from(header.subarray(HEADER, ID_HEADER)); // a copy: the block is reused
        if (tag === TAG_DELETE) {
          if (size !== ID_HEADER) {
            problem(offset, `DELETE entry of size ${size}`);
            break;
          }
          const crcOk = crc32(header.subarray(4, ID_HEADER)) === crc;
          if (!crcOk) problem(offset, 'CRC mismatch in a DELETE entry');
          entries.push({ tag: 'delete', offset, size, id, crcOk });
        } else if (wantData(id)) {
          const data = Buffer.alloc(size - ID_HEADER);
          if ((await readAt(data, data.length, offset + ID_HEADER)) !== data.length) {
            problem(offset, 'PUT entry cut short');
            break;
          }
          const crcOk = crc32(data, crc32(header.subarray(4, ID_HEADER))) === crc;
          if (!crcOk) problem(offset, 'CRC mismatch in a PUT entry');
          entries.push({ tag: 'put', offset, size, id, data, crcOk });
        } else {
          entries.push({ tag: 'put', offset, size, id, data: null, crcOk: null });
        }
      } else {
        problem(offset, tag === 3 ? 'PUT2 entry (a borg 2 repository; not supported)' : `unknown tag ${tag}`);
        break;
      }
      offset += size;
      readSize = size > BLOCK_SIZE / 4 ? SMALL_READ : BLOCK_SIZE;
    }
  } finally {
    await fh.close();
  }
  const last = entries.at(-1);
  const committed =
    problems.length === 0 &&
    last?.tag === 'commit' &&
    last.offset + HEADER === file.size &&
    entries.filter((e) => e.tag === 'commit').length === 1;
  return { segment: file.segment, entries, committed, problems };
}

/** Reads (and CRC-checks) the data of one PUT entry found earlier, e.g. from a cached walk. */
export async function readPutData(file: SegmentFile, entry: { offset: number; size: number }): Promise<{ data: Buffer; crcOk: boolean }> {
  // Opening and closing need no thread of their own (a system call each); only the read, which
  // may wait for the disk, goes to the thread pool, so callers can have many in flight.
  const fd = openSync(file.path, 'r');
  try {
    const whole = Buffer.alloc(entry.size);
    const bytesRead = await new Promise<number>((resolve, reject) => read(fd, whole, 0, entry.size, entry.offset, (error, n) => (error ? reject(error) : resolve(n))));
    if (bytesRead !== entry.size) return { data: whole.subarray(ID_HEADER, bytesRead), crcOk: false };
    return { data: whole.subarray(ID_HEADER), crcOk: crc32(whole.subarray(4)) === whole.readUInt32LE(0) };
  } finally {
    closeSync(fd);
  }
}
