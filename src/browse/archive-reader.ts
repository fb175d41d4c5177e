// borg 1.2 archives read through an ObjectReader (object-reader.ts): an archive by name from the
// committed manifest, its metadata object (fact sheet C.9: name, items, cmdline, hostname,
// username, time, time_end, comment, chunker_params, size/csize/nfiles), its TAM checked when it
// has one (borg >= 1.2.5 writes it), and its items as an async iterator over the msgpack stream
// the item-metadata chunks hold (an item may straddle two chunks; only one chunk and the
// leftover of the one before are in memory at a time).
//
// This is a STABLE interface: `borgkeep ls/restore/diff` and `borgkeep verify` ("every chunk
// referenced by the new archives exists": itemsChunkIds plus itemChunkIds of every item) build on
// it. Read-only; errors are BrowseError sentences without a server path or key material.

import { createHmac, timingSafeEqual } from 'node:crypto';

import { MsgMap, decode, scanFrame, type MsgValue, type UnpackLimits } from '../rpc/msgpack.js';
import { ManifestError, archiveEntries, archiveFromEntry, metadataTamKey, type ManifestArchive } from '../repository/manifest.js';
import type { BorgKey } from '../repository/borg-key.js';
import { BrowseError, type ObjectReader } from './object-reader.js';

export { BrowseError, ObjectMissingError } from './object-reader.js';

/** One entry of an item's chunk list: the chunk id, its plaintext size and its stored size. */
export interface ChunkRef {
  readonly id: Buffer;
  readonly size: number;
  readonly csize: number;
}

export interface ArchiveInfo {
  readonly name: string;
  /** The archive metadata object's id, hex. */
  readonly id: string;
  /** The client's start time as borg writes it (ISO 8601, UTC, no zone). */
  readonly time: string;
  readonly timeEnd: string | null;
  readonly hostname: string | null;
  readonly username: string | null;
  /** The command line of `borg create` (each argument as written, invalid UTF-8 as U+FFFD). */
  readonly cmdline: string[];
  readonly comment: string | null;
  /** borg's chunker_params as written (e.g. ["buzhash", 19, 23, 21, 4095]), or null. */
  readonly chunkerParams: ReadonlyArray<string | number> | null;
  /** Totals borg 1.2 stores in the metadata (original size, compressed size, files); null when absent. */
  readonly stats: { readonly size: number; readonly csize: number; readonly nfiles: number } | null;
  /** Ids of the item-metadata chunks, in stream order. */
  readonly itemsChunkIds: readonly Buffer[];
  /** 'ok': its TAM verified; 'missing': written without one (borg < 1.2.5); 'unchecked': an unencrypted repository. */
  readonly tam: 'ok' | 'missing' | 'unchecked';
}

export type ItemKind = 'file' | 'directory' | 'symlink' | 'hardlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket' | 'other';

/** One archive item (borg 1.2 ITEM_KEYS); text fields decoded, the raw map kept. */
export interface ArchiveItem {
  /** The path as stored: bytes, no leading slash. */
  readonly path: Buffer;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly user: string | null;
  readonly group: string | null;
  /** Nanoseconds since the epoch. */
  readonly mtimeNs: bigint;
  readonly atimeNs: bigint | null;
  readonly ctimeNs: bigint | null;
  /** The size borg stored for the item (regular files), else null. */
  readonly size: number | null;
  /** The file's chunks; null for items without content (and hardlinks after the first). */
  readonly chunks: readonly ChunkRef[] | null;
  /** Symlink target, or the path of the first link of a hardlinked file (kind 'hardlink'). */
  readonly source: Buffer | null;
  /** This item is the first of a set of hardlinks (the one holding the chunks). */
  readonly hardlinkMaster: boolean;
  readonly rdev: number | null;
  /** Checkpoint part number: items of a `.borg_part_N` file. */
  readonly part: number | null;
  /** The item's map as decoded (fields this interface does not name: xattrs, acls, bsdflags...). */
  readonly raw: MsgMap;
}

export interface ArchiveReader {
  readonly info: ArchiveInfo;
  /** The archive's items in stream order; each call starts a new read. */
  items(): AsyncIterableIterator<ArchiveItem>;
}

// What an item stream may hold: borg's items are maps of ~20 keys, chunk lists can be long
// (a 20 MiB object of chunk refs), strings up to an object's size.
const ITEM_LIMITS: UnpackLimits = { maxArrayLen: 2_000_000, maxMapLen: 10_000, maxStrLen: 20 * 1024 * 1024, maxFrameSize: 60 * 1024 * 1024, maxDepth: 8 };
const META_LIMITS: UnpackLimits = { maxArrayLen: 10_000_000, maxMapLen: 1000, maxStrLen: 20 * 1024 * 1024, maxFrameSize: 60 * 1024 * 1024, maxDepth: 8 };

const S_IFMT = 0o170000;

/** The kind of an item from its mode (and `source`: a file, device or fifo with a source is a later hardlink). */
export function itemKind(item: Pick<ArchiveItem, 'mode' | 'source'>): ItemKind {
  switch (item.mode & S_IFMT) {
    case 0o100000:
      return item.source ? 'hardlink' : 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return item.source ? 'hardlink' : 'fifo';
    case 0o020000:
      return item.source ? 'hardlink' : 'chardev';
    case 0o060000:
      return item.source ? 'hardlink' : 'blockdev';
    case 0o140000:
      return 'socket';
    default:
      return 'other';
  }
}

/** The chunk ids an item references (none for directories, links, devices, later hardlinks). */
export function itemChunkIds(item: Pick<ArchiveItem, 'chunks'>): Buffer[] {
  return item.chunks ? item.chunks.map((c) => c.id) : [];
}

/** The archives of the reader's committed manifest, in manifest order. */
export function listManifestArchives(objects: ObjectReader): ManifestArchive[] {
  try {
    return [...archiveEntries(objects.manifest.archivesBody)].map(([n, e]) => archiveFromEntry(n, e));
  } catch (error) {
    if (error instanceof ManifestError) throw new BrowseError(`the repository's archive list cannot be read: ${error.message}`);
    throw error;
  }
}

const text = (v: MsgValue | undefined): string | null => (Buffer.isBuffer(v) ? v.toString('utf8') : null);
const int = (v: MsgValue | undefined): number | null => (typeof v === 'number' && Number.isInteger(v) ? v : typeof v === 'bigint' ? Number(v) : null);
const ns = (v: MsgValue | undefined): bigint | null => (typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : typeof v === 'bigint' ? v : null);

/** An archive metadata object's TAM (borg >= 1.2.5, key.pack_and_authenticate_metadata with context 'archive'). */
function archiveTam(plain: Buffer, meta: MsgMap, key: BorgKey | null, name: string): ArchiveInfo['tam'] {
  const tam = meta.get('tam');
  if (tam === undefined) return 'missing';
  if (!key) return 'unchecked';
  const hmac = tam instanceof MsgMap ? tam.get('hmac') : undefined;
  const salt = tam instanceof MsgMap ? tam.get('salt') : undefined;
  if (!Buffer.isBuffer(hmac) || hmac.length !== 64 || !Buffer.isBuffer(salt)) throw new BrowseError(`archive '${name}' has a malformed authentication (TAM)`);
  const at = plain.indexOf(hmac);
  const zeroed = Buffer.from(plain);
  zeroed.fill(0, at, at + 64);
  const expected = createHmac('sha512', metadataTamKey(key, salt, 'archive')).update(zeroed).digest();
  if (!timingSafeEqual(expected, hmac)) throw new BrowseError(`archive '${name}' fails its authentication (TAM) check`);
  return 'ok';
}

function unpack(plain: Buffer, limits: UnpackLimits, what: string): MsgValue {
  const r = scanFrame(plain, 0, limits);
  if (r.kind !== 'complete' || r.end !== plain.length) throw new BrowseError(`${what} is not valid msgpack`);
  return decode(plain, 0, plain.length);
}

/**
 * Opens archive `name` of the reader's committed manifest. `key` is the key the reader was opened
 * with (null for an unencrypted repository), for the archive's TAM. BrowseError when there is no
 * such archive or its metadata does not read.
 */
export async function openArchive(objects: ObjectReader, key: BorgKey | null, name: string): Promise<ArchiveReader> {
  const entry = listManifestArchives(objects).find((a) => a.name === name);
  if (!entry) throw new BrowseError(`the repository has no archive named '${name}'`);
  const plain = await objects.get(Buffer.from(entry.id, 'hex'));
  const meta = unpack(plain, META_LIMITS, `the metadata of archive '${name}'`);
  if (!(meta instanceof MsgMap)) throw new BrowseError(`the metadata of archive '${name}' is not a map`);
  if (int(meta.get('version')) !== 1) throw new BrowseError(`archive '${name}' has an unknown metadata version`);
  const items = meta.get('items');
  if (!Array.isArray(items) || !items.every((i) => Buffer.isBuffer(i) && i.length === 32)) throw new BrowseError(`archive '${name}' has a malformed item list`);
  const tam = archiveTam(plain, meta, objects.mode === 'none' ? null : key, name);
  const cmdline = meta.get('cmdline');
  const cp = meta.get('chunker_params');
  const size = int(meta.get('size'));
  const csize = int(meta.get('csize'));
  const nfiles = int(meta.get('nfiles'));
  const info: ArchiveInfo = {
    name,
    id: entry.id,
    time: text(meta.get('time')) ?? entry.time,
    timeEnd: text(meta.get('time_end')),
    hostname: text(meta.get('hostname')),
    username: text(meta.get('username')),
    cmdline: Array.isArray(cmdline) ? cmdline.map((a) => text(a) ?? String(a)) : [],
    comment: text(meta.get('comment')),
    chunkerParams: Array.isArray(cp) ? cp.map((p) => (Buffer.isBuffer(p) ? p.toString('utf8') : Number(p))) : null,
    stats: size !== null && csize !== null && nfiles !== null ? { size, csize, nfiles } : null,
    itemsChunkIds: (items as Buffer[]).map((b) => Buffer.from(b)),
    tam,
  };
  return { info, items: () => readItems(objects, info) };
}

function toItem(v: MsgValue, archive: string): ArchiveItem {
  if (!(v instanceof MsgMap)) throw new BrowseError(`archive '${archive}' has an item that is not a map`);
  const path = v.get('path');
  const mode = int(v.get('mode'));
  if (!Buffer.isBuffer(path) || mode === null) throw new BrowseError(`archive '${archive}' has an item without a path or mode`);
  const chunks = v.get('chunks');
  let refs: ChunkRef[] | null = null;
  if (Array.isArray(chunks)) {
    refs = chunks.map((c) => {
      if (!Array.isArray(c) || !Buffer.isBuffer(c[0]) || c[0].length !== 32) throw new BrowseError(`archive '${archive}' has a malformed chunk list`);
      return { id: Buffer.from(c[0]), size: int(c[1]) ?? 0, csize: int(c[2]) ?? 0 };
    });
  }
  const source = v.get('source');
  return {
    path: Buffer.from(path),
    mode,
    uid: int(v.get('uid')) ?? 0,
    gid: int(v.get('gid')) ?? 0,
    user: text(v.get('user')),
    group: text(v.get('group')),
    mtimeNs: ns(v.get('mtime')) ?? 0n,
    atimeNs: ns(v.get('atime')),
    ctimeNs: ns(v.get('ctime')),
    size: int(v.get('size')),
    chunks: refs,
    source: Buffer.isBuffer(source) ? Buffer.from(source) : null,
    hardlinkMaster: v.get('hardlink_master') === true,
    rdev: int(v.get('rdev')),
    part: int(v.get('part')),
    raw: v,
  };
}

async function* readItems(objects: ObjectReader, info: ArchiveInfo): AsyncIterableIterator<ArchiveItem> {
  let pending: Buffer = Buffer.alloc(0);
  for (const id of info.itemsChunkIds) {
    const chunk = await objects.get(id);
    let buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let pos = 0;
    for (;;) {
      if (pos >= buf.length) break;
      const r = scanFrame(buf, pos, ITEM_LIMITS);
      if (r.kind === 'incomplete') break;
      if (r.kind === 'invalid') throw new BrowseError(`archive '${info.name}' has a damaged item stream: ${r.reason}`);
      yield toItem(decode(buf, pos, r.end), info.name);
      pos = r.end;
    }
    // Copy the leftover: the next chunk is appended to it, and the old buffer can go.
    pending = pos >= buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
    buf = Buffer.alloc(0);
  }
  if (pending.length > 0) throw new BrowseError(`archive '${info.name}' has an item stream that ends in the middle of an item`);
}

/**
 * The plaintext of a file's chunks, one chunk at a time in order (never the whole file in
 * memory). Each chunk's length is checked against its ChunkRef.
 */
export async function* readChunks(objects: ObjectReader, chunks: readonly ChunkRef[]): AsyncGenerator<Buffer> {
  for (const c of chunks) {
    const data = await objects.get(c.id);
    if (data.length !== c.size) throw new BrowseError(`chunk ${c.id.subarray(0, 8).toString('hex')} holds ${data.length} bytes, its item says ${c.size}`);
    yield data;
  }
}
