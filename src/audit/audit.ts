// The audit of a repository's history: each committed transaction since the last compaction,
// who made it (the ledger session, key and role, or "unattributed" when it was written outside
// borgkeep), what it did to the objects and, with the key, to the archive list; a verdict per
// transaction and overall, the first suspicious transaction and the last known-good one.
//
// What a manifest write changed and whether its role may make that change is judged by
// src/archive/manifest-change.ts, the one judgement the live guard shares; this file adds what only
// the history shows (objects overwritten or deleted, unattributed writes, compaction steps).
//
// Pure: the history, the decoded manifests and the ledger's transactions come in from outside.

import type { Role } from '../store/types.js';
import { ManifestError, type Manifest, type ManifestArchive } from '../repository/manifest.js';
import { judgeManifestChange, type RetentionRule, type ArchiveRef, type ManifestChange, type Renamed, type Retimed, type TimeOutOfRange } from '../archive/manifest-change.js';
import type { ArchiveDiff } from './archive-list.js';
import type { RepositoryHistory, TxnHistory } from './history.js';

/** "1 object", "2 objects": plain words, never "object(s)". */
const objects = (n: number) => `${n} ${n === 1 ? 'object' : 'objects'}`;

export type TxnVerdict = 'ok' | 'notice' | 'suspicious';

/** A ledger transaction that committed, with its session. */
export interface Attribution {
  readonly borgTransactionId: number;
  readonly sessionId: number;
  readonly keyName: string | null;
  readonly role: Role | null;
  readonly at: Date;
}

/**
 * What the key told about a transaction's manifest, or why it could not. `diff` (archive-list.ts)
 * is no longer used: the change is judged from the manifests themselves (manifest-change.ts).
 */
export type ManifestReading =
  | {
      readonly manifest: Manifest;
      readonly diff?: ArchiveDiff | null;
      /** The same bytes as the manifest before it: written back unchanged (borg compact, borg with-lock). */
      readonly unchanged?: boolean;
    }
  | { readonly error: string }
  | null;

export interface AuditedTransaction {
  readonly id: number;
  readonly time: string | null;
  readonly verdict: TxnVerdict;
  /** Why the verdict is what it is; empty for ok. */
  readonly reasons: string[];
  readonly session: number | null;
  readonly key: string | null;
  readonly role: Role | null;
  readonly attributed: boolean;
  readonly objectsPut: number;
  readonly objectsOverwritten: number;
  readonly objectsDeleted: number;
  readonly manifestWritten: boolean;
  /** Archive names; null when the manifest could not be read (no passphrase). */
  readonly archivesAdded: string[] | null;
  readonly archivesRemoved: string[] | null;
  readonly archivesReplaced: string[] | null;
  readonly checkpointsPromoted: string[] | null;
  readonly manifestTimestamp: string | null;
  /** Compaction removed it from the disk: what is shown comes from what borgkeep kept of it. */
  readonly compacted: boolean;
  // Added with the manifest judgement (src/archive/manifest-change.ts); null when the manifests
  // were not read or this transaction wrote none.
  /** The server's own time of the transaction, which archive times are judged against. */
  readonly serverTime: string | null;
  /** Same archive id under a new name, the old name gone (a manifest-only rename). */
  readonly archivesRenamed: Renamed[] | null;
  /** Same name and id, another time. */
  readonly archivesRetimed: Retimed[] | null;
  /** New entries pointing at an archive id listed under another name. */
  readonly archivesPointingAtListed: ArchiveRef[] | null;
  /** New entries with an id an earlier manifest of the history listed. */
  readonly archivesRelisted: ArchiveRef[] | null;
  /** New archives whose time is outside the window around the server time. */
  readonly archiveTimesOutOfWindow: TimeOutOfRange[] | null;
  readonly manifestVersion: number | null;
  readonly configChanged: boolean | null;
  readonly mandatoryFeaturesAdded: string[] | null;
  readonly itemKeysChanged: { readonly added: string[]; readonly removed: string[] } | null;
  /** The manifest's TAM: ok, missing, invalid, or unchecked (no key). */
  readonly tam: Manifest['tam'] | null;
}

/** An archive entry as it first appeared in this history, with the server's time of that transaction. */
export interface ArchiveSighting {
  readonly name: string;
  readonly id: string;
  /** The client's time, as written in the manifest. */
  readonly time: string;
  readonly transaction: number;
  /** The server's time of that transaction; null when neither the ledger nor the transactions log has it. */
  readonly serverTime: string | null;
  /** Listed by the first manifest after a compaction: it appeared then or earlier. */
  readonly baseline: boolean;
}

/** An archive of the last manifest, with when the server first saw it. */
export interface ReportedArchive extends ManifestArchive {
  /**
   * The server's time at which this (name, id) was first seen: the earliest recorded sighting
   * (audit-service.ts keeps them across audits and compactions), else this history's; null if unknown.
   */
  readonly firstSeen: string | null;
  readonly firstSeenTransaction: number | null;
}

export interface AuditReport {
  readonly verdict: 'clean' | 'suspicious';
  readonly firstSuspiciousTransaction: number | null;
  readonly lastKnownGoodTransaction: number | null;
  /** Whether the manifests were decrypted (a passphrase, or an unencrypted repository). */
  readonly manifestsRead: boolean;
  /** Checks that were not made because they need the key. */
  readonly checksNeedingKey: string[];
  readonly compactedBefore: number | null;
  readonly uncommittedSegments: number[];
  readonly problems: string[];
  readonly transactions: AuditedTransaction[];
  /** The archives of the last transaction's manifest, when it was read. */
  readonly archives: ReportedArchive[] | null;
  /** Every archive entry that appeared in the history read, oldest first; null when the manifests were not read. */
  readonly sightings: ArchiveSighting[] | null;
}

const TAM_CHECK = 'manifest authentication (TAM)';
export const CHECKS_NEEDING_KEY = [
  'which archives each transaction added, removed or replaced',
  'archives removed by sessions whose role may not remove them',
  `${TAM_CHECK} and increasing manifest timestamps`,
  "archive renames, moved archive times, archive times far from the server's clock, entries pointing at listed archives",
  "changes of the manifest's version, config (feature flags) and item keys",
];

export function auditHistory(
  history: RepositoryHistory,
  attributions: readonly Attribution[],
  /** What the manifests said (null: they could not be read, no key): per transaction, and the archives now. */
  read: { readonly manifests: ReadonlyMap<number, ManifestReading>; readonly archives: ManifestArchive[] | null; readonly tamChecked: boolean } | null,
  /**
   * The retention rule of the grant a `prune` session held (the compaction gate with a held key
   * gives it; the admin's audit does not): its removals are then judged against it, as the live
   * guard judges them, with the server's first sightings (`firstSeen`, else this history's own).
   */
  rules?: { readonly retentionOf: (who: Attribution) => RetentionRule | null; readonly firstSeen?: (a: ManifestArchive) => Date | null },
): AuditReport {
  const manifestsRead = read !== null;
  const tamChecked = read?.tamChecked ?? false;
  // The newest ledger transaction per borg transaction id (ids are reused after a rollback).
  const byTxn = new Map<number, Attribution>();
  for (const a of attributions) {
    const seen = byTxn.get(a.borgTransactionId);
    if (!seen || seen.at < a.at) byTxn.set(a.borgTransactionId, a);
  }
  const txns = history.transactions;
  const out: AuditedTransaction[] = [];
  // A history that starts at the repository's creation starts from no archives; after a
  // compaction, the first manifest read is the baseline.
  let previous: Manifest | null | 'unknown' = history.compactedBefore === null ? null : 'unknown';
  const listedBefore = new Map<string, string>();
  const sightings: ArchiveSighting[] = [];
  /** The server's time at which this history first lists each (id, name). */
  const seenHere = new Map<string, Date>();

  for (let i = 0; i < txns.length; i++) {
    const t: TxnHistory = txns[i];
    const reasons: string[] = [];
    const notices: string[] = [];
    let who = byTxn.get(t.id);
    let compactionStep = false;
    if (!who && t.manifestPuts === 0) {
      // borg's compaction commits in steps; only the last step's id is in the ledger. Steps
      // without a manifest write directly before a full session's commit belong to it.
      let j = i + 1;
      while (j < txns.length && !byTxn.has(txns[j].id) && txns[j].manifestPuts === 0) j++;
      const next = j < txns.length ? byTxn.get(txns[j].id) : undefined;
      if (next?.role === 'full') {
        who = next;
        compactionStep = true;
      }
    }
    const role = who?.role ?? null;
    if (!who) reasons.push('written outside borgkeep: no ledger session made this transaction');

    const reading = read?.manifests.get(t.id) ?? null;
    let change: ManifestChange | null = null;
    let manifest: Manifest | null = null;
    // The server's own time of the transaction: the ledger's commit, else borg's transactions log.
    const logged = t.time !== null ? new Date(t.time) : null;
    const serverTime = who?.at ?? (logged && !Number.isNaN(logged.getTime()) ? logged : null);
    if (t.manifest && reading && 'manifest' in reading && reading.unchanged === true && previous !== null && previous !== 'unknown') {
      // borg compact (and with-lock) puts back the manifest it read: nothing changed, nothing to
      // judge (its timestamp does not increase because it is the same manifest).
      manifest = reading.manifest;
      notices.push('the manifest was written back unchanged (as borg compact does)');
    } else if (t.manifest && reading && 'manifest' in reading) {
      manifest = reading.manifest;
      try {
        const rule = role === 'prune' && who && rules ? rules.retentionOf(who) : null;
        const firstSeen = (a: ManifestArchive) => rules?.firstSeen?.(a) ?? seenHere.get(`${a.id} ${a.name}`) ?? null;
        const retention = rule ? { rule, firstSeen, now: serverTime ?? who!.at } : undefined;
        const judged = judgeManifestChange({ previous, next: manifest, role, serverTime, listedBefore, ...(retention && { retention }) });
        change = judged.change;
        // borgkeep's own rollback writes an earlier manifest back (older timestamp, archives
        // listed again): the admin's act, shown, not held against the history.
        const restored = who?.keyName?.startsWith('(rollback by ') === true;
        if (restored) notices.push(`${who?.keyName?.slice(1, -1)} wrote back an earlier manifest`);
        for (const f of judged.findings) (f.suspicious && !(restored && f.kind !== 'tam') ? reasons : notices).push(f.message);
        const baseline = previous === 'unknown';
        for (const a of change.appeared) {
          if (serverTime && !seenHere.has(`${a.id} ${a.name}`)) seenHere.set(`${a.id} ${a.name}`, serverTime);
          sightings.push({ name: a.name, id: a.id, time: a.time, transaction: t.id, serverTime: serverTime?.toISOString() ?? null, baseline });
        }
        // Every id ever listed: one that comes back after it left the list is "relisted" (the
        // judgement asks only about ids the previous list does not hold).
        for (const a of change.appeared) if (!listedBefore.has(a.id)) listedBefore.set(a.id, a.name);
      } catch (error) {
        if (!(error instanceof ManifestError)) throw error;
        reasons.push(`the manifest cannot be read: ${error.message}`);
      }
      previous = manifest;
    } else if (t.manifest && reading && 'error' in reading) {
      reasons.push(`the manifest cannot be read: ${reading.error}`);
    }

    if (t.objectsOverwritten > 0) {
      if (compactionStep) notices.push(`compaction by session ${who?.sessionId} moved ${objects(t.objectsOverwritten)}`);
      else reasons.push(`overwrote ${objects(t.objectsOverwritten)} already in the repository`);
    }
    // An append session may delete what it wrote itself, also in an earlier transaction of the
    // same session (borg removes its previous checkpoint at each checkpoint), as the guard allows.
    const sameSession = (txnId: number) => who !== undefined && byTxn.get(txnId)?.sessionId === who.sessionId;
    const deletedOthers = t.deletedOlderFrom.filter((from) => !sameSession(from)).length;
    if (deletedOthers > 0 && role === 'append') reasons.push(`an append session deleted ${objects(deletedOthers)} it did not write`);
    if (t.manifestPuts === 0 && !compactionStep && (t.objectsPut > 0 || t.deletedOlder > 0 || t.objectsOverwritten > 0)) {
      reasons.push('it changed objects without writing a manifest');
    }
    if (change) {
      if (deletedOthers > 0 && change.removed.length === 0 && !compactionStep) reasons.push(`deleted ${objects(deletedOthers)} but removed no archive`);
    } else if (deletedOthers > 0 && !manifestsRead && role !== 'prune' && role !== 'full' && role !== 'append') {
      // Without the key a prune cannot be told from a chunk wipe; roles that may delete (and
      // append, checked above) are left to the key-based checks.
      reasons.push(`deleted ${objects(deletedOthers)}`);
    }

    const verdict: TxnVerdict = reasons.length > 0 ? 'suspicious' : notices.length > 0 ? 'notice' : 'ok';
    out.push({
      id: t.id,
      time: t.time ?? (who ? who.at.toISOString() : null),
      verdict,
      reasons: reasons.length > 0 ? [...reasons, ...notices] : notices,
      session: who?.sessionId ?? null,
      key: who?.keyName ?? null,
      role,
      attributed: who !== undefined,
      objectsPut: t.objectsPut,
      objectsOverwritten: t.objectsOverwritten,
      objectsDeleted: t.deletedOlder + t.deletedOwn + t.deletedUnknown,
      manifestWritten: t.manifestPuts > 0,
      archivesAdded: change ? change.added : null,
      archivesRemoved: change ? change.removed : null,
      archivesReplaced: change ? change.replaced : null,
      checkpointsPromoted: change ? change.promoted : null,
      manifestTimestamp: manifest?.timestamp ?? null,
      serverTime: serverTime?.toISOString() ?? null,
      archivesRenamed: change ? change.renamed : null,
      archivesRetimed: change ? change.retimed : null,
      archivesPointingAtListed: change ? change.pointsAtListed : null,
      archivesRelisted: change ? change.relisted : null,
      archiveTimesOutOfWindow: change ? change.timeOutOfRange : null,
      manifestVersion: manifest?.version ?? null,
      configChanged: change ? change.configChanged : null,
      mandatoryFeaturesAdded: change ? change.mandatoryFeaturesAdded : null,
      itemKeysChanged: change ? change.itemKeys : null,
      tam: manifest?.tam ?? null,
      compacted: t.kept === true,
    });
  }

  const firstBad = out.find((t) => t.verdict === 'suspicious') ?? null;
  const problems = [...history.problems, ...history.tailProblems].map((p) => `segment ${p.segment} at offset ${p.offset}: ${p.problem}`);
  const lastGood = firstBad ? ([...out].reverse().find((t) => t.id < firstBad.id) ?? null) : (out.at(-1) ?? null);
  // Damage in committed history makes any verdict meaningless (run-audit.ts refuses to give one);
  // damage in the uncommitted tail is listed but harmless.
  const suspicious = firstBad !== null || history.problems.length > 0;
  return {
    verdict: suspicious ? 'suspicious' : 'clean',
    firstSuspiciousTransaction: firstBad?.id ?? null,
    lastKnownGoodTransaction: lastGood?.id ?? null,
    manifestsRead,
    checksNeedingKey: manifestsRead ? (tamChecked ? [] : [TAM_CHECK]) : CHECKS_NEEDING_KEY,
    compactedBefore: history.compactedBefore,
    uncommittedSegments: history.uncommittedSegments,
    problems,
    transactions: out,
    archives: read?.archives ? withFirstSeen(read.archives, sightings) : null,
    sightings: read ? sightings : null,
  };
}

/** The archives now, each with the earliest sighting of its (name, id) in this history. */
function withFirstSeen(archives: readonly ManifestArchive[], sightings: readonly ArchiveSighting[]): ReportedArchive[] {
  const first = new Map<string, ArchiveSighting>();
  for (const s of sightings) {
    const k = `${s.id} ${s.name}`;
    if (!first.has(k)) first.set(k, s);
  }
  return archives.map((a) => {
    const s = first.get(`${a.id} ${a.name}`);
    return { ...a, firstSeen: s?.serverTime ?? null, firstSeenTransaction: s?.transaction ?? null };
  });
}
