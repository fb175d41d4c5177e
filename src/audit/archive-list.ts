// The archive list as a repository's history moves it on, one manifest after the other, and what
// each manifest changed in it: archives added, removed, replaced (same name, another archive).
// A backup adds one archive and a prune removes a few, so consecutive manifests share nearly all
// their bytes: the diff finds the longest common start and end of the two archive maps and reads
// only the entries in between. Every entry is checked once, when it first appears; a name listed
// twice is refused, since borg would silently keep only the last one.

import { skipValues, strAt } from '../rpc/msgpack.js';
import { ManifestError, archiveFromEntry, type Manifest, type ManifestArchive } from '../repository/manifest.js';

export interface ArchiveDiff {
  readonly added: string[];
  readonly removed: string[];
  readonly replaced: string[];
}

export interface ArchiveList {
  /** Moves to `m`; its diff from the list before, or null while the list before is not known. */
  advance(m: Manifest): ArchiveDiff | null;
  /** The list now, or null when no manifest has been seen after an unknown start. */
  archives(): ManifestArchive[] | null;
}

const displayName = (raw: string): string => Buffer.from(raw, 'latin1').toString('utf8');
const idOf = (rawName: string, rawEntry: string): string => archiveFromEntry(rawName, rawEntry).id;
const twice = () => new ManifestError('the manifest lists an archive name twice');

/** Length of the longest common start of a and b. */
function commonPrefix(a: Buffer, b: Buffer): number {
  let lo = 0;
  let hi = Math.min(a.length, b.length);
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (b.compare(a, 0, mid, 0, mid) === 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Length of the longest common end of a and b. */
function commonSuffix(a: Buffer, b: Buffer): number {
  let lo = 0;
  let hi = Math.min(a.length, b.length);
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (b.compare(a, a.length - mid, a.length, b.length - mid, b.length) === 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The index of the first element of the sorted `xs` that is >= x (xs.length if none). */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The entry at `pos` of an archives map body: raw name, raw entry, and where it ends. */
function entryAt(body: Buffer, pos: number): [rawName: string, rawEntry: string, end: number] {
  const name = strAt(body, pos);
  if (!name) throw new ManifestError('the manifest has a malformed archive entry');
  const end = skipValues(body, name[1]);
  return [body.toString('latin1', name[0], name[1]), body.toString('latin1', name[1], end), end];
}

/**
 * `known`: the history starts at the repository's creation, from no archives; otherwise (after a
 * compaction) the first manifest is the baseline and has no diff.
 */
export function createArchiveList(known: boolean): ArchiveList {
  let started = known;
  // The list now: the bytes it was read from, where each entry starts, its raw names in order,
  // and raw name -> raw entry.
  let body: Buffer = Buffer.alloc(0);
  let starts: number[] = [];
  let names: string[] = [];
  const entries = new Map<string, string>();

  return {
    advance(m) {
      const next = m.archivesBody;
      // Entries [0, i) are in the common start, entries [j, n) in the common end; the bytes in
      // between are read from `next`, from where entry i starts.
      const prefix = commonPrefix(body, next);
      const suffixFrom = body.length - commonSuffix(body, next);
      const shift = next.length - body.length;
      const ends = starts.map((_, k) => (k + 1 < starts.length ? starts[k + 1] : body.length));
      const i = lowerBound(ends, prefix + 1);
      const from = i < starts.length ? starts[i] : body.length;
      const newStarts: number[] = [];
      const newEntries: Array<[rawName: string, rawEntry: string]> = [];
      let j = starts.length;
      let pos = from;
      while (pos < next.length) {
        // An entry boundary of the old list in the common end: the rest is the old list's rest.
        const old = pos - shift;
        if (old >= suffixFrom && old >= from) {
          const k = lowerBound(starts, old);
          if (k < starts.length && starts[k] === old) {
            j = k;
            break;
          }
        }
        const [name, entry, end] = entryAt(next, pos);
        newStarts.push(pos);
        newEntries.push([name, entry]);
        pos = end;
      }
      const oldMiddle = new Map<string, string>();
      for (let k = i; k < j; k++) oldMiddle.set(names[k], entries.get(names[k]) as string);

      const added: string[] = [];
      const replaced: string[] = [];
      const seen = new Set<string>();
      for (const [name, entry] of newEntries) {
        if (seen.has(name)) throw twice();
        seen.add(name);
        const before = oldMiddle.get(name);
        if (before === undefined) {
          if (entries.has(name)) throw twice(); // also listed outside the part that changed
          archiveFromEntry(name, entry); // checks it
          if (started) added.push(displayName(name));
        } else if (before !== entry) {
          archiveFromEntry(name, entry);
          if (started && idOf(name, before) !== idOf(name, entry)) replaced.push(displayName(name));
        }
      }
      const removed = [...oldMiddle.keys()].filter((name) => !seen.has(name));
      for (const name of removed) entries.delete(name);
      for (const [name, entry] of newEntries) entries.set(name, entry);

      starts = [...starts.slice(0, i), ...newStarts, ...starts.slice(j).map((s) => s + shift)];
      names = [...names.slice(0, i), ...newEntries.map(([name]) => name), ...names.slice(j)];
      body = next;
      if (names.length !== m.archiveCount) throw twice();
      if (!started) {
        started = true;
        return null;
      }
      return { added, removed: removed.map(displayName), replaced };
    },
    archives() {
      return started ? names.map((name) => archiveFromEntry(name, entries.get(name) as string)) : null;
    },
  };
}
