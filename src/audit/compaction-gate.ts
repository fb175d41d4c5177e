// The compaction gate as coverage of transactions (ARCHITECTURE.md "Compaction gate"). The
// invariant: nothing that an audit or a rollback would need is destroyed unless the transactions
// it belongs to were verified. A compacting commit, `destroy` and `check --repair` are decided at
// that moment from the repository's history on disk, never from a flag set earlier:
//
//  - a transaction is covered when an admin verified it with the key (an audit that read the
//    manifests and found it clean) or approved it by name, for that transaction or a later one;
//    a transaction an allowed compaction went over was verified then, and stays so;
//  - a transaction that is not covered is verified structurally, without the key, when its
//    compaction destroys nothing a rollback needs: it deleted no object written before its own
//    session and overwrote nothing but the manifest (whose versions borgkeep keeps aside,
//    kept-manifests.ts). Every append transaction the guard lets through is of this kind;
//  - anything else (a prune or full session removing archives, a hostile client) waits for an
//    audit with the passphrase or an approval; until then a compacting commit is deferred (sent
//    on as borg's own commit without compaction) and destroy and repair are refused.
//
// A rollback to T leaves nothing after T covered: transaction ids are segment numbers, which
// borg uses again after a rollback. Pure: events, history and the ledger come in from outside.

import type { Role } from '../store/types.js';
import type { RepositoryEvent } from '../store/history-store.js';
import type { TxnHistory } from './history.js';
import { formatBytes } from '../shared/size.js';

/** "1 object", "2 objects": plain words, never "object(s)". */
const objects = (n: number) => `${n} ${n === 1 ? 'object' : 'objects'}`;

/** What the events say about coverage. */
export interface Coverage {
  /** The last transaction verified with the key or approved (the audit's baseline), or null. */
  readonly keyVerifiedThrough: number | null;
  /** The last transaction an audit, approval or allowed compaction covered, or null. */
  readonly coveredThrough: number | null;
  /** One clause: what covers it, e.g. "ann approved it through transaction 12 at ...". */
  readonly by: string | null;
}

const when = (at: Date) => at.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The kinds of events that cover transactions, and the one that uncovers them. */
export const COVERING = (e: Pick<RepositoryEvent, 'kind' | 'verdict'>) => e.kind === 'approve' || e.kind === 'compaction' || (e.kind === 'audit' && e.verdict === 'clean');

/**
 * Coverage from a repository's events, given newest first (as the store lists them): the highest
 * transaction an audit that read the manifests, an approval or an allowed compaction covered
 * since the newest rollback. A rollback uncovers everything said before it, also about the
 * transactions it kept: simple, and on the safe side (the store's status query says the same).
 */
export function coverageFromEvents(newestFirst: readonly RepositoryEvent[]): Coverage {
  let key: number | null = null;
  let covered: number | null = null;
  let by: string | null = null;
  for (const e of newestFirst) {
    if (e.kind === 'rollback') break;
    const t = e.throughTxn;
    if (t === null || !COVERING(e)) continue;
    if (e.kind !== 'compaction' && (key === null || t > key)) key = t;
    if (covered === null || t > covered) {
      covered = t;
      by =
        e.kind === 'approve'
          ? `${e.actor} approved the history through transaction ${t} at ${when(e.at)}`
          : e.kind === 'audit'
            ? `the audit at ${when(e.at)} found the history clean through transaction ${t}`
            : `the compaction at ${when(e.at)} went over verified history through transaction ${t}`;
    }
  }
  return { keyVerifiedThrough: key, coveredThrough: covered, by };
}

/** A committed transaction of the ledger, as the gate needs it. */
export interface GateAttribution {
  readonly borgTransactionId: number;
  readonly sessionId: number;
  readonly keyName: string | null;
  readonly role: Role | null;
}

/** What the session asking to compact has written in its own transaction, not committed yet. */
export interface PendingWrites {
  readonly sessionId: number;
  /** Deletes of objects that the session did not write itself. */
  readonly deletedOlder: number;
  /** Puts of objects (not the manifest) that were already in the repository. */
  readonly overwritten: number;
}

export interface UnverifiedTransaction {
  /** borg's transaction id; null for the asking session's own transaction, not committed yet. */
  readonly id: number | null;
  readonly session: number | null;
  readonly key: string | null;
  readonly role: Role | null;
  /** What it destroyed that only a review can vouch for, e.g. "deleted 12 object(s) written by earlier sessions". */
  readonly why: string;
}

export interface GateDecision {
  readonly allow: boolean;
  /** The transactions that keep the gate from allowing, oldest first. */
  readonly unverified: UnverifiedTransaction[];
  /** How many transactions were verified structurally for this decision. */
  readonly structurallyVerified: number;
  readonly coverage: Coverage;
}

/** Why a transaction needs review, or null when its compaction destroys nothing a rollback needs. */
function structuralProblem(
  t: Pick<TxnHistory, 'id' | 'objectsOverwritten' | 'deletedOlderFrom'>,
  bySession: ReadonlyMap<number, GateAttribution>,
): string | null {
  const who = bySession.get(t.id);
  const reasons: string[] = [];
  if (t.objectsOverwritten > 0) reasons.push(`overwrote ${objects(t.objectsOverwritten)} already in the repository`);
  const older = who ? t.deletedOlderFrom.filter((from) => bySession.get(from)?.sessionId !== who.sessionId).length : t.deletedOlderFrom.length;
  if (older > 0) reasons.push(`deleted ${objects(older)} written by ${who ? 'earlier sessions' : 'earlier transactions'}`);
  if (reasons.length > 0 && !who) reasons.push('and was written outside borgkeep');
  return reasons.length > 0 ? reasons.join(' ') : null;
}

/**
 * Whether a compacting commit (or destroy, or repair) may go through now: every committed
 * transaction on disk after the coverage, and the asking session's own pending writes, must be
 * verified structurally.
 */
export function decideCompaction(
  transactions: readonly Pick<TxnHistory, 'id' | 'objectsOverwritten' | 'deletedOlderFrom'>[],
  attributions: readonly GateAttribution[],
  coverage: Coverage,
  pending: PendingWrites | null,
): GateDecision {
  // The newest ledger transaction per borg transaction id (ids are reused after a rollback).
  const byTxn = new Map<number, GateAttribution>();
  for (const a of attributions) byTxn.set(a.borgTransactionId, a);
  const unverified: UnverifiedTransaction[] = [];
  let structurallyVerified = 0;
  for (const t of transactions) {
    if (coverage.coveredThrough !== null && t.id <= coverage.coveredThrough) continue;
    const problem = structuralProblem(t, byTxn);
    if (problem === null) {
      structurallyVerified++;
      continue;
    }
    const who = byTxn.get(t.id);
    unverified.push({ id: t.id, session: who?.sessionId ?? null, key: who?.keyName ?? null, role: who?.role ?? null, why: problem });
  }
  if (pending && (pending.deletedOlder > 0 || pending.overwritten > 0)) {
    const parts = [
      pending.deletedOlder > 0 ? `deletes ${objects(pending.deletedOlder)} written by earlier sessions` : '',
      pending.overwritten > 0 ? `overwrites ${objects(pending.overwritten)}` : '',
    ].filter(Boolean);
    unverified.push({ id: null, session: pending.sessionId, key: null, role: null, why: `this session's own transaction ${parts.join(' and ')}` });
  }
  return { allow: unverified.length === 0, unverified, structurallyVerified, coverage };
}

/** "transaction 12 (session 7, key 'laptop', prune role: deleted ...)": one per unverified transaction. */
export function describeUnverified(list: readonly UnverifiedTransaction[], max = 3): string {
  const shown = list.slice(0, max).map((u) => {
    const who = [u.session !== null ? `session ${u.session}` : '', u.key ? `key '${u.key}'` : '', u.role ? `${u.role} role` : ''].filter(Boolean).join(', ');
    const what = u.id === null ? u.why : `transaction ${u.id}${who ? ` (${who})` : ''} ${u.why}`;
    return what;
  });
  const more = list.length > max ? `; and ${list.length - max} more` : '';
  return shown.join('; ') + more;
}

/** Bytes as the console shows them (1.5 MB), for the sentences of a deferral. */
export { formatBytes };
