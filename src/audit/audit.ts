// The audit of a repository's history: each committed transaction since the last compaction,
// who made it (the ledger session, key and role, or "unattributed" when it was written outside
// borgkeep), what it did to the objects and, with the key, to the archive list; a verdict per
// transaction and overall, the first suspicious transaction and the last known-good one.
//
// Pure: the history, the decoded manifests and the ledger's transactions come in from outside.

import type { Role } from '../store/types.js';
import type { Manifest, ManifestArchive } from '../repository/manifest.js';
import type { ArchiveDiff } from './archive-list.js';
import type { RepositoryHistory, TxnHistory } from './history.js';

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
 * What the key told about a transaction's manifest (and what it changed in the archive list,
 * null for the first one after a compaction), or why it could not.
 */
export type ManifestReading = { readonly manifest: Manifest; readonly diff: ArchiveDiff | null } | { readonly error: string } | null;

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
  readonly archives: ManifestArchive[] | null;
}

const TAM_CHECK = 'manifest authentication (TAM)';
export const CHECKS_NEEDING_KEY = [
  'which archives each transaction added, removed or replaced',
  'archives removed by sessions whose role may not remove them',
  `${TAM_CHECK} and increasing manifest timestamps`,
];

interface Diff extends ArchiveDiff {
  promoted: string[];
}

/** `X.checkpoint` (or `.checkpoint.N`) gone and `X` added: a backup finished after checkpoints. */
function withPromoted(d: ArchiveDiff): Diff {
  const checkpointOf = (n: string) => /^(.*)\.checkpoint(\.\d+)?$/.exec(n)?.[1];
  const promoted = d.removed.filter((r) => {
    const base = checkpointOf(r);
    return base !== undefined && d.added.includes(base);
  });
  return { ...d, promoted };
}

const isCheckpoint = (name: string) => /\.checkpoint(\.\d+)?$/.test(name);

export function auditHistory(
  history: RepositoryHistory,
  attributions: readonly Attribution[],
  /** What the manifests said (null: they could not be read, no key): per transaction, and the archives now. */
  read: { readonly manifests: ReadonlyMap<number, ManifestReading>; readonly archives: ManifestArchive[] | null; readonly tamChecked: boolean } | null,
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
  let lastTimestamp: string | null = null;

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
    let diff: Diff | null = null;
    let manifestTimestamp: string | null = null;
    if (t.manifest && reading && 'manifest' in reading) {
      const m = reading.manifest;
      manifestTimestamp = m.timestamp;
      if (m.tam === 'invalid') reasons.push('the manifest authentication (TAM) does not verify');
      if (m.tam === 'missing') reasons.push('the manifest has no authentication (TAM)');
      // borgkeep's own rollback writes an earlier manifest back, older timestamp and all.
      const restored = who?.keyName?.startsWith('(rollback by ') === true;
      if (restored) notices.push(`${who?.keyName?.slice(1, -1)} wrote back an earlier manifest`);
      else if (lastTimestamp !== null && m.timestamp <= lastTimestamp) reasons.push(`the manifest timestamp ${m.timestamp} does not increase`);
      lastTimestamp = m.timestamp;
      diff = reading.diff && withPromoted(reading.diff);
    } else if (t.manifest && reading && 'error' in reading) {
      reasons.push(`the manifest cannot be read: ${reading.error}`);
    }

    if (t.objectsOverwritten > 0) {
      if (compactionStep) notices.push(`compaction by session ${who?.sessionId} moved ${t.objectsOverwritten} object(s)`);
      else reasons.push(`overwrote ${t.objectsOverwritten} object(s) already in the repository`);
    }
    // An append session may delete what it wrote itself, also in an earlier transaction of the
    // same session (borg removes its previous checkpoint at each checkpoint), as the guard allows.
    const sameSession = (txnId: number) => who !== undefined && byTxn.get(txnId)?.sessionId === who.sessionId;
    const deletedOthers = t.deletedOlderFrom.filter((from) => !sameSession(from)).length;
    if (deletedOthers > 0 && role === 'append') reasons.push(`an append session deleted ${deletedOthers} object(s) it did not write`);
    if (t.manifestPuts === 0 && !compactionStep && (t.objectsPut > 0 || t.deletedOlder > 0 || t.objectsOverwritten > 0)) {
      reasons.push('it changed objects without writing a manifest');
    }
    if (diff) {
      // Archives a checkpoint becomes, and checkpoints replaced by the next checkpoint, are a backup's own course.
      // A checkpoint archive goes away when the backup that wrote it moves on or finishes.
      const removed = diff.removed.filter((n) => !isCheckpoint(n));
      const replaced = diff.replaced.filter((n) => !isCheckpoint(n));
      if ((removed.length > 0 || replaced.length > 0) && (role === 'append' || role === 'read' || role === null)) {
        const what = [removed.length ? `removed ${removed.join(', ')}` : '', replaced.length ? `replaced ${replaced.join(', ')}` : ''].filter(Boolean).join(' and ');
        reasons.push(`${role ? `a session with the ${role} role` : 'an unattributed writer'} ${what}`);
      } else if (removed.length > 0 || replaced.length > 0) {
        notices.push(`the ${role} session ${removed.length ? `removed ${removed.join(', ')}` : ''}${removed.length && replaced.length ? ' and ' : ''}${replaced.length ? `replaced ${replaced.join(', ')}` : ''}`);
      }
      if (deletedOthers > 0 && diff.removed.length === 0 && !compactionStep) reasons.push(`deleted ${deletedOthers} object(s) but removed no archive`);
    } else if (deletedOthers > 0 && !manifestsRead && role !== 'prune' && role !== 'full' && role !== 'append') {
      // Without the key a prune cannot be told from a chunk wipe; roles that may delete (and
      // append, checked above) are left to the key-based checks.
      reasons.push(`deleted ${deletedOthers} object(s)`);
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
      archivesAdded: diff ? diff.added : null,
      archivesRemoved: diff ? diff.removed : null,
      archivesReplaced: diff ? diff.replaced : null,
      checkpointsPromoted: diff ? diff.promoted : null,
      manifestTimestamp,
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
    archives: read?.archives ?? null,
  };
}
