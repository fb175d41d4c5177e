// What changed between two archives, as borg 1.2.4's `borg diff` judges it (archive.py
// compare_archives_iter and item.pyx ItemDiff): an item is changed when it appeared or went, its
// link target, content (chunk ids, so both archives need the same chunker params, as borg's fast
// path assumes), owner (user and group names), mode, ctime or mtime differ; a later hardlink is
// compared through its first copy. Reads both archives' item streams; holds the first archive's
// items (without their raw maps) in memory, keyed by path. Read-only.

import { itemKind, type ArchiveItem, type ArchiveReader, type ChunkRef } from './archive-reader.js';
import { modeText, nsToIso, shownText } from './browse.js';

export type DiffChange =
  | { readonly type: 'added'; readonly size: number }
  | { readonly type: 'removed'; readonly size: number }
  | { readonly type: 'modified'; readonly added: number; readonly removed: number }
  | { readonly type: `added ${string}` | `removed ${string}` }
  | { readonly type: 'changed link' }
  | { readonly type: 'owner'; readonly oldUser: string | null; readonly oldGroup: string | null; readonly newUser: string | null; readonly newGroup: string | null }
  | { readonly type: 'mode'; readonly oldMode: string; readonly newMode: string }
  | { readonly type: 'ctime' | 'mtime'; readonly old: string | null; readonly new: string | null };

export interface DiffEntry {
  /** The path, shown as borg shows it. */
  readonly path: string;
  readonly changes: DiffChange[];
}

interface Light {
  readonly mode: number;
  readonly user: string | null;
  readonly group: string | null;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint | null;
  readonly source: Buffer | null;
  readonly chunks: readonly ChunkRef[] | null;
  readonly hardlinkMaster: boolean;
  readonly path: Buffer;
}

const light = (i: ArchiveItem): Light => ({ mode: i.mode, user: i.user, group: i.group, mtimeNs: i.mtimeNs, ctimeNs: i.ctimeNs, source: i.source, chunks: i.chunks, hardlinkMaster: i.hardlinkMaster, path: i.path });

const HARDLINKABLE = [0o100000, 0o020000, 0o060000, 0o010000];
const hardlinkable = (i: Light) => HARDLINKABLE.includes(i.mode & 0o170000);
const size = (c: readonly ChunkRef[] | null) => (c ?? []).reduce((n, x) => n + x.size, 0);
const kindOf = (i: Light) => itemKind({ mode: i.mode, source: null });
const PRESENCE: Record<string, string> = { directory: 'directory', blockdev: 'blkdev', chardev: 'chrdev', fifo: 'fifo' };
const sameBytes = (a: Buffer | null, b: Buffer | null) => (a === null ? b === null : b !== null && a.equals(b));
const sameChunks = (a: readonly ChunkRef[], b: readonly ChunkRef[]) => a.length === b.length && a.every((c, i) => c.id.equals(b[i]!.id));

/** borg's ItemDiff._equal: link source, mode, ctime, mtime, user and group names, then the chunk ids. */
function equal(a: Light, b: Light): boolean {
  if (!sameBytes(a.source, b.source) || a.mode !== b.mode || a.ctimeNs !== b.ctimeNs || a.mtimeNs !== b.mtimeNs || a.user !== b.user || a.group !== b.group) return false;
  return a.chunks && b.chunks ? sameChunks(a.chunks, b.chunks) : true;
}

/** One path's changes; empty when borg would call the two items equal. null item: not there. */
function compare(a: Light | null, b: Light | null): DiffChange[] {
  if (a === null && b === null) return [];
  if (a !== null && b !== null && equal(a, b)) return [];
  const changes: DiffChange[] = [];
  const isLink = (i: Light | null) => i !== null && kindOf(i) === 'symlink';
  if (isLink(a) || isLink(b)) {
    if (a === null || !isLink(a)) changes.push({ type: 'added link' });
    else if (b === null || !isLink(b)) changes.push({ type: 'removed link' });
    else if (!sameBytes(a.source, b.source)) changes.push({ type: 'changed link' });
  }
  const hasChunks = (i: Light | null) => i === null || i.chunks !== null;
  if (hasChunks(a) && hasChunks(b) && (a?.chunks || b?.chunks)) {
    if (a === null) changes.push({ type: 'added', size: size(b!.chunks) });
    else if (b === null) changes.push({ type: 'removed', size: size(a.chunks) });
    else {
      // borg lists 'modified' (with the bytes of new and gone chunks, both 0 when the content is
      // the same) for every changed path that is a file in both archives.
      const ids1 = new Set(a.chunks!.map((c) => c.id.toString('hex')));
      const ids2 = new Set(b.chunks!.map((c) => c.id.toString('hex')));
      changes.push({
        type: 'modified',
        added: b.chunks!.filter((c) => !ids1.has(c.id.toString('hex'))).reduce((n, c) => n + c.size, 0),
        removed: a.chunks!.filter((c) => !ids2.has(c.id.toString('hex'))).reduce((n, c) => n + c.size, 0),
      });
    }
  }
  for (const [kind, word] of Object.entries(PRESENCE)) {
    const is = (i: Light | null) => i !== null && kindOf(i) === kind;
    if (is(a) && !is(b)) changes.push({ type: `removed ${word}` });
    else if (!is(a) && is(b)) changes.push({ type: `added ${word}` });
  }
  if (a !== null && b !== null) {
    if (a.user !== b.user || a.group !== b.group) changes.push({ type: 'owner', oldUser: a.user, oldGroup: a.group, newUser: b.user, newGroup: b.group });
    if (a.mode !== b.mode) changes.push({ type: 'mode', oldMode: modeText(a.mode, kindOf(a)), newMode: modeText(b.mode, kindOf(b)) });
    if (a.ctimeNs !== b.ctimeNs) changes.push({ type: 'ctime', old: a.ctimeNs === null ? null : nsToIso(a.ctimeNs), new: b.ctimeNs === null ? null : nsToIso(b.ctimeNs) });
    if (a.mtimeNs !== b.mtimeNs) changes.push({ type: 'mtime', old: nsToIso(a.mtimeNs), new: nsToIso(b.mtimeNs) });
  }
  return changes;
}

/** The changes from archive `one` to archive `two`, in the second archive's order, then the removed paths. */
export async function diffArchives(one: ArchiveReader, two: ArchiveReader): Promise<DiffEntry[]> {
  const first = new Map<string, Light>();
  const masters1 = new Map<string, Light>();
  for await (const item of one.items()) {
    const l = light(item);
    const key = item.path.toString('latin1');
    first.set(key, l);
    if (item.hardlinkMaster) masters1.set(key, l);
  }
  const masters2 = new Map<string, Light>();
  // A later hardlink is compared through its first copy (its content and times live there).
  const resolve = (i: Light, masters: Map<string, Light>): Light => (i.source && hardlinkable(i) ? (masters.get(i.source.toString('latin1')) ?? i) : i);
  const out: DiffEntry[] = [];
  for await (const item of two.items()) {
    const key = item.path.toString('latin1');
    const b = light(item);
    if (item.hardlinkMaster) masters2.set(key, b);
    const a = first.get(key) ?? null;
    first.delete(key);
    const changes = compare(a && resolve(a, masters1), resolve(b, masters2));
    if (changes.length > 0) out.push({ path: shownText(item.path), changes });
  }
  for (const a of first.values()) {
    const changes = compare(resolve(a, masters1), null);
    if (changes.length > 0) out.push({ path: shownText(a.path), changes });
  }
  return out;
}

/** borg diff's text line for one path's changes. */
export function diffLine(e: DiffEntry, formatSize: (n: number) => string): string {
  const words = e.changes.map((c) => {
    switch (c.type) {
      case 'added':
        return `added ${formatSize(c.size).padStart(13)}`;
      case 'removed':
        return `removed ${formatSize(c.size).padStart(11)}`;
      case 'modified':
        return `+${formatSize(c.added)} -${formatSize(c.removed)}`;
      case 'owner':
        return `[${c.oldUser}:${c.oldGroup} -> ${c.newUser}:${c.newGroup}]`;
      case 'mode':
        return `[${c.oldMode} -> ${c.newMode}]`;
      case 'ctime':
      case 'mtime':
        return `[${c.type}: ${c.old} -> ${c.new}]`;
      default:
        return c.type;
    }
  });
  return `${words.join(' ').padEnd(19)} ${e.path}`;
}
