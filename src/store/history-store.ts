// What admins did to a repository's history: audits with their verdict, approvals, rollbacks and
// their undo. The compaction gate is derived from these events, newest first: a full audit that
// came out clean or an admin's approval opens it; any other audit that covers new transactions,
// and any rollback, closes it. No event at all: closed (nothing has been reviewed yet).

import { iso, toRepositoryEvent } from './rows.js';
import type { StoreDeps } from './store-deps.js';

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
  readonly open: boolean;
  /** One sentence: why it is open or closed, for the refusal message and the CLI. */
  readonly why: string;
}

export interface HistoryStore {
  /** `report`: an audit's whole report, kept so it can be shown again (JSON-serialisable). */
  recordEvent(event: Omit<RepositoryEvent, 'id' | 'at'> & { report?: unknown }): Promise<RepositoryEvent>;
  /** The newest audit of the repository with its stored report (null for audits recorded without one). */
  lastAudit(repositoryId: number): Promise<{ event: RepositoryEvent; report: unknown } | undefined>;
  listEvents(repositoryId: number, limit?: number): Promise<RepositoryEvent[]>;
  compactionGate(repositoryId: number): Promise<CompactionGate>;
}

/** The gate from a repository's events, newest first (ids descending). */
export function gateFromEvents(newestFirst: readonly RepositoryEvent[]): CompactionGate {
  // The dashboard asks this of every repository on each look: one pass, and the time is only
  // formatted for the event that decides. opener[i]: the newest opening event older than event i.
  const isOpener = (x: RepositoryEvent) => x.kind === 'approve' || (x.kind === 'audit' && x.verdict === 'clean');
  const opener: Array<RepositoryEvent | undefined> = new Array(newestFirst.length);
  for (let i = newestFirst.length - 1, older: RepositoryEvent | undefined; i >= 0; i--) {
    opener[i] = older;
    if (isOpener(newestFirst[i]!)) older = newestFirst[i];
  }
  const when = (e: RepositoryEvent) => e.at.toISOString().replace(/\.\d{3}Z$/, 'Z');
  for (let i = 0; i < newestFirst.length; i++) {
    const e = newestFirst[i]!;
    if (e.kind === 'approve') return { open: true, why: `${e.actor} approved the history through transaction ${e.throughTxn} at ${when(e)}` };
    if (e.kind === 'rollback' || e.kind === 'rollback-undo') {
      return { open: false, why: `the repository was rolled back at ${when(e)} and its history has not been reviewed since` };
    }
    if (e.kind === 'audit') {
      if (e.verdict === 'clean') return { open: true, why: `the audit at ${when(e)} found the history clean through transaction ${e.throughTxn}` };
      if (e.verdict === 'suspicious') return { open: false, why: `the audit at ${when(e)} found suspicious transactions that an admin has not approved` };
      // A structural audit cannot see archive changes: it neither opens nor closes the gate,
      // unless it saw transactions newer than what the last opening event covered.
      const o = opener[i];
      if (o && e.throughTxn !== null && o.throughTxn !== null && e.throughTxn > o.throughTxn) {
        return { open: false, why: `an audit at ${when(e)} saw transactions newer than the last review` };
      }
    }
  }
  return { open: false, why: 'the history since the last compaction has not been audited clean or approved yet' };
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
      return gateFromEvents(await listEvents(repositoryId));
    },
  };
}
