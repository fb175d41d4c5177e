// A per-archive index of folders, so listing one folder of an archive of a million files does not
// read (decrypt, decompress, decode) the archive's whole item stream every time. Built once from
// the item stream the first time a folder of the archive is listed, kept on disk under the
// server's data directory (browse-index/REPOSITORY-ID/ARCHIVE-ID.idx, files 0600, folders 0700),
// and then answering listings by reading one folder's block of it.
//
// An archive id is the MAC of the archive's metadata, which names its item chunks: the same id is
// the same items, so an index never goes stale; one of an archive no longer in the manifest is
// removed when the repository is next listed at a newer transaction, and the total kept is capped
// (least recently used go first). What it holds is exactly what the listing shows (names, modes,
// sizes, owners, times, link targets; FolderEntry of browse.ts): never a chunk id, never key
// material. Its answers are listFolder's (browse.ts) to the byte: entries are made by the same
// entryOf, in the same order, with the same implied folders, the same "a path naming a file lists
// that one entry" and the same BrowseError sentences.
//
// Never trusted unless whole: written under a temporary name and renamed into place, with a
// SHA-256 of its directory and a CRC-32 per folder block; anything that does not check is removed
// and built again. Two first listings of one archive share one build; one build runs at a time.
// Never writes into the repository; when the data directory cannot hold an index (no space, no
// permission), listings fall back to reading the item stream, as before.
//
// File layout: 'BKFIDX01', the folder blocks (each the folder's entries as a JSON array, deflated
// and sync-flushed, then a JSON object of what finding "a path naming a file" needs, deflated), the
// directory (JSON: [typed folder, offset, length, crc32, has-a-file-of-that-name, entries, entries'
// length, their Adler-32, their deflated length]...), and a trailer (directory offset u64, directory
// length u32, SHA-256 of the directory, 'BKFIEND1'). A folder's entries go to the API as they are
// stored, inside a zlib stream of the whole answer (deflatedAnswer), when the client takes deflate.

import { isAscii } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { constants as zlibConstants, crc32, deflateRawSync, inflateRawSync } from 'node:zlib';

import { parseRepoConfig } from '../repository/repo-config.js';
import { BrowseError, itemKind, listManifestArchives, type ArchiveItem, type ArchiveReader, type ItemKind } from './archive-reader.js';
import { entryOf, kept, listFolder, normalisePath, shownText, typedForm, type FolderEntry, type FolderListing } from './browse.js';
import type { ObjectReader } from './object-reader.js';

/** What the indexes of one data directory may take on disk together, unless told otherwise. */
export const DEFAULT_MAX_INDEX_BYTES = 4 * 1024 ** 3;
/** The folder under the data directory. */
export const INDEX_FOLDER = 'browse-index';

const MAGIC = Buffer.from('BKFIDX01');
const END_MAGIC = Buffer.from('BKFIEND1');
const TRAILER = 8 + 4 + 32 + 8;
const FORMAT = 3;
/** A used index's time is moved forward (for the least-recently-used cap) at most this often. */
const TOUCH_EVERY_MS = 60_000;
/** A temporary file older than this is a build that died (a crash): removed. */
const STALE_TEMP_MS = 3600_000;
/** Directories of indexes kept parsed in memory. */
const CACHED_DIRECTORIES = 8;

const KINDS: ItemKind[] = ['file', 'directory', 'symlink', 'hardlink', 'fifo', 'chardev', 'blockdev', 'socket', 'other'];
const latin1 = (b: Buffer): string => b.toString('latin1');
/** Names of ASCII bytes only (most) are their own typed and shown forms: no decoding needed. */
const isAsciiText = (s: string): boolean => !/[^\x00-\x7f]/.test(s);
const shownName = (rawName: string): string => (isAsciiText(rawName) ? rawName : shownText(Buffer.from(rawName, 'latin1')));
const typedName = (rawName: string): string => (isAsciiText(rawName) ? rawName : typedForm(rawName));

/** An index file that does not check (cut short, damaged, another format): removed and built again. */
class IndexDamaged extends Error {}

// ---------------------------------------------------------------------------------------------
// Building: rows kept compact in an arena while the item stream is read (a million FolderEntry
// objects would take half a gigabyte of heap), then written folder by folder.

const F_IMPLIED = 1;
const F_SELFABLE = 2; // an item that is not a directory: "a path naming a file lists that one entry"

/** Byte slabs rows are appended to; a row's offset is slab * 2^32 + position. */
class Arena {
  private readonly slabs: Buffer[] = [];
  private used = 0;
  private current: Buffer | null = null;
  constructor(private readonly slabBytes = 8 * 1024 * 1024) {}

  reserve(n: number): { buf: Buffer; at: number; offset: number } {
    if (!this.current || this.used + n > this.current.length) {
      this.current = Buffer.allocUnsafe(Math.max(n, this.slabBytes));
      this.slabs.push(this.current);
      this.used = 0;
    }
    const at = this.used;
    this.used += n;
    return { buf: this.current, at, offset: (this.slabs.length - 1) * 2 ** 32 + at };
  }

  at(offset: number): { buf: Buffer; at: number } {
    return { buf: this.slabs[Math.floor(offset / 2 ** 32)]!, at: offset % 2 ** 32 };
  }
}

interface Row {
  readonly flags: number;
  readonly seq: number;
  readonly parent: number;
  /** The entry's own name as stored (bytes as latin1). */
  readonly rawName: string;
  readonly entry: Omit<FolderEntry, 'path' | 'name'>;
}

const strBytes = (s: string | null): number => (s === null ? 0 : Buffer.byteLength(s));

function writeRow(arena: Arena, flags: number, seq: number, parent: number, rawName: string, e: Omit<FolderEntry, 'path' | 'name'>): number {
  const strs = [e.mode, e.user, e.group, e.mtime, e.linkTarget];
  const n = 2 + 4 + 4 + 4 * 8 + 4 + rawName.length + strs.reduce((t, s) => t + 4 + strBytes(s), 0);
  const { buf, at, offset } = arena.reserve(n);
  let p = at;
  buf[p++] = flags;
  buf[p++] = KINDS.indexOf(e.type);
  p = buf.writeUInt32LE(seq, p);
  p = buf.writeUInt32LE(parent, p);
  for (const v of [e.uid, e.gid, e.size, e.rdev]) p = buf.writeDoubleLE(v === null ? Number.NaN : v, p);
  p = buf.writeUInt32LE(rawName.length, p);
  p += buf.write(rawName, p, 'latin1');
  for (const s of strs) {
    if (s === null) p = buf.writeUInt32LE(0xffffffff, p);
    else {
      const len = buf.write(s, p + 4, 'utf8');
      buf.writeUInt32LE(len, p);
      p += 4 + len;
    }
  }
  return offset;
}

function readRow(arena: Arena, offset: number): Row {
  const { buf, at } = arena.at(offset);
  let p = at;
  const flags = buf[p++]!;
  const type = KINDS[buf[p++]!]!;
  const seq = buf.readUInt32LE(p);
  const parent = buf.readUInt32LE(p + 4);
  p += 8;
  const num = () => {
    const v = buf.readDoubleLE(p);
    p += 8;
    return Number.isNaN(v) ? null : v;
  };
  const uid = num();
  const gid = num();
  const size = num() ?? 0;
  const rdev = num();
  const nameLen = buf.readUInt32LE(p);
  const rawName = buf.toString('latin1', p + 4, p + 4 + nameLen);
  p += 4 + nameLen;
  const str = (): string | null => {
    const len = buf.readUInt32LE(p);
    p += 4;
    if (len === 0xffffffff) return null;
    p += len;
    return buf.toString('utf8', p - len, p);
  };
  const mode = str()!;
  const user = str();
  const group = str();
  const mtime = str();
  const linkTarget = str();
  return { flags, seq, parent, rawName, entry: { type, mode, user, group, uid, gid, size, mtime, linkTarget, rdev, implied: (flags & F_IMPLIED) !== 0 } };
}

/** The entry as listFolder makes it (the same fields in the same order, so the same JSON). */
function fullEntry(row: Row, parentShown: string): FolderEntry {
  const name = shownName(row.rawName);
  const e = row.entry;
  return { name, path: parentShown === '' ? name : `${parentShown}/${name}`, type: e.type, mode: e.mode, user: e.user, group: e.group, uid: e.uid, gid: e.gid, size: e.size, mtime: e.mtime, linkTarget: e.linkTarget, rdev: e.rdev, implied: e.implied };
}

/** What a block carries beside its entries, to find "the file at this path" among them. */
interface BlockMeta {
  /** Per entry: its name as a typed path part (UTF-8 decoded), or 0 when that is its shown name. */
  t: Array<string | 0>;
  /** Per entry: its item's place in the archive's stream (the last of a path wins). */
  q: number[];
  /** Per entry: 1 when it is an item that is not a folder. */
  s: Array<0 | 1>;
  /** Items that are not folders whose path a later folder item took: [typed name, place, entry]. */
  x: Array<[string, number, FolderEntry]>;
}

/**
 * A folder's block: its entries' JSON array, deflated on its own and ended with a sync flush (so
 * the API can send it as it is inside a deflate stream of the whole answer), then its meta deflated.
 */
type DirectoryRecord = [typed: string, offset: number, length: number, crc: number, self: 0 | 1, entries: number, entriesLength: number, entriesAdler32: number, entriesDeflated: number];

/**
 * Reads the archive's items once and writes its index to `file` (through a temporary name in the
 * same folder). The entries of each folder are what listFolder would list for it.
 */
async function buildIndex(archive: ArchiveReader, file: string): Promise<void> {
  const arena = new Arena();
  const folders = new Map<string, number[]>();
  const parentIds = new Map<string, number>([['', 0]]);
  const parentRaw: string[] = [''];
  const parentTyped: string[] = [''];
  const impliedDone = new Set<string>();
  const masters = new Map<string, ArchiveItem>();
  const rowsOf = (typed: string): number[] => {
    let rows = folders.get(typed);
    if (!rows) folders.set(typed, (rows = []));
    return rows;
  };
  const idOf = (raw: string): number => {
    let id = parentIds.get(raw);
    if (id === undefined) {
      id = parentRaw.length;
      parentIds.set(raw, id);
      parentRaw.push(raw);
      parentTyped.push(typedForm(raw));
    }
    return id;
  };
  let seq = 0;
  for await (const item of archive.items()) {
    seq += 1;
    const key = latin1(item.path);
    if (item.hardlinkMaster) masters.set(key, kept(item));
    const slash = key.lastIndexOf('/');
    const parent = slash < 0 ? '' : key.slice(0, slash);
    const rawName = key.slice(slash + 1);
    const kind = itemKind(item);
    const { name: _name, path: _path, ...entry } = entryOf(item, '', masters);
    const pid = idOf(parent);
    rowsOf(parentTyped[pid]!).push(writeRow(arena, kind === 'directory' ? 0 : F_SELFABLE, seq, pid, rawName, entry));
    if (kind === 'directory') rowsOf(typedForm(key));
    // Every folder above the item holds a child on the way to it: implied unless an item of it
    // comes (before or after: listFolder lets an item replace an implied entry, never the reverse).
    for (let p = parent; p !== '' && !impliedDone.has(p); ) {
      impliedDone.add(p);
      const s = p.lastIndexOf('/');
      const up = s < 0 ? '' : p.slice(0, s);
      const upId = idOf(up);
      rowsOf(parentTyped[upId]!).push(
        writeRow(arena, F_IMPLIED, seq, upId, p.slice(s + 1), { type: 'directory', mode: 'd?????????', user: null, group: null, uid: null, gid: null, size: 0, mtime: null, linkTarget: null, rdev: null, implied: true }),
      );
      p = up;
    }
  }

  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    let pos = 0;
    const write = (b: Buffer) => {
      for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done, pos + done);
      pos += b.length;
    };
    write(MAGIC);
    const directory: DirectoryRecord[] = [];
    const selfOf = new Set<string>();
    const parentShown = new Map<number, string>();
    const shownParent = (id: number): string => {
      let s = parentShown.get(id);
      if (s === undefined) parentShown.set(id, (s = shownText(Buffer.from(parentRaw[id]!, 'latin1'))));
      return s;
    };
    for (const [typed, offsets] of folders) {
      const groups = new Map<string, { win?: Row; implied?: Row; self?: Row }>();
      for (const offset of offsets) {
        const row = readRow(arena, offset);
        const raw = parentRaw[row.parent]!;
        const childKey = raw === '' ? row.rawName : `${raw}/${row.rawName}`;
        let g = groups.get(childKey);
        if (!g) groups.set(childKey, (g = {}));
        if (row.flags & F_IMPLIED) g.implied ??= row;
        else {
          if (!g.win || row.seq > g.win.seq) g.win = row;
          if (row.flags & F_SELFABLE && (!g.self || row.seq > g.self.seq)) g.self = row;
        }
      }
      // Byte order of the stored child paths (latin1: one char per byte), as listFolder sorts.
      const keys = [...groups.keys()].sort();
      const texts: string[] = [];
      const meta: BlockMeta = { t: [], q: [], s: [], x: [] };
      for (const k of keys) {
        const g = groups.get(k)!;
        const row = (g.win ?? g.implied)!;
        const entry = fullEntry(row, shownParent(row.parent));
        texts.push(JSON.stringify(entry));
        const typed1 = typedName(row.rawName);
        meta.t.push(typed1 === entry.name ? 0 : typed1);
        meta.q.push(row.seq);
        const selfable = g.self !== undefined && g.self === g.win;
        meta.s.push(selfable ? 1 : 0);
        if (g.self && g.self !== g.win) meta.x.push([typed1, g.self.seq, fullEntry(g.self, shownParent(g.self.parent))]);
        if (g.self) {
          // Only folders need the mark (a file's own path is found through its parent anyway).
          const path = typed === '' ? typed1 : `${typed}/${typed1}`;
          if (folders.has(path)) selfOf.add(path);
        }
      }
      const plain = Buffer.from(`[${texts.join(',')}]`);
      const entriesDeflated = deflateRawSync(plain, { level: 1, finishFlush: zlibConstants.Z_SYNC_FLUSH });
      const block = Buffer.concat([entriesDeflated, deflateRawSync(Buffer.from(JSON.stringify(meta)), { level: 1 })]);
      directory.push([typed, pos, block.length, crc32(block), 0, texts.length, plain.length, adler32(plain), entriesDeflated.length]);
      write(block);
    }
    for (const record of directory) if (selfOf.has(record[0])) record[4] = 1;
    const dir = Buffer.from(JSON.stringify({ format: FORMAT, archive: archive.info.id, folders: directory }));
    const dirOffset = pos;
    write(dir);
    const trailer = Buffer.alloc(TRAILER);
    trailer.writeBigUInt64LE(BigInt(dirOffset), 0);
    trailer.writeUInt32LE(dir.length, 8);
    createHash('sha256').update(dir).digest().copy(trailer, 12);
    END_MAGIC.copy(trailer, 44);
    write(trailer);
  } catch (error) {
    closeSync(fd);
    unlinkQuietly(tmp);
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (error) {
    unlinkQuietly(tmp);
    throw error;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

interface LoadedIndex {
  readonly stamp: string;
  readonly folders: Map<string, DirectoryRecord>;
}

function readExactly(fd: number, length: number, position: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let got = 0; got < length; ) {
    const n = readSync(fd, b, got, length - got, position + got);
    if (n === 0) throw new IndexDamaged('cut short');
    got += n;
  }
  return b;
}

function loadDirectory(fd: number, archiveId: string): Map<string, DirectoryRecord> {
  const size = fstatSync(fd).size;
  if (size < MAGIC.length + TRAILER || !readExactly(fd, MAGIC.length, 0).equals(MAGIC)) throw new IndexDamaged('not an index');
  const trailer = readExactly(fd, TRAILER, size - TRAILER);
  if (!trailer.subarray(44).equals(END_MAGIC)) throw new IndexDamaged('no trailer');
  const dirOffset = Number(trailer.readBigUInt64LE(0));
  const dirLength = trailer.readUInt32LE(8);
  if (dirOffset + dirLength + TRAILER !== size) throw new IndexDamaged('wrong size');
  const dir = readExactly(fd, dirLength, dirOffset);
  if (!createHash('sha256').update(dir).digest().equals(trailer.subarray(12, 44))) throw new IndexDamaged('directory damaged');
  const parsed = JSON.parse(dir.toString('utf8')) as { format: number; archive: string; folders: DirectoryRecord[] };
  if (parsed.format !== FORMAT || parsed.archive !== archiveId) throw new IndexDamaged('another format or archive');
  const folders = new Map<string, DirectoryRecord>();
  for (const r of parsed.folders) {
    if (r[1] + r[2] > dirOffset) throw new IndexDamaged('a block beyond the blocks');
    folders.set(r[0], r);
  }
  return folders;
}

/** A folder's entries as stored: deflated (a sync-flushed raw deflate stream), with their length and Adler-32. */
export interface DeflatedEntries {
  readonly data: Buffer;
  readonly length: number;
  readonly adler32: number;
}

interface Block {
  readonly deflated: DeflatedEntries;
  entries(): string;
  meta(): BlockMeta;
}

function inflated(data: Buffer, length: number | null, finishFlush?: number): Buffer {
  try {
    // Into one buffer of the size it had (zlib's default 16 KiB pieces cost a third more for a big folder).
    return inflateRawSync(data, { chunkSize: Math.min(Math.max((length ?? data.length * 4) + 1, 1024), 256 * 1024 * 1024), ...(finishFlush !== undefined && { finishFlush }) });
  } catch {
    throw new IndexDamaged('block does not inflate');
  }
}

function readBlock(fd: number, record: DirectoryRecord): Block {
  const block = readExactly(fd, record[2], record[1]);
  if (crc32(block) !== record[3] || record[8] > block.length) throw new IndexDamaged('block damaged');
  const data = block.subarray(0, record[8]);
  return {
    deflated: { data, length: record[6], adler32: record[7] },
    entries() {
      const plain = inflated(data, record[6], zlibConstants.Z_SYNC_FLUSH);
      if (plain.length !== record[6]) throw new IndexDamaged('entries of another length');
      // Most names are ASCII, and decoding ASCII as latin1 is the same text at a fraction of the cost.
      return isAscii(plain) ? plain.toString('latin1') : plain.toString('utf8');
    },
    meta: () => JSON.parse(inflated(block.subarray(record[8]), null).toString('utf8')) as BlockMeta,
  };
}

/** The one entry of the file at typed `folder` (the last item of that path), found in its parent's block; null when none. */
function selfEntry(fd: number, parentRecord: DirectoryRecord, lastPart: string): string | null {
  const block = readBlock(fd, parentRecord);
  const meta = block.meta();
  let best: { seq: number; entry: () => FolderEntry } | null = null;
  let entries: FolderEntry[] | null = null;
  const entryAt = (i: number) => () => (entries ??= JSON.parse(block.entries()) as FolderEntry[])[i]!;
  for (let i = 0; i < meta.s.length; i++) {
    if (meta.s[i] !== 1) continue;
    const typed = meta.t[i];
    // An entry whose typed name is its shown name needs the entries to compare.
    const name = typed === 0 ? entryAt(i)().name : typed;
    if (name === lastPart && (!best || meta.q[i]! > best.seq)) best = { seq: meta.q[i]!, entry: entryAt(i) };
  }
  for (const [typed, seq, entry] of meta.x) if (typed === lastPart && (!best || seq > best.seq)) best = { seq, entry: () => entry };
  return best ? JSON.stringify(best.entry()) : null;
}

const ADLER_BASE = 65521;

/** zlib's Adler-32 of `data` (continuing from `start`). */
export function adler32(data: Buffer, start = 1): number {
  let a = start & 0xffff;
  let b = start >>> 16;
  for (let i = 0; i < data.length; ) {
    // 5552 bytes keep the sums below 2^32 (zlib's NMAX).
    const end = Math.min(data.length, i + 5552);
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= ADLER_BASE;
    b %= ADLER_BASE;
  }
  return ((b << 16) | a) >>> 0;
}

/** zlib's adler32_combine: the Adler-32 of A then B from theirs and B's length. */
export function adler32Combine(adlerA: number, adlerB: number, lengthB: number): number {
  const rem = lengthB % ADLER_BASE;
  let sum1 = adlerA & 0xffff;
  let sum2 = (rem * sum1) % ADLER_BASE;
  sum1 += (adlerB & 0xffff) + ADLER_BASE - 1;
  sum2 += (adlerA >>> 16) + (adlerB >>> 16) + ADLER_BASE - rem;
  if (sum1 >= ADLER_BASE) sum1 -= ADLER_BASE;
  if (sum1 >= ADLER_BASE) sum1 -= ADLER_BASE;
  if (sum2 >= ADLER_BASE * 2) sum2 -= ADLER_BASE * 2;
  if (sum2 >= ADLER_BASE) sum2 -= ADLER_BASE;
  return ((sum2 << 16) | sum1) >>> 0;
}

/**
 * `prefix`, the stored entries and `suffix` as one zlib stream (HTTP's Content-Encoding: deflate)
 * without inflating the entries: the prefix deflated and sync-flushed, the entries' stored
 * deflate data, the suffix deflated to the end, and the Adler-32 of all three combined.
 */
export function deflatedAnswer(prefix: string, entries: DeflatedEntries, suffix: string): Buffer {
  const pre = Buffer.from(prefix);
  const post = Buffer.from(suffix);
  const adler = adler32Combine(adler32Combine(adler32(pre), entries.adler32, entries.length), adler32(post), post.length);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32BE(adler);
  return Buffer.concat([Buffer.from([0x78, 0x01]), deflateRawSync(pre, { finishFlush: zlibConstants.Z_SYNC_FLUSH }), entries.data, deflateRawSync(post), trailer]);
}

// ---------------------------------------------------------------------------------------------

/** What a listing through the index needs: the open repository and the archive. */
export interface IndexSource {
  readonly repositoryPath: string;
  readonly objects: ObjectReader;
  readonly archive: ArchiveReader;
}

/** A listing with its entries as the JSON array text listFolder's entries serialise to. */
export interface ListingText {
  readonly folder: string;
  /** The entries' JSON array (inflated when asked). */
  entriesJson(): string;
  /** The same as stored in the index, when they come from one folder's block (for deflatedAnswer). */
  readonly deflated: DeflatedEntries | null;
}

export interface FolderIndexes {
  /** A folder's listing through the index (built first when missing), as JSON text. */
  listingText(source: IndexSource, typedFolder: string): Promise<ListingText>;
  /** The same as listFolder's FolderListing. */
  listing(source: IndexSource, typedFolder: string): Promise<FolderListing>;
  /** Builds the archive's index when it has none (nothing else). */
  ensure(source: IndexSource): Promise<void>;
  /** Indexes built by this process (for tests and the bench). */
  readonly builds: number;
}

export interface FolderIndexOptions {
  /** What all indexes under `root` may take together; the least recently used go first. */
  readonly maxBytes?: number;
  readonly now?: () => number;
}

const perRoot = new Map<string, FolderIndexes>();

/** The one FolderIndexes of a data directory in this process (so concurrent listings share builds). */
export function folderIndexesOf(dataDir: string, options: FolderIndexOptions = {}): FolderIndexes {
  const root = join(dataDir, INDEX_FOLDER);
  let found = perRoot.get(root);
  if (!found) perRoot.set(root, (found = createFolderIndexes(root, options)));
  return found;
}

/** Indexes kept under `root` (browse-index of a data directory). */
export function createFolderIndexes(root: string, options: FolderIndexOptions = {}): FolderIndexes {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_INDEX_BYTES;
  const now = options.now ?? Date.now;
  const building = new Map<string, Promise<void>>();
  const directories = new Map<string, LoadedIndex>();
  const prunedAt = new Map<string, number>();
  let queue: Promise<unknown> = Promise.resolve();
  let builds = 0;

  const repositoryId = (repositoryPath: string): string => parseRepoConfig(readFileSync(join(repositoryPath, 'config'), 'utf8')).id.toString('hex');

  function fileOf(source: IndexSource): { dir: string; file: string } {
    const dir = join(root, repositoryId(source.repositoryPath));
    return { dir, file: join(dir, `${source.archive.info.id}.idx`) };
  }

  /** Builds one at a time: a build holds the archive's rows in memory. */
  function build(source: IndexSource, dir: string, file: string): Promise<void> {
    let shared = building.get(file);
    if (shared) return shared;
    // Built already: a listing never waits behind another archive's build.
    if (existsSync(file)) return Promise.resolve();
    const run = async () => {
      if (existsSync(file)) return;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      builds += 1;
      await buildIndex(source.archive, file);
      capTotal(file);
    };
    shared = queue.then(run, run).finally(() => building.delete(file));
    queue = shared.catch(() => {});
    building.set(file, shared);
    return shared;
  }

  /** Removes the least recently used indexes beyond the cap (never `keep`), and dead temporary files. */
  function capTotal(keep: string): void {
    const files: Array<{ path: string; size: number; mtime: number }> = [];
    for (const repo of safeReaddir(root)) {
      const dir = join(root, repo);
      for (const name of safeReaddir(dir)) {
        const path = join(dir, name);
        let st;
        try {
          st = statSync(path);
        } catch {
          continue;
        }
        if (name.includes('.tmp-')) {
          if (now() - st.mtimeMs > STALE_TEMP_MS) unlinkQuietly(path);
        } else if (name.endsWith('.idx')) files.push({ path, size: st.size, mtime: st.mtimeMs });
      }
    }
    let total = files.reduce((n, f) => n + f.size, 0);
    for (const f of files.sort((a, b) => a.mtime - b.mtime)) {
      if (total <= maxBytes) break;
      if (f.path === keep || building.has(f.path)) continue;
      unlinkQuietly(f.path);
      directories.delete(f.path);
      total -= f.size;
    }
  }

  /** Drops the indexes of archives the repository's manifest no longer lists (once per newer transaction). */
  function prune(source: IndexSource, dir: string): void {
    const last = prunedAt.get(dir);
    if (last !== undefined && last >= source.objects.transactionId) return;
    prunedAt.set(dir, source.objects.transactionId);
    const ids = new Set(listManifestArchives(source.objects).map((a) => a.id));
    for (const name of safeReaddir(dir)) {
      if (!name.endsWith('.idx') || ids.has(name.slice(0, -'.idx'.length))) continue;
      const path = join(dir, name);
      if (building.has(path)) continue;
      unlinkQuietly(path);
      directories.delete(path);
    }
  }

  function answer(file: string, archive: ArchiveReader, folder: string): ListingText {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new IndexDamaged('gone');
      throw error;
    }
    try {
      const st = fstatSync(fd);
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      let loaded = directories.get(file);
      if (!loaded || loaded.stamp !== stamp) {
        loaded = { stamp, folders: loadDirectory(fd, archive.info.id) };
        directories.delete(file);
        directories.set(file, loaded);
        if (directories.size > CACHED_DIRECTORIES) directories.delete(directories.keys().next().value!);
      }
      if (now() - st.mtimeMs > TOUCH_EVERY_MS) {
        try {
          utimesSync(file, new Date(now()), new Date(now()));
        } catch {
          // Only the cap's order suffers.
        }
      }
      const record = loaded.folders.get(folder);
      const whole = (r: DirectoryRecord): ListingText => {
        const block = readBlock(fd, r);
        return { folder, entriesJson: () => block.entries(), deflated: block.deflated };
      };
      const text = (json: string): ListingText => ({ folder, entriesJson: () => json, deflated: null });
      if (record && record[4] === 0) return whole(record);
      if (folder !== '') {
        const s = folder.lastIndexOf('/');
        const parent = loaded.folders.get(s < 0 ? '' : folder.slice(0, s));
        const self = parent ? selfEntry(fd, parent, folder.slice(s + 1)) : null;
        if (self !== null) return text(`[${self}]`);
      }
      if (record) return whole(record);
      if (folder === '') return text('[]');
      throw new BrowseError(`archive '${archive.info.name}' has nothing at '/${folder}'`);
    } catch (error) {
      if (error instanceof SyntaxError) throw new IndexDamaged('not JSON');
      throw error;
    } finally {
      closeSync(fd);
    }
  }

  async function listingText(source: IndexSource, typedFolder: string): Promise<ListingText> {
    const folder = normalisePath(typedFolder);
    try {
      const { dir, file } = fileOf(source);
      prune(source, dir);
      for (let attempt = 0; ; attempt++) {
        await build(source, dir, file);
        try {
          return answer(file, source.archive, folder);
        } catch (error) {
          if (!(error instanceof IndexDamaged) || attempt > 0) throw error;
          // Not whole (a crash, a damaged disk, another version): never trusted, built again.
          unlinkQuietly(file);
          directories.delete(file);
        }
      }
    } catch (error) {
      if (error instanceof BrowseError) throw error;
      // The data directory cannot hold an index (no space, no permission): read the stream.
      const listing = await listFolder(source.archive, folder);
      const json = JSON.stringify(listing.entries);
      return { folder: listing.folder, entriesJson: () => json, deflated: null };
    }
  }

  return {
    listingText,
    async listing(source, typedFolder) {
      const { folder, entriesJson } = await listingText(source, typedFolder);
      return { folder, entries: JSON.parse(entriesJson()) as FolderEntry[] };
    },
    async ensure(source) {
      const { dir, file } = fileOf(source);
      await build(source, dir, file);
    },
    get builds() {
      return builds;
    },
  };
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
