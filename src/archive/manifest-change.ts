// What one manifest write changed, and which of those changes the writing session's role may not
// make: the one judgement of a manifest change, for the audit (src/audit/audit.ts, every
// transaction of a repository's history) and for the live guard (issue 14, at the write).
//
// Pure: no I/O, no clock. The caller gives the manifest before (or null / 'unknown'), the new one,
// the role of the session that wrote it (null: a writer borgkeep did not see) and the server's
// own time of the transaction; this file gives back what changed and the findings, each marked
// suspicious (the role may not do it, or stock borg never does it) or a notice (allowed, shown for
// review). It must never throw for anything a client can write except a malformed archive entry
// or a name listed twice (ManifestError, as parseManifest), and never decides from the client's
// clock alone.
//
// The API (stable; the audit and the guard, src/guard/archive-rules.ts, call it):
//   judgeManifestChange(input: ManifestChangeInput): ManifestJudgement
//   countedRemovals(change): ArchiveEntry[]                what a prune's --max-removals-per-day counts
//   archiveEntriesOf(m: Manifest): ArchiveEntry[]          every entry, decoded, in wire order
//   parseArchiveTime(time: string): number | null          borg's naive-UTC ISO time, ms since epoch
//   FUTURE_TOLERANCE_MS, PAST_TOLERANCE_MS                  the archive-time rule's bounds
//   types: ManifestChangeInput, ManifestJudgement, ManifestChange, ManifestFinding, FindingKind,
//          ArchiveEntry, ArchiveRef, Retimed, Renamed, TimeOutOfRange, RetentionRule
//
// The rules (docs/audit.md says the same for users):
// * suspicious for every role: an existing archive's time moves (same name and id: archive ids
//   hash the metadata, time included, so borg never does this); a new archive whose time is more
//   than FUTURE_TOLERANCE_MS after, or more than PAST_TOLERANCE_MS before, the server's time of the
//   transaction (or not a time at all); an entry pointing at an archive id the list already holds
//   under another name (stock borg never lists one archive twice); a manifest timestamp that does
//   not increase (borg makes it strictly increasing); a TAM that fails or is missing.
// * suspicious unless the role is `full` (a notice for full): an archive under a new name with an
//   id the list held under its old name (a manifest-only rename: borg's own rename writes a new
//   archive, a new id); an id listed earlier in the history and gone from the previous list coming
//   back; a change of the manifest's version or config (feature flags); item keys removed.
// * `prune` may only remove: any name it adds (new, replaced, renamed, relisted) is suspicious.
// * removals (and replacements: same name, another id) by `append`, `read` or an unattributed
//   writer are suspicious; by `prune` and `full` a notice. Checkpoints keep their course: a
//   checkpoint replaced by the next one, or removed, and `X.checkpoint` becoming `X` are no removal;
//   checkpoint archives are exempt from the time-window rule (prune ignores them, and a long backup's
//   checkpoints carry its start time).
// * with what only the live guard knows (issue 14; the audit passes neither):
//   - `writtenByWriter`: an `append` session may add only archives whose archive object it wrote
//     itself, and may remove or replace only checkpoints it wrote itself;
//   - `retention`: a `prune` session may remove only what its grant's retention rule allows:
//     archives named with the rule's prefix, first seen by the server at least --min-age ago, and
//     never one of the --keep-last newest (by the server's first sighting) of that prefix;
//     archives whose times fall in one second count once, as borg prune's --keep-last counts them.
//     Checkpoints count for the prefix only: they are partial backups that borg prune removes
//     once a later archive exists, and no rule keeps them.
// The time window: `borg create --timestamp` and `borg import-tar --timestamp` set an archive's time
// at will, and a backup's archive carries the time it started, so the past bound allows a week
// (a longer backup, or an older --timestamp, needs a reviewer's approval); an archive with an
// old time is exactly what displaces a real one from `prune --keep-daily`/`--keep-last`. The
// future bound allows a day of client clock skew.

import type { Role } from '../store/types.js';
import { MsgMap, decode, mapAt, skipValues, strAt, type MsgValue } from '../rpc/msgpack.js';
import { ManifestError, archiveFromEntry, type Manifest, type ManifestArchive } from '../repository/manifest.js';

/** A new archive's time may be this far after the server's time of its transaction. */
export const FUTURE_TOLERANCE_MS = 24 * 3600 * 1000;
/** A new archive's time may be this far before the server's time of its transaction. */
export const PAST_TOLERANCE_MS = 7 * 24 * 3600 * 1000;

/** One archive entry: name as borg shows it, metadata id (hex), the client's time as written. */
export type ArchiveEntry = ManifestArchive;

export interface ManifestChangeInput {
  /**
   * The manifest before this write. null: there was none (a new repository: every archive is
   * added); 'unknown': it is not known (the first manifest kept after a compaction), so the new
   * list is a baseline and only the manifest's own state (TAM) is judged.
   */
  readonly previous: Manifest | null | 'unknown';
  readonly next: Manifest;
  /** The writing session's role; null when no borgkeep session made the write. */
  readonly role: Role | null;
  /** The server's own time of the transaction; null when unknown (the time rule is then not applied). */
  readonly serverTime: Date | null;
  /** Archive ids (hex) listed by earlier manifests of the history, with the name they had; for relisting. */
  readonly listedBefore?: ReadonlyMap<string, string>;
  /** Whether the repository's key requires a TAM (borg's tam_required); default true. */
  readonly tamRequired?: boolean;
  /**
   * Whether the writing session wrote this archive metadata object (id, hex) itself. Given by the
   * live guard, which saw the session's puts; for `append` it bounds what may be added or removed.
   */
  readonly writtenByWriter?: (archiveId: string) => boolean;
  /** For a `prune` session: its grant's retention rule and the server's first sightings. */
  readonly retention?: {
    readonly rule: RetentionRule;
    /** When the server first saw this archive; null when never (then it counts as seen now). */
    readonly firstSeen: (a: ArchiveEntry) => Date | null;
    /** The server's time now. */
    readonly now: Date;
  };
}

/** A prune grant's retention rule (the grant's --min-age, --keep-last, --prefix); null: no such bound. */
export interface RetentionRule {
  readonly minAgeSeconds: number | null;
  readonly keepLast: number | null;
  readonly prefix: string | null;
}

export interface ArchiveRef {
  readonly name: string;
  readonly id: string;
  /** The name the id is (or was) listed under. */
  readonly listedAs: string;
}
export interface Renamed {
  readonly id: string;
  readonly from: string;
  readonly to: string;
}
export interface Retimed {
  readonly name: string;
  readonly id: string;
  readonly from: string;
  readonly to: string;
}
export interface TimeOutOfRange {
  readonly name: string;
  readonly id: string;
  readonly time: string;
  readonly why: 'future' | 'past' | 'unreadable';
}

export interface ManifestChange {
  /** Names listed now and not before (rename targets included), wire order. Empty for a baseline. */
  readonly added: string[];
  /** Names listed before and not now (rename sources included). */
  readonly removed: string[];
  /** Names listed before and now with another archive id. */
  readonly replaced: string[];
  /** Same id under a new name, the old name gone. */
  readonly renamed: Renamed[];
  /** Same name and id, another time. */
  readonly retimed: Retimed[];
  /** A new entry whose id the new list holds under another name too. */
  readonly pointsAtListed: ArchiveRef[];
  /** A new entry whose id an earlier manifest of the history listed (not the previous one). */
  readonly relisted: ArchiveRef[];
  /** Checkpoints that became their archive (`X.checkpoint` gone, `X` added). */
  readonly promoted: string[];
  /** Every entry whose (name, id) the previous list did not hold: the archives first seen here (all of them for a baseline). */
  readonly appeared: ArchiveEntry[];
  /** Every entry of the previous list whose (name, id) the new list does not hold (removed, replaced, renamed away). */
  readonly gone: ArchiveEntry[];
  /** New archives (ids the previous list did not hold) whose time is outside the window. */
  readonly timeOutOfRange: TimeOutOfRange[];
  readonly version: { readonly from: number; readonly to: number } | null;
  readonly timestamp: { readonly from: string | null; readonly to: string; readonly increased: boolean | null };
  readonly configChanged: boolean;
  readonly mandatoryFeaturesAdded: string[];
  readonly mandatoryFeaturesRemoved: string[];
  readonly itemKeys: { readonly added: string[]; readonly removed: string[] } | null;
  readonly tam: Manifest['tam'];
}

export type FindingKind =
  | 'tam'
  | 'timestamp'
  | 'version'
  | 'config'
  | 'item-keys'
  | 'removed'
  | 'added'
  | 'renamed'
  | 'retimed'
  | 'points-at-listed'
  | 'relisted'
  | 'archive-time'
  | 'not-own'
  | 'retention';

export interface ManifestFinding {
  readonly kind: FindingKind;
  /** true: the role may not make this change (or stock borg never does); false: a notice. */
  readonly suspicious: boolean;
  /** One sentence for people. */
  readonly message: string;
  /** For suspicious findings: the rule broken, in a few words ("append adds only", "--min-age 30d"). */
  readonly rule?: string;
  /**
   * For suspicious findings: what the writer may not do, as the live guard tells the client
   * ("an append key may not remove archive 'a'").
   */
  readonly refusal?: string;
}

export interface ManifestJudgement {
  readonly change: ManifestChange;
  /** Suspicious findings first, then notices. */
  readonly findings: ManifestFinding[];
  readonly suspicious: boolean;
}

const CHECKPOINT = /^(.*)\.checkpoint(\.\d+)?$/;
const isCheckpoint = (name: string) => CHECKPOINT.test(name);
const displayName = (raw: string): string => Buffer.from(raw, 'latin1').toString('utf8');

/** borg's archive and manifest times: ISO 8601, naive UTC, microseconds; ms since the epoch, or null. */
export function parseArchiveTime(time: string): number | null {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?$/.exec(time);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}.${(m[2] ?? '').padEnd(3, '0').slice(0, 3)}${m[3] ?? 'Z'}`);
  return Number.isNaN(ms) ? null : ms;
}

/** A time in microseconds since the epoch (borg's manifest timestamps step by one microsecond), or null. */
export function microseconds(time: string): bigint | null {
  const ms = parseArchiveTime(time);
  if (ms === null) return null;
  const fraction = /\.(\d{1,9})/.exec(time)?.[1] ?? '';
  return BigInt(ms) * 1000n + BigInt(fraction.padEnd(6, '0').slice(3, 6));
}

/** Entry start offsets of an archives map body. */
function entryStarts(body: Buffer): number[] {
  const starts: number[] = [];
  let pos = 0;
  while (pos < body.length) {
    const name = strAt(body, pos);
    if (!name) throw new ManifestError('the manifest has a malformed archive entry');
    starts.push(pos);
    pos = skipValues(body, name[1]);
  }
  if (pos !== body.length) throw new ManifestError('the manifest has a malformed archive entry');
  return starts;
}

interface Raw {
  readonly rawName: string;
  readonly entry: ArchiveEntry;
}

function rawEntry(body: Buffer, starts: readonly number[], k: number): Raw {
  const name = strAt(body, starts[k]) as [number, number];
  const end = k + 1 < starts.length ? starts[k + 1] : body.length;
  const rawName = body.toString('latin1', name[0], name[1]);
  return { rawName, entry: archiveFromEntry(rawName, body.toString('latin1', name[1], end)) };
}

/**
 * An entry as borg writes it (a map of str keys, its first `id` a 32-byte str, its first `time` a
 * str), read without decoding it into objects; null for anything else, which the caller decodes
 * (the same result: MsgMap.get takes the first key of a name too).
 */
function entryInPlace(body: Buffer, at: number, end: number): { id: string; time: string } | null {
  const map = mapAt(body, at);
  if (!map) return null;
  let pos = map[1];
  let id: string | null = null;
  let time: string | null = null;
  for (let i = 0; i < map[0]; i++) {
    const k = strAt(body, pos);
    if (!k) return null;
    const next = skipValues(body, k[1]);
    const length = k[1] - k[0];
    if (length === 2 && id === null && body[k[0]] === 0x69 && body[k[0] + 1] === 0x64) {
      const v = strAt(body, k[1]);
      if (!v || v[1] - v[0] !== 32) return null;
      id = body.toString('hex', v[0], v[1]);
    } else if (length === 4 && time === null && body.toString('latin1', k[0], k[1]) === 'time') {
      const v = strAt(body, k[1]);
      if (!v) return null;
      time = body.toString('utf8', v[0], v[1]);
    }
    pos = next;
  }
  return pos === end && id !== null ? { id, time: time ?? '' } : null;
}

/** Every archive entry of a manifest, decoded, in wire order; a ManifestError for a malformed one. */
export function archiveEntriesOf(m: Manifest): ArchiveEntry[] {
  const body = m.archivesBody;
  const starts = startsOf(body);
  // Decoded in place (the prune rules read every entry of a list of thousands): the same result
  // as archiveFromEntry, without a string copy of each entry.
  return starts.map((start, k) => {
    const name = strAt(body, start) as [number, number];
    const end = k + 1 < starts.length ? starts[k + 1] : body.length;
    const fast = entryInPlace(body, name[1], end);
    if (fast) return { name: body.toString('utf8', name[0], name[1]), id: fast.id, time: fast.time };
    let v: MsgValue;
    try {
      v = decode(body, name[1], end);
    } catch {
      throw new ManifestError('the manifest has a malformed archive entry');
    }
    const id = v instanceof MsgMap ? v.get('id') : undefined;
    if (!Buffer.isBuffer(id) || id.length !== 32) throw new ManifestError('the manifest has a malformed archive entry');
    const time = v instanceof MsgMap ? v.get('time') : undefined;
    return { name: body.toString('utf8', name[0], name[1]), id: id.toString('hex'), time: Buffer.isBuffer(time) ? time.toString('utf8') : '' };
  });
}

/** Length of the longest common start of a and b. */
function commonPrefix(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  let lo = 0;
  let hi = n;
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

/**
 * Entry starts of archive bodies already walked, so a manifest judged as `next` and then as
 * `previous` (the audit's walk) is scanned once. A cache only: the result is the same without it.
 */
const startsCache = new WeakMap<Buffer, number[]>();

function startsOf(body: Buffer): number[] {
  let starts = startsCache.get(body);
  if (!starts) {
    starts = entryStarts(body);
    startsCache.set(body, starts);
  }
  return starts;
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

/**
 * The two lists as: a common start of `head` entries, a common end of `tail` entries (byte-equal,
 * so equal), and the entries in between. A backup adds one entry and a prune removes a few, so
 * nearly every entry is in the common parts and is neither scanned nor decoded again: only the
 * changed bytes of `next` are walked, its other entry starts are the previous list's, shifted.
 */
function split(prev: Buffer, next: Buffer) {
  const ps = startsOf(prev);
  const prefix = commonPrefix(prev, next);
  // Entries parse forwards from byte-equal starts, so equal leading bytes mean equal leading
  // entries: those ending within the common start.
  const ends = (k: number) => (k + 1 < ps.length ? ps[k + 1] : prev.length);
  let lo = 0;
  let hi = ps.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ends(mid) <= prefix) lo = mid + 1;
    else hi = mid;
  }
  const head = lo;
  const suffixFrom = prev.length - commonSuffix(prev, next);
  const shift = next.length - prev.length;
  const from = head < ps.length ? ps[head] : prev.length;
  // Walk next from the first entry that may differ until an entry start meets an entry start of
  // the previous list inside the common end: from there on both lists are the same bytes.
  const middle: number[] = [];
  let j = ps.length;
  let pos = from;
  while (pos < next.length) {
    const old = pos - shift;
    if (old >= suffixFrom && old >= from) {
      const k = lowerBound(ps, old);
      if (k < ps.length && ps[k] === old) {
        j = k;
        break;
      }
    }
    const name = strAt(next, pos);
    if (!name) throw new ManifestError('the manifest has a malformed archive entry');
    middle.push(pos);
    pos = skipValues(next, name[1]);
  }
  if (j === ps.length && pos !== next.length) throw new ManifestError('the manifest has a malformed archive entry');
  let ns = startsCache.get(next);
  if (!ns) {
    ns = [...ps.slice(0, head), ...middle, ...ps.slice(j).map((x) => x + shift)];
    startsCache.set(next, ns);
  }
  return { ps, ns, head, tail: ps.length - j };
}

/** Whether a name (raw bytes, latin1) is the name of one of the entries [from, to) of `body`. */
function nameIn(body: Buffer, starts: readonly number[], from: number, to: number, rawName: string): boolean {
  if (from >= to) return false;
  const raw = Buffer.from(rawName, 'latin1');
  const lo = starts[from];
  const hi = to < starts.length ? starts[to] : body.length;
  // Any encoding of the name holds its bytes right after a 1, 2, 3 or 5 byte header: search, then
  // check that an entry starts there and its name is exactly these bytes.
  let at = body.indexOf(raw, lo);
  while (at >= 0 && at < hi) {
    for (const header of [1, 2, 3, 5]) {
      const start = at - header;
      const k = lowerBound(starts, start);
      if (start >= lo && k < to && starts[k] === start) {
        const n = strAt(body, start);
        if (n && n[0] === at && n[1] - n[0] === raw.length) return true;
      }
    }
    at = body.indexOf(raw, at + 1);
  }
  return false;
}

/** Whether `id` (hex) is the id of one of the entries [from, to) of `body`; the name if so. */
function idIn(body: Buffer, starts: readonly number[], from: number, to: number, id: string): string | null {
  if (from >= to) return null;
  const raw = Buffer.from(id, 'hex');
  const lo = starts[from];
  const hi = to < starts.length ? starts[to] : body.length;
  // The 32 raw bytes of the id are in any encoding of it: search, then decode the entry found.
  let at = body.indexOf(raw, lo);
  while (at >= 0 && at < hi) {
    let k = from;
    let a = from;
    let b = to - 1;
    while (a <= b) {
      const mid = (a + b) >>> 1;
      if (starts[mid] <= at) {
        k = mid;
        a = mid + 1;
      } else b = mid - 1;
    }
    const e = rawEntry(body, starts, k).entry;
    if (e.id === id) return e.name;
    at = body.indexOf(raw, at + 1);
  }
  return null;
}

function listChange(previous: Manifest | null, next: Manifest, listedBefore: ReadonlyMap<string, string> | undefined, serverTime: Date | null) {
  const prevBody = previous?.archivesBody ?? Buffer.alloc(0);
  const { ps, ns, head, tail } = split(prevBody, next.archivesBody);
  const prevMid: Raw[] = [];
  for (let k = head; k < ps.length - tail; k++) prevMid.push(rawEntry(prevBody, ps, k));
  const nextMid: Raw[] = [];
  for (let k = head; k < ns.length - tail; k++) nextMid.push(rawEntry(next.archivesBody, ns, k));

  // A name listed twice: borg would keep only the last, hiding the other.
  const twice = () => new ManifestError('the manifest lists an archive name twice');
  const midNames = new Set<string>();
  for (const r of nextMid) {
    if (midNames.has(r.rawName)) throw twice();
    midNames.add(r.rawName);
  }
  for (const name of midNames) {
    if (nameIn(next.archivesBody, ns, 0, head, name) || nameIn(next.archivesBody, ns, ns.length - tail, ns.length, name)) throw twice();
  }

  const prevByName = new Map(prevMid.map((r) => [r.rawName, r.entry]));
  const nextByName = new Map(nextMid.map((r) => [r.rawName, r.entry]));
  const prevMidById = new Map<string, Raw>();
  for (const r of prevMid) prevMidById.set(r.entry.id, r);
  // Where an id sits in the previous list: among the changed entries, else in the common parts.
  const prevCommonNameOf = (id: string): string | null => idIn(prevBody, ps, 0, head, id) ?? idIn(prevBody, ps, ps.length - tail, ps.length, id);
  const nextCommonNameOf = (id: string): string | null =>
    idIn(next.archivesBody, ns, 0, head, id) ?? idIn(next.archivesBody, ns, ns.length - tail, ns.length, id);

  const added: string[] = [];
  const replaced: string[] = [];
  const retimed: Retimed[] = [];
  const renamed: Renamed[] = [];
  const pointsAtListed: ArchiveRef[] = [];
  const relisted: ArchiveRef[] = [];
  const appeared: ArchiveEntry[] = [];
  const timeOutOfRange: TimeOutOfRange[] = [];
  const idsInNextMid = new Map<string, string>();

  for (const { rawName, entry } of nextMid) {
    const before = prevByName.get(rawName);
    if (before && before.id === entry.id) {
      if (before.time !== entry.time) retimed.push({ name: entry.name, id: entry.id, from: before.time, to: entry.time });
      idsInNextMid.set(entry.id, entry.name);
      continue;
    }
    if (before) replaced.push(entry.name);
    else added.push(entry.name);
    appeared.push(entry);
    const otherHere = idsInNextMid.get(entry.id) ?? nextCommonNameOf(entry.id);
    idsInNextMid.set(entry.id, entry.name);
    const prevMidRaw = prevMidById.get(entry.id);
    if (otherHere !== null) {
      pointsAtListed.push({ name: entry.name, id: entry.id, listedAs: otherHere });
    } else if (prevMidRaw && nextByName.get(prevMidRaw.rawName)?.id === entry.id) {
      // Listed under its old name as well, further on in this list.
      pointsAtListed.push({ name: entry.name, id: entry.id, listedAs: prevMidRaw.entry.name });
    } else if (prevMidRaw) {
      renamed.push({ id: entry.id, from: prevMidRaw.entry.name, to: entry.name });
      if (prevMidRaw.entry.time !== entry.time) retimed.push({ name: entry.name, id: entry.id, from: prevMidRaw.entry.time, to: entry.time });
    } else if (prevCommonNameOf(entry.id) !== null) {
      // Unreachable while the common parts are equal in both lists (otherHere found it); kept for safety.
      pointsAtListed.push({ name: entry.name, id: entry.id, listedAs: prevCommonNameOf(entry.id) as string });
    } else {
      const earlier = listedBefore?.get(entry.id);
      if (earlier !== undefined) relisted.push({ name: entry.name, id: entry.id, listedAs: earlier });
      else if (serverTime && !isCheckpoint(entry.name)) {
        const t = parseArchiveTime(entry.time);
        const why = t === null ? 'unreadable' : t > serverTime.getTime() + FUTURE_TOLERANCE_MS ? 'future' : t < serverTime.getTime() - PAST_TOLERANCE_MS ? 'past' : null;
        if (why) timeOutOfRange.push({ name: entry.name, id: entry.id, time: entry.time, why });
      }
    }
  }
  const removed = prevMid.filter((r) => !nextByName.has(r.rawName)).map((r) => r.entry.name);
  const gone = prevMid.filter((r) => nextByName.get(r.rawName)?.id !== r.entry.id).map((r) => r.entry);
  const promoted = removed.filter((r) => {
    const base = CHECKPOINT.exec(r)?.[1];
    return base !== undefined && added.includes(base);
  });
  return { added, removed, replaced, renamed, retimed, pointsAtListed, relisted, promoted, appeared, gone, timeOutOfRange };
}

const setDiff = (a: readonly string[], b: readonly string[]) => a.filter((x) => !b.includes(x));
const list = (xs: readonly string[]) => xs.join(', ');

export function judgeManifestChange(input: ManifestChangeInput): ManifestJudgement {
  const { next, role } = input;
  const baseline = input.previous === 'unknown';
  const previous = input.previous === 'unknown' ? null : input.previous;
  const archives = baseline
    ? { added: [], removed: [], replaced: [], renamed: [], retimed: [], pointsAtListed: [], relisted: [], promoted: [], appeared: archiveEntriesOf(next), gone: [], timeOutOfRange: [] }
    : listChange(previous, next, input.listedBefore, input.serverTime);

  const fromTs = previous?.timestamp ?? null;
  let increased: boolean | null = null;
  if (fromTs !== null) {
    const a = microseconds(fromTs);
    const b = microseconds(next.timestamp);
    increased = a !== null && b !== null ? b > a : next.timestamp > fromTs;
  }
  const itemKeysBefore = previous?.itemKeys ?? null;
  const itemKeys =
    previous && (itemKeysBefore !== null || next.itemKeys !== null)
      ? { added: setDiff(next.itemKeys ?? [], itemKeysBefore ?? []), removed: setDiff(itemKeysBefore ?? [], next.itemKeys ?? []) }
      : null;
  const configChanged = previous !== null && !((previous.config ?? Buffer.alloc(0)).equals(next.config ?? Buffer.alloc(0)));
  const change: ManifestChange = {
    ...archives,
    version: previous && previous.version !== next.version ? { from: previous.version, to: next.version } : null,
    timestamp: { from: fromTs, to: next.timestamp, increased },
    configChanged,
    mandatoryFeaturesAdded: previous ? setDiff(next.mandatoryFeatures, previous.mandatoryFeatures) : [],
    mandatoryFeaturesRemoved: previous ? setDiff(previous.mandatoryFeatures, next.mandatoryFeatures) : [],
    itemKeys: itemKeys && (itemKeys.added.length > 0 || itemKeys.removed.length > 0) ? itemKeys : null,
    tam: next.tam,
  };
  return { change, ...findingsOf(change, input, previous) };
}

/** The archives a removal limit counts: every archive gone from the list but checkpoints (renames and replacements are no removals a prune may make). */
export function countedRemovals(change: ManifestChange): ArchiveEntry[] {
  return change.gone.filter((a) => !isCheckpoint(a.name));
}

const quoted = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ');
const archivesWord = (xs: readonly unknown[]) => (xs.length === 1 ? 'archive' : 'archives');
/** "an append key", "a prune key": who a refusal names. */
const roleKey = (role: Role | null) => (role ? `${role === 'append' ? 'an' : 'a'} ${role} key` : 'a writer borgkeep did not see');
const ROLE_RULE: Record<Role, string> = { read: 'read writes nothing', append: 'append adds only', prune: 'prune only removes', full: 'full may change anything' };

/** A duration as the CLI takes it: 30d, 12h, 90m or seconds. */
export function formatDuration(seconds: number): string {
  for (const [unit, n] of [['d', 86_400], ['h', 3600], ['m', 60]] as const) if (seconds % n === 0 && seconds >= n) return `${seconds / n}${unit}`;
  return `${seconds}s`;
}

function retentionFindings(c: ManifestChange, previous: Manifest | null, r: NonNullable<ManifestChangeInput['retention']>, add: (f: ManifestFinding) => void): void {
  const { rule, firstSeen, now } = r;
  const actor = roleKey('prune');
  const seen = (a: ArchiveEntry) => firstSeen(a)?.getTime() ?? now.getTime();
  if (rule.prefix !== null) {
    const outside = c.gone.filter((a) => !a.name.startsWith(rule.prefix as string)).map((a) => a.name);
    if (outside.length > 0) {
      add({
        kind: 'retention',
        suspicious: true,
        message: `the prune session removed ${list(outside)}, outside its prefix '${rule.prefix}'`,
        rule: `--prefix ${rule.prefix}`,
        refusal: `${actor} may not remove ${archivesWord(outside)} ${quoted(outside)}: its grant covers only archives named '${rule.prefix}...'`,
      });
    }
  }
  const removals = countedRemovals(c);
  if (rule.minAgeSeconds !== null) {
    const young = removals.filter((a) => now.getTime() - seen(a) < (rule.minAgeSeconds as number) * 1000);
    if (young.length > 0) {
      const ages = young.map((a) => {
        const at = firstSeen(a);
        return at ? `'${a.name}' first seen ${at.toISOString()}` : `'${a.name}' never seen by the server before`;
      });
      add({
        kind: 'retention',
        suspicious: true,
        message: `the prune session removed ${list(young.map((a) => a.name))}, younger than its --min-age ${formatDuration(rule.minAgeSeconds)} by the server's first sighting`,
        rule: `--min-age ${formatDuration(rule.minAgeSeconds)}`,
        refusal: `${actor} may not remove ${archivesWord(young)} ${quoted(young.map((a) => a.name))}: the server first saw ${young.length === 1 ? 'it' : 'them'} less than ${formatDuration(rule.minAgeSeconds)} ago (${ages.join('; ')})`,
      });
    }
  }
  if (rule.keepLast !== null && removals.length > 0 && previous) {
    const inScope = archiveEntriesOf(previous)
      .filter((a) => !isCheckpoint(a.name) && (rule.prefix === null || a.name.startsWith(rule.prefix)))
      .map((a) => ({ a, seen: seen(a), time: undefined as number | null | undefined }));
    // Newest first by the server's sighting; the client's time and the name only break ties (the
    // archives a first look at the repository found all share one sighting), read only then
    // (undefined: not read yet; null: not a time).
    const timeOf = (x: (typeof inScope)[number]): number | null => (x.time === undefined ? (x.time = parseArchiveTime(x.a.time)) : x.time);
    inScope.sort((x, y) => y.seen - x.seen || (timeOf(y) ?? 0) - (timeOf(x) ?? 0) || (x.a.name < y.a.name ? 1 : -1));
    // borg prune's --keep-last is --keep-secondly: of archives whose times fall in one second it
    // keeps the newest and counts one. The grant's rule counts the same way, so that the stock
    // `borg prune --keep-last N` under a grant of --keep-last N is never refused for two backups
    // started within a second. An archive whose time cannot be read is a second of its own.
    const kept = new Set<string>();
    let lastSecond: number | null = null;
    for (const x of inScope) {
      if (kept.size >= rule.keepLast) break;
      const ms = timeOf(x);
      const second = ms === null ? null : Math.floor(ms / 1000);
      if (second !== null && second === lastSecond) continue;
      lastSecond = second;
      kept.add(`${x.a.id} ${x.a.name}`);
    }
    const hit = removals.filter((a) => kept.has(`${a.id} ${a.name}`)).map((a) => a.name);
    if (hit.length > 0) {
      const scope = rule.prefix === null ? '' : ` named '${rule.prefix}...'`;
      add({
        kind: 'retention',
        suspicious: true,
        message: `the prune session removed ${list(hit)}, among the ${rule.keepLast} newest archives${scope} its --keep-last ${rule.keepLast} keeps`,
        rule: `--keep-last ${rule.keepLast}${rule.prefix === null ? '' : ` --prefix ${rule.prefix}`}`,
        refusal: `${actor} may not remove ${archivesWord(hit)} ${quoted(hit)}: ${hit.length === 1 ? 'it is' : 'they are'} among the ${rule.keepLast} newest${scope}, which the grant keeps`,
      });
    }
  }
}

function findingsOf(c: ManifestChange, input: ManifestChangeInput, previous: Manifest | null): Pick<ManifestJudgement, 'findings' | 'suspicious'> {
  const { role } = input;
  const out: ManifestFinding[] = [];
  const actor = roleKey(role);
  const roleRule = role ? ROLE_RULE[role] : 'only borgkeep sessions write';
  /** A finding; suspicious ones say what may not be done, and by which rule. */
  const add = (kind: FindingKind, suspicious: boolean, message: string, refusal?: string, rule = roleRule) =>
    out.push(suspicious ? { kind, suspicious, message, rule, refusal: refusal ?? `${actor} may not write this manifest: ${message}` } : { kind, suspicious, message });
  const who = role ? `a session with the ${role} role` : 'an unattributed writer';
  const full = role === 'full';

  if (c.tam === 'invalid') add('tam', true, 'the manifest authentication (TAM) does not verify', `${actor} may not write a manifest whose authentication (TAM) does not verify`, 'the manifest is authenticated');
  if (c.tam === 'missing') {
    if (input.tamRequired === false) add('tam', false, 'the manifest has no authentication (TAM); the repository key does not require one');
    else add('tam', true, 'the manifest has no authentication (TAM)', `${actor} may not write a manifest without authentication (TAM)`, 'the manifest is authenticated');
  }
  if (c.timestamp.increased === false) {
    add('timestamp', true, `the manifest timestamp ${c.timestamp.to} does not increase (it was ${c.timestamp.from})`, `${actor} may not move the manifest's timestamp back (${c.timestamp.from} to ${c.timestamp.to})`, 'manifest times only increase');
  }
  if (c.version) add('version', !full, `${who} changed the manifest version from ${c.version.from} to ${c.version.to}`, `${actor} may not change the manifest version`);
  if (c.configChanged) {
    const flags = c.mandatoryFeaturesAdded.length > 0 ? `: mandatory feature ${c.mandatoryFeaturesAdded.length === 1 ? 'flag' : 'flags'} ${list(c.mandatoryFeaturesAdded)} added, which make borg refuse to work with the repository` : '';
    const gone = c.mandatoryFeaturesRemoved.length > 0 ? `${flags ? ';' : ':'} mandatory feature ${c.mandatoryFeaturesRemoved.length === 1 ? 'flag' : 'flags'} ${list(c.mandatoryFeaturesRemoved)} removed` : '';
    add('config', !full, `${who} changed the manifest's config${flags}${gone}`, `${actor} may not change the manifest's config (feature flags)${flags}${gone}`);
  }
  if (c.itemKeys) {
    if (c.itemKeys.removed.length > 0) add('item-keys', !full, `${who} removed ${c.itemKeys.removed.length === 1 ? 'item key' : 'item keys'} ${list(c.itemKeys.removed)} from the manifest (borg only ever adds them)`, `${actor} may not remove ${c.itemKeys.removed.length === 1 ? 'item key' : 'item keys'} ${list(c.itemKeys.removed)} from the manifest`);
    if (c.itemKeys.added.length > 0) add('item-keys', false, `${c.itemKeys.added.length === 1 ? 'item key' : 'item keys'} ${list(c.itemKeys.added)} added to the manifest (a newer borg)`);
  }

  for (const r of c.retimed) add('retimed', true, `${who} changed the time of archive ${r.name} from ${r.from} to ${r.to} (same archive id)`, `${actor} may not change the time of archive '${r.name}' (${r.from} to ${r.to})`, 'archive times do not move');
  for (const p of c.pointsAtListed) add('points-at-listed', true, `${who} added ${p.name}, an entry pointing at archive ${p.listedAs}, which is already listed`, `${actor} may not list archive '${p.listedAs}' again as '${p.name}'`, 'an archive is listed once');
  for (const r of c.renamed) add('renamed', !full, `${who} renamed archive ${r.from} to ${r.to} in the manifest only (same archive id)`, `${actor} may not rename archive '${r.from}' (to '${r.to}')`);
  for (const r of c.relisted) add('relisted', !full, `${who} listed ${r.name} again, an archive id the history listed before as ${r.listedAs}`, `${actor} may not list archive '${r.listedAs}' again as '${r.name}'`);
  for (const t of c.timeOutOfRange) {
    const what = t.why === 'unreadable' ? 'which is not a time' : t.why === 'future' ? 'more than a day after the server time of its transaction' : 'more than 7 days before the server time of its transaction';
    add('archive-time', true, `archive ${t.name} has the time ${t.time}, ${what}`, `${actor} may not add archive '${t.name}' with the time ${t.time}, ${what}`, 'new archives carry the time they were made');
  }

  // Renames and relisting are judged above; what remains are plain additions and removals.
  const renameTargets = new Set(c.renamed.map((r) => r.to));
  const renameSources = new Set(c.renamed.map((r) => r.from));
  if (role === 'prune' || role === 'read') {
    const adds = [...c.added.filter((n) => !renameTargets.has(n)), ...c.replaced];
    if (adds.length > 0) add('added', true, `${who} added ${list(adds)}; it may only remove archives`, `${actor} may not add ${archivesWord(adds)} ${quoted(adds)}`);
  }
  // A checkpoint replaced by the next one, removed, or become its archive is a backup's own course.
  const removed = c.removed.filter((n) => !isCheckpoint(n) && !renameSources.has(n));
  const replaced = c.replaced.filter((n) => !isCheckpoint(n));
  if (removed.length > 0 || replaced.length > 0) {
    const what = [removed.length ? `removed ${list(removed)}` : '', replaced.length ? `replaced ${list(replaced)}` : ''].filter(Boolean).join(' and ');
    const mayRemove = role === 'prune' || role === 'full';
    const refusal = [removed.length ? `remove ${archivesWord(removed)} ${quoted(removed)}` : '', replaced.length ? `replace ${archivesWord(replaced)} ${quoted(replaced)}` : ''].filter(Boolean).join(' or ');
    add('removed', !mayRemove, mayRemove ? `the ${role} session ${what}` : `${who} ${what}`, `${actor} may not ${refusal}`);
  }

  const own = input.writtenByWriter;
  if (own && role === 'append') {
    // What a backup adds is the archive it just wrote; the checkpoints it removes are its own.
    const listedTwice = new Set(c.pointsAtListed.map((p) => p.name));
    const notOwn = c.appeared.filter((a) => !listedTwice.has(a.name) && !renameTargets.has(a.name) && !own(a.id)).map((a) => a.name);
    if (notOwn.length > 0) {
      add('not-own', true, `${who} added ${list(notOwn)}, whose archive object it did not write itself`, `${actor} may not add ${archivesWord(notOwn)} ${quoted(notOwn)}: ${notOwn.length === 1 ? 'its' : 'their'} archive object was not written in this session`);
    }
    const othersCheckpoints = c.gone.filter((a) => isCheckpoint(a.name) && !own(a.id)).map((a) => a.name);
    if (othersCheckpoints.length > 0) {
      add('removed', true, `${who} removed ${othersCheckpoints.length === 1 ? 'checkpoint' : 'checkpoints'} ${list(othersCheckpoints)} it did not write`, `${actor} may not remove ${archivesWord(othersCheckpoints)} ${quoted(othersCheckpoints)}: only checkpoints it wrote itself`);
    }
  }
  if (input.retention && role === 'prune') retentionFindings(c, previous, input.retention, (f) => out.push(f));

  const findings = [...out.filter((f) => f.suspicious), ...out.filter((f) => !f.suspicious)];
  return { findings, suspicious: findings.some((f) => f.suspicious) };
}
