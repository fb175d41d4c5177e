// What admins and the gate did to a repository's history: audits with their verdict, approvals,
// rollbacks and their undo, key changes, compactions let through or deferred. What the gate
// shows comes from these (their coverage, audit/compaction-gate.ts) and the ledger.

import { sql } from 'kysely';

import { coverageFromEvents, type Coverage } from '../audit/compaction-gate.js';
import { iso, toRepositoryEvent } from './rows.js';
import type { StoreDeps } from './store-deps.js';

/** A ledger transaction the gate must see verified before compaction (t: transactions). */
export const DESTRUCTIVE = sql<boolean>`(t.objects_overwritten > 0 or coalesce(t.objects_deleted_older, t.objects_deleted) > 0)`;

export type RepositoryEventKind = 'audit' | 'approve' | 'rollback' | 'rollback-undo' | 'key-change' | 'key-restore' | 'compaction' | 'compaction-deferred';
/** An audit's verdict as the gate sees it: `clean` needs the manifests (the passphrase). */
export type AuditEventVerdict = 'clean' | 'clean-structural' | 'suspicious';

export interface RepositoryEvent {
  id: number;
  repositoryId: number;
  kind: RepositoryEventKind;
  throughTxn: number | null;
  verdict: AuditEventVerdict | null;
  actor: string;
  detail: string;
  at: Date;
}

export interface CompactionGate {
  /** Whether a compaction asked for now would go through (not deferred). */
  readonly open: boolean;
  /** One sentence: why, for the console and the CLI. */
  readonly why: string;
  /** The last transaction an audit, approval or allowed compaction covered. */
  readonly coveredThrough: number | null;
  /** The newest transaction that waits for review, or null. */
  readonly waitingTxn: number | null;
}

export interface HistoryStore {
  /** `report`: an audit's whole report, kept so it can be shown again (JSON-serialisable). */
  recordEvent(event: Omit<RepositoryEvent, 'id' | 'at'> & { report?: unknown }): Promise<RepositoryEvent>;
  /** The newest audit of the repository with its stored report (null for audits recorded without one). */
  lastAudit(repositoryId: number): Promise<{ event: RepositoryEvent; report: unknown } | undefined>;
  listEvents(repositoryId: number, limit?: number): Promise<RepositoryEvent[]>;
  compactionGate(repositoryId: number): Promise<CompactionGate>;
}

/**
 * What the console and the API show of the gate: whether a compaction asked for now would go
 * through, from the coverage (audit/compaction-gate.ts) and the ledger's newest committed
 * transaction that deleted older objects or overwrote any. The guard decides from the disk at the
 * moment of compaction; this is what the ledger says, and they agree for everything borgkeep wrote.
 */
export function gateState(coverage: Coverage, lastDestructiveTxn: number | null): CompactionGate {
  const covered = coverage.coveredThrough;
  const by = coverage.by ?? (covered !== null ? `history is verified through transaction ${covered}` : null);
  if (lastDestructiveTxn === null || (covered !== null && lastDestructiveTxn <= covered)) {
    return {
      open: true,
      why: `${by ? `${by}; ` : ''}every later transaction only added data, so compaction goes through`,
      coveredThrough: covered,
      waitingTxn: null,
    };
  }
  return {
    open: false,
    why:
      `transaction ${lastDestructiveTxn} removed or overwrote data that nobody has verified yet` +
      (by ? ` (${by})` : '') +
      ': compaction is deferred until an audit with the passphrase or an approval covers it',
    coveredThrough: covered,
    waitingTxn: lastDestructiveTxn,
  };
}

export function createHistoryStore({ db, now }: StoreDeps): HistoryStore {
  const toEvent = toRepositoryEvent;
  const listEvents = async (repositoryId: number, limit = 1000) =>
    (await db.selectFrom('repository_events').selectAll().where('repository_id', '=', repositoryId).orderBy('id', 'desc').limit(limit).execute()).map(toEvent);
  return {
    async recordEvent(e) {
      const row = await db
        .insertInto('repository_events')
        .values({
          repository_id: e.repositoryId,
          kind: e.kind,
          through_txn: e.throughTxn,
          verdict: e.verdict,
          actor: e.actor,
          detail: e.detail,
          at: iso(now()),
          report: e.report === undefined ? null : JSON.stringify(e.report),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toEvent(row);
    },
    async lastAudit(repositoryId) {
      const row = await db
        .selectFrom('repository_events')
        .selectAll()
        .where('repository_id', '=', repositoryId)
        .where('kind', '=', 'audit')
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row && { event: toEvent(row), report: row.report === null ? null : (JSON.parse(row.report) as unknown) };
    },
    listEvents,
    async compactionGate(repositoryId) {
      const [events, last] = await Promise.all([
        listEvents(repositoryId),
        db
          .selectFrom('transactions as t')
          .innerJoin('sessions as s', 's.id', 't.session_id')
          .select((eb) => eb.fn.max('t.borg_transaction_id').as('m'))
          .where('s.repository_id', '=', repositoryId)
          .where('t.state', '=', 'committed')
          .where(DESTRUCTIVE)
          .executeTakeFirst(),
      ]);
      return gateState(coverageFromEvents(events), last?.m == null ? null : Number(last.m));
    },
  };
}
