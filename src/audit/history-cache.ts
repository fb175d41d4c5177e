// What the audit learnt from a repository's segment files, kept between audits so a daily audit
// reads only what was written since the last one. borg never changes a segment of a committed
// transaction (it writes new ones and deletes whole old ones), so a segment whose file is the
// same one (number, size, mtime, inode) need not be read again. Two files per repository:
//
// - `<base>.history`, the checkpoint: the walk's state (every transaction's summary and the live
//   objects) after a run of segments. While that run is unchanged, an audit starts from it and
//   reads only later segments; nothing else of the cache is even loaded.
// - `<base>.audit`, the entries of each committed segment: after a compaction or a rollback
//   changed the run, the walk starts over from the first segment but reads again only the
//   segments that changed. New segments are appended; the file is rewritten when such a walk
//   drops segments that are gone.
//
// Object data is never cached; manifests are read again from their segments when needed (with
// their CRC checked). Only segments of committed transactions with no damage are cached. A cache
// that cannot be read is ignored, never trusted, and a broken one is replaced by the next audit.

import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import type { ReadSegment, SegmentEntry, SegmentFile } from '../repository/segments.js';
import type { HistoryFold } from './history.js';

const SEGMENTS_MAGIC = Buffer.from('BKSEGC01', 'latin1');
const CHECKPOINT_MAGIC = Buffer.from('BKHIST01', 'latin1');
const TAGS = ['put', 'delete', 'commit'] as const;
const ID_BYTES = 32;
/** A live object in the checkpoint: its id and the transaction that put it (u32). */
const LIVE_RECORD = ID_BYTES + 4;

type Identity = readonly [segment: number, size: number, mtimeMs: number, ino: number];
const identity = (f: SegmentFile): Identity => [f.segment, f.size, f.mtimeMs, f.ino];
const sameIdentity = (a: Identity, b: Identity): boolean => a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];

export interface SegmentCache {
  get(file: SegmentFile): ReadSegment | undefined;
  set(file: SegmentFile, segment: ReadSegment): void;
  /** Writes what was learnt; drops segments not in `keep` when the whole cache was read. */
  save(keep: readonly SegmentFile[]): void;
}

export interface HistoryCheckpoint {
  /** The run of segments it covers, from the first: each must be unchanged for it to hold. */
  readonly segments: readonly Identity[];
  readonly transactions: HistoryFold['transactions'];
  readonly expectedNext: number;
  readonly lastGap: number | null;
  /** The live objects, decoded on demand (only a walk with new segments needs them). */
  live(): Map<string, number>;
}

export interface HistoryCache {
  readonly segments: SegmentCache;
  /** The checkpoint, if it covers a run of segments that `files` still starts with, unchanged. */
  checkpoint(files: readonly SegmentFile[]): HistoryCheckpoint | null;
  saveCheckpoint(covered: readonly SegmentFile[], fold: HistoryFold): void;
}

function writeAtomically(path: string, data: Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}

function encodeSegments(records: Iterable<{ id: Identity; seg: ReadSegment }>): Buffer {
  const parts: Buffer[] = [];
  for (const { id, seg } of records) {
    const head = Buffer.alloc(4 + 8 + 8 + 8 + 4);
    head.writeUInt32LE(id[0], 0);
    head.writeDoubleLE(id[1], 4);
    head.writeDoubleLE(id[2], 12);
    head.writeDoubleLE(id[3], 20);
    head.writeUInt32LE(seg.entries.length, 28);
    parts.push(head);
    for (const e of seg.entries) {
      const rec = Buffer.alloc(1 + 4 + 4 + ID_BYTES);
      rec[0] = TAGS.indexOf(e.tag);
      rec.writeUInt32LE(e.offset, 1);
      rec.writeUInt32LE(e.size, 5);
      if (e.tag !== 'commit') e.id.copy(rec, 9);
      parts.push(rec);
    }
  }
  return Buffer.concat(parts);
}

function decodeSegments(buf: Buffer): Map<number, { id: Identity; seg: ReadSegment }> {
  const out = new Map<number, { id: Identity; seg: ReadSegment }>();
  if (!buf.subarray(0, 8).equals(SEGMENTS_MAGIC)) throw new Error('not an audit cache');
  let p = 8;
  while (p + 32 <= buf.length) {
    const segment = buf.readUInt32LE(p);
    const id: Identity = [segment, buf.readDoubleLE(p + 4), buf.readDoubleLE(p + 12), buf.readDoubleLE(p + 20)];
    const count = buf.readUInt32LE(p + 28);
    p += 32;
    if (p + count * 41 > buf.length) throw new Error('the audit cache is cut short');
    const entries: SegmentEntry[] = [];
    for (let i = 0; i < count; i++, p += 41) {
      const tag = TAGS[buf[p]];
      const offset = buf.readUInt32LE(p + 1);
      const size = buf.readUInt32LE(p + 5);
      // Ids are views into the cache file's buffer, which lives as long as the cache.
      if (tag === 'commit') entries.push({ tag, offset, size, crcOk: true });
      else if (tag === 'delete') entries.push({ tag, offset, size, id: buf.subarray(p + 9, p + 41), crcOk: true });
      else if (tag === 'put') entries.push({ tag, offset, size, id: buf.subarray(p + 9, p + 41), data: null, crcOk: null });
      else throw new Error('the audit cache holds an unknown tag');
    }
    // A segment appended again (a later audit read it anew) replaces the earlier record.
    out.set(segment, { id, seg: { segment, entries, committed: entries.at(-1)?.tag === 'commit', problems: [] } });
  }
  if (p !== buf.length) throw new Error('the audit cache is cut short');
  return out;
}

function startsWithMagic(path: string, magic: Buffer): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(magic.length);
      return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(magic);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** The segment cache kept in `path`, read only when first asked; a missing or unreadable file starts empty. */
function openSegmentCache(path: string): SegmentCache {
  let records: Map<number, { id: Identity; seg: ReadSegment }> | null = null;
  const fresh = new Map<number, { id: Identity; seg: ReadSegment }>();
  const all = (): Map<number, { id: Identity; seg: ReadSegment }> => {
    if (!records) {
      try {
        records = decodeSegments(readFileSync(path));
      } catch {
        records = new Map(); // replaced by the next save
      }
    }
    return records;
  };
  return {
    get(file) {
      const r = all().get(file.segment);
      return r && sameIdentity(r.id, identity(file)) ? r.seg : undefined;
    },
    set(file, seg) {
      if (seg.problems.length === 0) fresh.set(file.segment, { id: identity(file), seg });
    },
    save(keep) {
      if (records === null) {
        if (fresh.size === 0) return;
        // Never read (the walk started from a checkpoint): add the new segments to the end.
        if (startsWithMagic(path, SEGMENTS_MAGIC)) {
          appendFileSync(path, encodeSegments(fresh.values()));
          return;
        }
        records = new Map();
      }
      const merged = new Map(records);
      for (const [n, r] of fresh) merged.set(n, r);
      const wanted = new Set(keep.map((f) => f.segment));
      for (const n of [...merged.keys()]) if (!wanted.has(n)) merged.delete(n);
      writeAtomically(path, Buffer.concat([SEGMENTS_MAGIC, encodeSegments(merged.values())]));
    },
  };
}

interface CheckpointHeader {
  segments: Identity[];
  transactions: HistoryFold['transactions'];
  expectedNext: number;
  lastGap: number | null;
  liveCount: number;
}

function readCheckpoint(path: string): HistoryCheckpoint | null {
  // The header only: the live objects (most of the file) are read when a walk needs them.
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(12);
    if (readSync(fd, head, 0, 12, 0) !== 12 || !head.subarray(0, 8).equals(CHECKPOINT_MAGIC)) return null;
    const headerLength = head.readUInt32LE(8);
    const json = Buffer.alloc(headerLength);
    if (readSync(fd, json, 0, headerLength, 12) !== headerLength) return null;
    const header = JSON.parse(json.toString('utf8')) as CheckpointHeader;
    const liveStart = 12 + headerLength;
    if (!Array.isArray(header.segments) || !Array.isArray(header.transactions) || fstatSync(fd).size - liveStart !== header.liveCount * LIVE_RECORD) return null;
    return {
      segments: header.segments,
      transactions: header.transactions,
      expectedNext: header.expectedNext,
      lastGap: header.lastGap,
      live() {
        const whole = readFileSync(path);
        // Another audit may have replaced the file since: then its header is another one.
        if (!whole.subarray(12, liveStart).equals(json) || whole.length - liveStart !== header.liveCount * LIVE_RECORD) {
          throw new Error('the audit cache changed while it was read; run the audit again');
        }
        const buf = whole.subarray(liveStart);
        const live = new Map<string, number>();
        for (let p = 0; p < buf.length; p += LIVE_RECORD) live.set(buf.toString('latin1', p, p + ID_BYTES), buf.readUInt32LE(p + ID_BYTES));
        return live;
      },
    };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function encodeCheckpoint(covered: readonly SegmentFile[], fold: HistoryFold): Buffer {
  const header: CheckpointHeader = {
    segments: covered.map(identity),
    transactions: fold.transactions,
    expectedNext: fold.expectedNext,
    lastGap: fold.lastGap,
    liveCount: fold.live.size,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.allocUnsafe(12 + json.length + fold.live.size * LIVE_RECORD);
  CHECKPOINT_MAGIC.copy(out, 0);
  out.writeUInt32LE(json.length, 8);
  json.copy(out, 12);
  let p = 12 + json.length;
  for (const [id, txn] of fold.live) {
    out.write(id, p, ID_BYTES, 'latin1');
    out.writeUInt32LE(txn, p + ID_BYTES);
    p += LIVE_RECORD;
  }
  return out;
}

/** The audit cache of one repository, in `<base>.history` and `<base>.audit`. */
export function openHistoryCache(base: string): HistoryCache {
  const checkpointPath = `${base}.history`;
  return {
    segments: openSegmentCache(`${base}.audit`),
    checkpoint(files) {
      const cp = readCheckpoint(checkpointPath);
      if (!cp || cp.segments.length > files.length) return null;
      for (let i = 0; i < cp.segments.length; i++) if (!sameIdentity(cp.segments[i], identity(files[i]))) return null;
      return cp;
    },
    saveCheckpoint(covered, fold) {
      writeAtomically(checkpointPath, encodeCheckpoint(covered, fold));
    },
  };
}
