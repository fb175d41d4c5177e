// A repository's history as its segment files tell it (fact sheet B.4, B.5, E.3-E.6): every
// committed transaction since the last compaction, what each put, overwrote and deleted, and
// the manifest it wrote; plus the uncommitted tail and any damage met on the way. Reads entry
// headers of every segment and the data of manifest PUTs only. Never writes.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { listSegments, readPutData, readSegment, type ReadSegment, type SegmentFile, type SegmentProblem } from '../repository/segments.js';
import { MANIFEST_ID } from '../repository/manifest.js';
import type { HistoryCache } from './history-cache.js';

/** Where a transaction's last manifest PUT is: enough to read it again (readManifest). */
export interface ManifestEntry {
  readonly segment: number;
  readonly offset: number;
  readonly size: number;
}

export interface TxnHistory {
  /** borg's transaction id: the number of the segment holding its COMMIT. */
  readonly id: number;
  /** Objects put that were not live before (the manifest not counted). */
  readonly objectsPut: number;
  /** PUTs of an id that was live in the committed state before this transaction (manifest not counted). */
  readonly objectsOverwritten: number;
  /** DELETEs of objects put in an earlier transaction (manifest not counted). */
  readonly deletedOlder: number;
  /** DELETEs of objects put in this same transaction (borg's checkpoint clean-up). */
  readonly deletedOwn: number;
  /** DELETEs of ids that were not live (harmless, but no client sends them). */
  readonly deletedUnknown: number;
  /** For each older object deleted, the transaction that had put it (same order as the ids). */
  readonly deletedOlderFrom: readonly number[];
  readonly manifestPuts: number;
  /** The last manifest PUT of the transaction, or null when it wrote none. */
  readonly manifest: ManifestEntry | null;
  /** Time from the `transactions` file, if it has a line for this id (the last such line). */
  readonly time: string | null;
  /** Compaction removed it from the disk; borgkeep kept its facts and manifest (kept-manifests.ts). */
  readonly kept?: boolean;
}

export interface RepositoryHistory {
  readonly transactions: TxnHistory[];
  /** Segments after the last commit: an aborted or running transaction, deleted by the next writer. */
  readonly uncommittedSegments: number[];
  /** Damage in committed history: the audit cannot vouch for it. */
  readonly problems: SegmentProblem[];
  /** Damage in the uncommitted tail (a crash mid-write): harmless, borg deletes the tail. */
  readonly tailProblems: SegmentProblem[];
  /** Segment numbers missing below the last one: compaction removed them (history before is lost). */
  readonly compactedBefore: number | null;
  /** The envelope of a transaction's manifest, CRC-checked (a ManifestDamage when it fails). */
  readManifest(t: TxnHistory): Promise<Buffer>;
}

/** A manifest entry whose bytes no longer match their CRC (or are cut short). */
export class ManifestDamage extends Error {
  constructor(readonly problem: SegmentProblem) {
    super(`segment ${problem.segment} at offset ${problem.offset}: ${problem.problem}`);
  }
}

/** `transactions` lines: "transaction N, UTC time YYYY-MM-DDTHH:MM:SS.ffffff"; the last line per N wins. */
export function readTransactionTimes(repoPath: string): Map<number, string> {
  const times = new Map<number, string>();
  let text = '';
  try {
    text = readFileSync(join(repoPath, 'transactions'), 'utf8');
  } catch {
    return times;
  }
  for (const line of text.split('\n')) {
    const m = /^transaction (\d+), UTC time (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\s*$/.exec(line);
    if (m) times.set(Number(m[1]), `${m[2]}Z`);
  }
  return times;
}

/** Segments read ahead of the one being processed, in parallel. */
const READ_AHEAD = 16;

/** The state of the walk after a committed transaction: what a later walk can start from. */
export interface HistoryFold {
  /** The committed state: id (latin1 of its 32 bytes) -> transaction that put it. */
  readonly live: Map<string, number>;
  readonly transactions: Array<Omit<TxnHistory, 'time'>>;
  expectedNext: number;
  lastGap: number | null;
}

/**
 * `cache`: what earlier audits learnt (history-cache.ts): the walk's state after an unchanged
 * run of segments, and the entries of each unchanged segment.
 */
export async function readHistory(repoPath: string, cache?: HistoryCache): Promise<RepositoryHistory> {
  const times = readTransactionTimes(repoPath);
  const segments = listSegments(repoPath);
  const problems: SegmentProblem[] = [];
  const start = cache?.checkpoint(segments) ?? null;
  const first = start ? start.segments.length : 0;
  const fold: HistoryFold = start
    ? // The live objects are needed only to walk new segments; decoding them is most of a cached audit.
      { live: first < segments.length ? start.live() : new Map(), transactions: [...start.transactions], expectedNext: start.expectedNext, lastGap: start.lastGap }
    : { live: new Map(), transactions: [], expectedNext: segments[0]?.segment ?? 0, lastGap: null };
  const live = fold.live;
  // Manifest envelopes met on the way (the walk reads them anyway), so readManifest needs no read.
  const manifestData = new Map<ManifestEntry, Buffer>();

  let pending: ReadSegment[] = [];
  const isManifest = (id: Buffer): boolean => id.equals(MANIFEST_ID);
  // After a checkpoint, segments are new since the last audit: none is in the segment cache.
  const load = async (file: SegmentFile): Promise<ReadSegment> => (!start && cache?.segments.get(file)) || readSegment(file, isManifest);
  const reads: Array<Promise<ReadSegment>> = [];
  const readAhead = (i: number): void => {
    if (i < segments.length && reads[i] === undefined) {
      reads[i] = load(segments[i]);
      reads[i].catch(() => undefined); // awaited in order below; no unhandled rejection meanwhile
    }
  };
  // The fold takes these at each commit: a checkpoint holds them as of its last transaction.
  let expectedNext = fold.expectedNext;
  let lastGap = fold.lastGap;
  let committedThrough = first;
  for (let i = first; i < segments.length; i++) {
    for (let j = i; j < i + READ_AHEAD; j++) readAhead(j);
    const file = segments[i];
    if (file.segment !== expectedNext) lastGap = file.segment;
    expectedNext = file.segment + 1;
    const seg = await reads[i];
    delete reads[i];
    pending.push(seg);
    if (!seg.committed) continue;
    for (const s of pending) problems.push(...s.problems);
    if (cache && pending.every((s) => s.problems.length === 0)) {
      // Segments of a committed transaction never change again: remember them.
      for (let k = i - pending.length + 1; k <= i; k++) cache.segments.set(segments[k], pending[k - (i - pending.length + 1)]);
    }
    committedThrough = i + 1;
    fold.expectedNext = expectedNext;
    fold.lastGap = lastGap;

    const id = file.segment;
    const own = new Set<string>();
    let objectsPut = 0;
    let objectsOverwritten = 0;
    let deletedOlder = 0;
    let deletedOwn = 0;
    let deletedUnknown = 0;
    const deletedOlderFrom: number[] = [];
    let manifestPuts = 0;
    let manifest: ManifestEntry | null = null;
    for (const s of pending) {
      for (const e of s.entries) {
        if (e.tag === 'commit') continue;
        if (isManifest(e.id)) {
          if (e.tag === 'put') {
            manifestPuts++;
            manifest = { segment: s.segment, offset: e.offset, size: e.size };
            if (e.data) manifestData.set(manifest, e.data);
          }
          continue;
        }
        const k = e.id.toString('latin1');
        if (e.tag === 'put') {
          // Live before, or put earlier in this same transaction (own objects are live too).
          if (live.has(k)) objectsOverwritten++;
          else objectsPut++;
          own.add(k);
          live.set(k, id);
        } else {
          if (own.has(k)) deletedOwn++;
          else if (live.has(k)) {
            deletedOlder++;
            deletedOlderFrom.push(live.get(k) as number);
          } else deletedUnknown++;
          own.delete(k);
          live.delete(k);
        }
      }
    }
    fold.transactions.push({ id, objectsPut, objectsOverwritten, deletedOlder, deletedOwn, deletedUnknown, deletedOlderFrom, manifestPuts, manifest });
    pending = [];
  }
  if (cache && problems.length === 0) {
    cache.segments.save(segments.slice(0, committedThrough));
    // A walk that read nothing new leaves the checkpoint as it is.
    if (committedThrough > first || !start) cache.saveCheckpoint(segments.slice(0, committedThrough), fold);
  }
  const byNumber = new Map(segments.map((f) => [f.segment, f]));
  return {
    transactions: fold.transactions.map((t) => ({ ...t, time: times.get(t.id) ?? null })),
    uncommittedSegments: pending.map((s) => s.segment),
    problems,
    tailProblems: pending.flatMap((s) => s.problems),
    compactedBefore: lastGap ?? (segments.length > 0 && segments[0].segment > 0 ? segments[0].segment : null),
    async readManifest(t) {
      const entry = t.manifest;
      if (!entry) throw new Error(`transaction ${t.id} wrote no manifest`);
      const seen = manifestData.get(entry);
      if (seen) return seen;
      const file = byNumber.get(entry.segment);
      const damage = (problem: string) => new ManifestDamage({ segment: entry.segment, offset: entry.offset, problem });
      if (!file) throw damage('the segment is gone');
      const { data, crcOk } = await readPutData(file, entry);
      if (!crcOk) throw damage('CRC mismatch in a PUT entry');
      return data;
    },
  };
}
