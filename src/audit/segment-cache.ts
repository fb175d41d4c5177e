// What the audit learnt from each segment file, kept between audits. borg never changes a segment
// of a committed transaction (it writes new ones and deletes whole old ones), so a segment whose
// file is the same one (number, size, mtime, inode) need not be read again: a daily audit reads
// only what was written since the last one. Object data is never cached; the manifest envelopes a
// full audit needs are read again from the segment (one read each). Only segments of committed
// transactions with no damage are cached. A cache that cannot be read is ignored, never trusted.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import type { ReadSegment, SegmentEntry, SegmentFile } from '../repository/segments.js';

const MAGIC = Buffer.from('BKSEGC01', 'latin1');
const TAGS = ['put', 'delete', 'commit'] as const;

interface Identity {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
}

export interface SegmentCache {
  get(file: SegmentFile): ReadSegment | undefined;
  set(file: SegmentFile, segment: ReadSegment): void;
  /** Keeps exactly the given segments (the ones still part of the history) and writes the file. */
  save(keep: readonly SegmentFile[]): void;
}

const identity = (file: SegmentFile): Identity => ({ size: file.size, mtimeMs: file.mtimeMs, ino: file.ino });

function encode(records: Map<number, { id: Identity; seg: ReadSegment }>): Buffer {
  const parts: Buffer[] = [MAGIC];
  for (const [segment, { id, seg }] of records) {
    const head = Buffer.alloc(4 + 8 + 8 + 8 + 4);
    head.writeUInt32LE(segment, 0);
    head.writeDoubleLE(id.size, 4);
    head.writeDoubleLE(id.mtimeMs, 12);
    head.writeDoubleLE(id.ino, 20);
    head.writeUInt32LE(seg.entries.length, 28);
    parts.push(head);
    for (const e of seg.entries) {
      const rec = Buffer.alloc(1 + 4 + 4 + 32);
      rec[0] = TAGS.indexOf(e.tag);
      rec.writeUInt32LE(e.offset, 1);
      rec.writeUInt32LE(e.size, 5);
      if (e.tag !== 'commit') e.id.copy(rec, 9);
      parts.push(rec);
    }
  }
  return Buffer.concat(parts);
}

function decodeCache(buf: Buffer): Map<number, { id: Identity; seg: ReadSegment }> {
  const out = new Map<number, { id: Identity; seg: ReadSegment }>();
  if (!buf.subarray(0, 8).equals(MAGIC)) return out;
  let p = 8;
  while (p + 32 <= buf.length) {
    const segment = buf.readUInt32LE(p);
    const id = { size: buf.readDoubleLE(p + 4), mtimeMs: buf.readDoubleLE(p + 12), ino: buf.readDoubleLE(p + 20) };
    const count = buf.readUInt32LE(p + 28);
    p += 32;
    if (p + count * 41 > buf.length) throw new Error('the audit cache is cut short');
    const entries: SegmentEntry[] = [];
    for (let i = 0; i < count; i++, p += 41) {
      const tag = TAGS[buf[p]];
      const offset = buf.readUInt32LE(p + 1);
      const size = buf.readUInt32LE(p + 5);
      if (tag === 'commit') entries.push({ tag, offset, size, crcOk: true });
      // Ids are views into the cache file's buffer, which lives as long as the cache.
      else if (tag === 'delete') entries.push({ tag, offset, size, id: buf.subarray(p + 9, p + 41), crcOk: true });
      else if (tag === 'put') entries.push({ tag, offset, size, id: buf.subarray(p + 9, p + 41), data: null, crcOk: null });
      else throw new Error('the audit cache holds an unknown tag');
    }
    out.set(segment, { id, seg: { segment, entries, committed: entries.at(-1)?.tag === 'commit', problems: [] } });
  }
  return out;
}

/** The cache kept in `path`; a missing or unreadable file starts empty. */
export function openSegmentCache(path: string): SegmentCache {
  let records = new Map<number, { id: Identity; seg: ReadSegment }>();
  try {
    records = decodeCache(readFileSync(path));
  } catch {
    records = new Map();
  }
  return {
    get(file) {
      const r = records.get(file.segment);
      if (!r) return undefined;
      const now = identity(file);
      return now.size === r.id.size && now.mtimeMs === r.id.mtimeMs && now.ino === r.id.ino ? r.seg : undefined;
    },
    set(file, seg) {
      if (seg.problems.length === 0) records.set(file.segment, { id: identity(file), seg });
    },
    save(keep) {
      const wanted = new Set(keep.map((f) => f.segment));
      for (const n of [...records.keys()]) if (!wanted.has(n)) records.delete(n);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, encode(records), { mode: 0o600 });
      renameSync(tmp, path);
    },
  };
}
