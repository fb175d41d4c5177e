// What browsing an archive means, independent of the command line or the API: one folder's
// direct children (implied folders included: borg stores no item for the parents of what was
// backed up), restoring a path as a file's bytes or a tar stream, and the diff of two archives
// with borg 1.2.4's notion of a change (borg diff: content by chunk ids, link targets, presence,
// owner, mode, ctime, mtime; hardlinks compared through their first copy).
//
// Paths are handled as bytes (latin1 strings, one char per byte) so non-UTF-8 names survive; a
// path a person types is matched against the names decoded as UTF-8 (invalid bytes as U+FFFD,
// as Node decodes its own command line). Shown paths follow `borg list --json-lines`: each
// byte that is not valid UTF-8 shown as '?'. Read-only; errors are BrowseError sentences.

import type { Writable } from 'node:stream';

import { MsgMap } from '../rpc/msgpack.js';
import { BrowseError, itemKind, readChunks, type ArchiveItem, type ArchiveReader, type ChunkRef, type ItemKind } from './archive-reader.js';
import type { ObjectReader } from './object-reader.js';
import { TarWriter, drained, type TarEntryType } from './tar-writer.js';

const latin1 = (b: Buffer): string => b.toString('latin1');

/** One valid UTF-8 sequence's length at `i` (strict: no overlongs, no surrogates), or 0. */
function utf8At(b: Buffer, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const cont = (k: number) => i + k < b.length && (b[i + k] & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const d = b[i + 1];
    if (c === 0xe0 && d < 0xa0) return 0;
    if (c === 0xed && d >= 0xa0) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const d = b[i + 1];
    if (c === 0xf0 && d < 0x90) return 0;
    if (c === 0xf4 && d >= 0x90) return 0;
    return 4;
  }
  return 0;
}

/** Bytes as `borg list --json-lines` shows them (surrogate-escaped bytes replaced by '?'). */
export function shownText(b: Buffer): string {
  let out = '';
  let start = 0;
  for (let i = 0; i < b.length; ) {
    const n = utf8At(b, i);
    if (n === 0) {
      out += `${b.toString('utf8', start, i)}?`;
      i += 1;
      start = i;
    } else i += n;
  }
  return out + b.toString('utf8', start);
}

/** How a typed path is compared with a stored one. */
export const typedForm = (key: string): string => Buffer.from(key, 'latin1').toString('utf8');

/** A typed path as a key: no leading or trailing slashes ('' is the archive's top). */
export function normalisePath(typed: string): string {
  const t = typed.replace(/^\/+/, '').replace(/\/+$/, '').replace(/\/{2,}/g, '/');
  if (t.split('/').some((p) => p === '.' || p === '..')) throw new BrowseError(`the path '${typed}' may not hold '.' or '..'`);
  return t;
}

const TYPE_CHAR: Record<ItemKind, string> = { file: '-', directory: 'd', symlink: 'l', hardlink: 'h', fifo: 'p', chardev: 'c', blockdev: 'b', socket: 's', other: '?' };

/** `ls -l`'s mode text, as borg list shows it (a hardlink after the first as 'h'). */
export function modeText(mode: number, kind: ItemKind): string {
  const rwx = (bits: number, special: boolean, ch: string) =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return `${TYPE_CHAR[kind]}${rwx(mode >> 6, (mode & 0o4000) !== 0, 's')}${rwx(mode >> 3, (mode & 0o2000) !== 0, 's')}${rwx(mode, (mode & 0o1000) !== 0, 't')}`;
}

/**
 * ISO 8601 in UTC to the microsecond, with the zone, exactly as borg 1.2 shows a time: Python's
 * `datetime.utcfromtimestamp(ns / 1e9)`, which divides in floating point (about a quarter of a
 * microsecond of precision today) and rounds the fraction half to even. Rounding the exact
 * nanoseconds instead differed from `borg list` in about one time in twelve (found by
 * test/browse/browse.test.ts on a machine whose file times have nanoseconds).
 */
export function nsToIso(ns: bigint): string {
  const seconds = Number(ns) / 1e9;
  let whole = Math.trunc(seconds);
  let fraction = seconds - whole;
  if (fraction < 0) {
    fraction += 1;
    whole -= 1;
  }
  let us = roundHalfEven(fraction * 1e6);
  if (us >= 1e6) {
    us -= 1e6;
    whole += 1;
  }
  return `${new Date(whole * 1000 + Math.floor(us / 1000)).toISOString().slice(0, 23)}${String(us % 1000).padStart(3, '0')}Z`;
}

function roundHalfEven(x: number): number {
  const down = Math.floor(x);
  const above = x - down;
  if (above !== 0.5) return above < 0.5 ? down : down + 1;
  return down % 2 === 0 ? down : down + 1;
}

export interface FolderEntry {
  /** The entry's name in the folder, shown as borg shows it. */
  readonly name: string;
  /** Its whole path, shown as borg shows it. */
  readonly path: string;
  readonly type: ItemKind;
  /** `ls -l`'s mode text. */
  readonly mode: string;
  readonly user: string | null;
  readonly group: string | null;
  readonly uid: number | null;
  readonly gid: number | null;
  /** Content size (a later hardlink: its first copy's size). */
  readonly size: number;
  readonly mtime: string | null;
  /** Symlink target, or a hardlink's first copy. */
  readonly linkTarget: string | null;
  readonly rdev: number | null;
  /** No item in the archive: a folder implied by the paths below it. */
  readonly implied: boolean;
}

/** A file's content size from its chunk list (0 for none). */
export const contentSize = (chunks: readonly ChunkRef[] | null): number => (chunks ?? []).reduce((n, c) => n + c.size, 0);

export function entryOf(item: ArchiveItem, name: string, masters: Map<string, ArchiveItem>): FolderEntry {
  const kind = itemKind(item);
  const master = kind === 'hardlink' && item.source ? masters.get(latin1(item.source)) : undefined;
  return {
    name,
    path: shownText(item.path),
    type: kind,
    mode: modeText(item.mode, kind),
    user: item.user,
    group: item.group,
    uid: item.uid,
    gid: item.gid,
    size: kind === 'file' ? (item.size ?? contentSize(item.chunks)) : kind === 'hardlink' ? (master ? (master.size ?? contentSize(master.chunks)) : 0) : kind === 'symlink' && item.source ? item.source.length : 0,
    mtime: nsToIso(item.mtimeNs),
    linkTarget: item.source ? shownText(item.source) : null,
    rdev: item.rdev,
    implied: false,
  };
}

/**
 * A hardlink's first copy as kept until its later links come: without the decoded map, whose
 * strings are views into the item chunk they came from (keeping it would keep that chunk).
 */
export const kept = (item: ArchiveItem): ArchiveItem => ({ ...item, raw: new MsgMap() });

const isHardlinkable = (item: ArchiveItem): boolean => [0o100000, 0o020000, 0o060000, 0o010000].includes(item.mode & 0o170000);

export interface FolderListing {
  /** The folder as shown ('' is the archive's top). */
  readonly folder: string;
  readonly entries: FolderEntry[];
}

/**
 * The direct children of `typedFolder` in the archive, sorted by name (bytes). A path naming a
 * file lists that one entry. BrowseError when nothing in the archive is at or below the path.
 */
export async function listFolder(archive: ArchiveReader, typedFolder: string): Promise<FolderListing> {
  const folder = normalisePath(typedFolder);
  const entries = new Map<string, FolderEntry>();
  const masters = new Map<string, ArchiveItem>();
  let self: FolderEntry | null = null;
  let seen = folder === '';
  for await (const item of archive.items()) {
    const key = latin1(item.path);
    if (item.hardlinkMaster) masters.set(key, kept(item));
    const typed = typedForm(key);
    if (typed === folder) {
      seen = true;
      if (itemKind(item) !== 'directory') self = entryOf(item, shownText(Buffer.from(key.slice(key.lastIndexOf('/') + 1), 'latin1')), masters);
      continue;
    }
    if (folder !== '' && !typed.startsWith(`${folder}/`)) continue;
    seen = true;
    // The child's key: the stored bytes up to the next slash below the folder.
    const depth = folder === '' ? 0 : folder.split('/').length;
    const parts = key.split('/');
    const childKey = parts.slice(0, depth + 1).join('/');
    const childName = parts[depth]!;
    if (parts.length === depth + 1) {
      entries.set(childKey, { ...entryOf(item, shownText(Buffer.from(childName, 'latin1')), masters) });
    } else if (!entries.has(childKey)) {
      const b = Buffer.from(childKey, 'latin1');
      entries.set(childKey, { name: shownText(Buffer.from(childName, 'latin1')), path: shownText(b), type: 'directory', mode: 'd?????????', user: null, group: null, uid: null, gid: null, size: 0, mtime: null, linkTarget: null, rdev: null, implied: true });
    }
  }
  if (!seen) throw new BrowseError(`archive '${archive.info.name}' has nothing at '/${folder}'`);
  if (self) return { folder, entries: [self] };
  const sorted = [...entries.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
  return { folder, entries: sorted };
}

/** The longest search pattern taken (a person types it; the matcher is built from it). */
export const MAX_PATTERN_LENGTH = 1024;
/**
 * The most runs of '*' a pattern may have: each is a backtracking point of the regular expression
 * it becomes, and a long path against many of them could hold the server's one thread for long.
 */
export const MAX_PATTERN_STARS = 8;

/**
 * A shell-style path pattern as a matcher of paths (as typed: no leading slash): `*` any run of
 * characters within one path part, `**` any run across parts, `?` one character but '/', `[...]`
 * (or `[!...]`) one of a set. A pattern without '/' matches an entry's name in any folder (as
 * `find -name`); one with '/' matches the whole path from the archive's top (a leading '/' is
 * dropped). Case-sensitive. BrowseError for an empty, too long or unbalanced pattern.
 */
export function pathMatcher(pattern: string): (typedPath: string) => boolean {
  const p = pattern.replace(/^\/+/, '');
  if (p === '') throw new BrowseError('the search pattern is empty');
  if (pattern.length > MAX_PATTERN_LENGTH) throw new BrowseError(`the search pattern is longer than ${MAX_PATTERN_LENGTH} characters`);
  if ((p.match(/\*+/g) ?? []).length > MAX_PATTERN_STARS) throw new BrowseError(`the search pattern has more than ${MAX_PATTERN_STARS} wildcards '*'`);
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') {
      // A run of two or more is '**'.
      let end = i;
      while (p[end + 1] === '*') end++;
      re += end > i ? '.*' : '[^/]*';
      i = end;
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) throw new BrowseError(`the search pattern '${pattern}' has a '[' without its ']'`);
      let set = p.slice(i + 1, end);
      const negated = set.startsWith('!');
      if (negated) set = set.slice(1);
      re += `[${negated ? '^' : ''}${set.replace(/[\\\]^]/g, (x) => `\\${x}`)}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, (x) => `\\${x}`);
  }
  const whole = new RegExp(`^${re}$`, 'su');
  if (p.includes('/')) return (path) => whole.test(path);
  return (path) => whole.test(path.slice(path.lastIndexOf('/') + 1));
}

export interface SearchResult {
  readonly pattern: string;
  /** The matches in the archive's order, at most `limit`. */
  readonly entries: FolderEntry[];
  /** Whether more entries matched than were given. */
  readonly truncated: boolean;
}

/**
 * The archive's entries whose path matches `pattern` (pathMatcher), in the archive's order, up to
 * `limit`. One pass over the archive's items; folders implied by deeper paths are not entries.
 */
export async function searchArchive(archive: ArchiveReader, pattern: string, limit: number): Promise<SearchResult> {
  const matches = pathMatcher(pattern);
  const masters = new Map<string, ArchiveItem>();
  const entries: FolderEntry[] = [];
  for await (const item of archive.items()) {
    const key = latin1(item.path);
    if (item.hardlinkMaster) masters.set(key, kept(item));
    if (!matches(typedForm(key))) continue;
    if (entries.length === limit) return { pattern, entries, truncated: true };
    entries.push(entryOf(item, shownText(Buffer.from(key.slice(key.lastIndexOf('/') + 1), 'latin1')), masters));
  }
  return { pattern, entries, truncated: false };
}

export interface RestoreResult {
  /** 'file': the file's bytes; 'tar': a tar stream of the path and everything below it. */
  readonly kind: 'file' | 'tar';
  /** Bytes written. */
  readonly bytes: number;
  /** Items written (1 for a file). */
  readonly items: number;
}

/** What kind of output a restore of the path will be, known before anything is written. */
export async function restoreKind(archive: ArchiveReader, typedPath: string): Promise<'file' | 'tar'> {
  const path = normalisePath(typedPath);
  if (path === '') return 'tar';
  let below = false;
  for await (const item of archive.items()) {
    const typed = typedForm(latin1(item.path));
    if (typed === path) {
      const kind = itemKind(item);
      return kind === 'file' || kind === 'hardlink' ? 'file' : 'tar';
    }
    if (typed.startsWith(`${path}/`)) below = true;
  }
  if (below) return 'tar';
  throw new BrowseError(`archive '${archive.info.name}' has nothing at '/${path}'`);
}

/** Writes the parts to `out` with backpressure; the number of bytes. */
export async function writeAll(out: Writable, parts: AsyncIterable<Buffer>): Promise<number> {
  let n = 0;
  for await (const part of parts) {
    n += part.length;
    if (!out.write(part)) await drained(out);
  }
  return n;
}

const TAR_TYPES: Partial<Record<ItemKind, TarEntryType>> = { file: 'file', directory: 'directory', symlink: 'symlink', fifo: 'fifo', chardev: 'chardev', blockdev: 'blockdev' };

/**
 * Restores `typedPath` of the archive into `out`: a regular file (or a hardlink to one) as its
 * bytes, anything else (a folder, a link, a device, the whole archive for '') as a tar stream of
 * it and everything below it, with the paths as the archive stores them (as `borg extract`
 * would create them). Chunks are read one after another; nothing but one chunk is held.
 */
export async function restorePath(objects: ObjectReader, archive: ArchiveReader, typedPath: string, out: Writable): Promise<RestoreResult> {
  const path = normalisePath(typedPath);
  const masters = new Map<string, ArchiveItem>();
  const kind = await restoreKind(archive, path);
  if (kind === 'file') {
    const { holder } = await fileAt(archive, path);
    const bytes = await writeAll(out, readChunks(objects, holder.chunks ?? []));
    return { kind, bytes, items: 1 };
  }
  const tar = new TarWriter(out);
  // Per first copy of a set of hardlinks, the path this tar holds its content under: a later link
  // becomes a tar hardlink to it. A link whose first copy lies outside the restored path carries
  // the content itself, and the links after it point at it.
  const linkTo = new Map<string, string>();
  let items = 0;
  for await (const item of archive.items()) {
    const key = latin1(item.path);
    if (item.hardlinkMaster) masters.set(key, kept(item));
    const typed = typedForm(key);
    if (path !== '' && typed !== path && !typed.startsWith(`${path}/`)) continue;
    const common = { path: key, mode: item.mode, uid: item.uid, gid: item.gid, user: item.user, group: item.group, mtimeNs: item.mtimeNs, rdev: item.rdev };
    let source = item;
    const kind = itemKind(item);
    if (kind === 'hardlink') {
      const masterKey = item.source ? latin1(item.source) : '';
      const target = linkTo.get(masterKey);
      if (target !== undefined) {
        await tar.entry({ ...common, type: 'hardlink', size: 0, linkTarget: target });
        items++;
        continue;
      }
      const master = masters.get(masterKey);
      if (!master) throw new BrowseError(`the hardlink '${shownText(item.path)}' names a first copy the archive does not hold`);
      linkTo.set(masterKey, key);
      source = master;
    } else if (item.hardlinkMaster && isHardlinkable(item)) {
      linkTo.set(key, key);
    }
    const type = TAR_TYPES[itemKind({ mode: source.mode, source: null })];
    if (!type) continue; // sockets: tar cannot hold them (borg does not archive them either)
    if (type === 'file') {
      await tar.entry({ ...common, type, size: contentSize(source.chunks) }, readChunks(objects, source.chunks ?? []));
    } else {
      await tar.entry({ ...common, type, size: 0, rdev: source.rdev, linkTarget: type === 'symlink' && item.source ? latin1(item.source) : undefined });
    }
    items++;
  }
  await tar.finish();
  return { kind, bytes: tar.bytes, items };
}

export interface ArchiveFile {
  /** The file's name (its last path part, as stored: latin1 string). */
  readonly name: string;
  readonly size: number;
  readonly chunks: readonly ChunkRef[];
  readonly mtimeNs: bigint;
}

/**
 * The regular file at `typedPath` (a later hardlink: its first copy's content), or null when
 * the path names a folder or anything else a tar stream carries. BrowseError when nothing is there.
 */
export async function findFile(archive: ArchiveReader, typedPath: string): Promise<ArchiveFile | null> {
  const path = normalisePath(typedPath);
  if ((await restoreKind(archive, path)) !== 'file') return null;
  const { key, item, holder } = await fileAt(archive, path);
  const chunks = holder.chunks ?? [];
  return { name: key.slice(key.lastIndexOf('/') + 1), size: contentSize(chunks), chunks, mtimeNs: item.mtimeNs };
}

/**
 * The item at the normalised `path` of a file and the item that holds its content (its first
 * copy, for a later hardlink). BrowseError when nothing is there.
 */
async function fileAt(archive: ArchiveReader, path: string): Promise<{ key: string; item: ArchiveItem; holder: ArchiveItem }> {
  const masters = new Map<string, ArchiveItem>();
  for await (const item of archive.items()) {
    const key = latin1(item.path);
    if (item.hardlinkMaster) masters.set(key, kept(item));
    if (typedForm(key) !== path) continue;
    const holder = itemKind(item) === 'hardlink' && item.source ? masters.get(latin1(item.source)) : item;
    if (!holder) throw new BrowseError(`the hardlink '${shownText(item.path)}' names a first copy the archive does not hold`);
    return { key, item, holder };
  }
  throw new BrowseError(`archive '${archive.info.name}' has nothing at '/${path}'`);
}

/**
 * Bytes `start` to `end` (inclusive) of a file's content: chunks wholly before or after the range
 * are never read (their sizes are in the item), the rest one after another.
 */
export async function* fileRange(objects: ObjectReader, chunks: readonly ChunkRef[], start: number, end: number): AsyncGenerator<Buffer> {
  let at = 0;
  const wanted: ChunkRef[] = [];
  const firstOffset: number[] = [];
  for (const c of chunks) {
    if (at + c.size > start && at <= end) {
      wanted.push(c);
      firstOffset.push(at);
    }
    at += c.size;
  }
  let i = 0;
  for await (const data of readChunks(objects, wanted)) {
    const offset = firstOffset[i++]!;
    yield data.subarray(Math.max(0, start - offset), Math.min(data.length, end - offset + 1));
  }
}
