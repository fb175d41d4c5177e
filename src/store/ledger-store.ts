// The ledger: every session (who, where from, which repository, bytes, result), every
// transaction in it and every denial. The guard writes it as a session runs; the CLI and the
// API read it. Rows are never deleted or rewritten after their session ends, except that a
// session whose process died while it was open is closed as aborted.

import { iso, toDenial, toSession, toTransaction } from './rows.js';
import type { StoreDeps } from './store-deps.js';
import type { Denial, GuardStore, Session, Transaction } from './types.js';

export const DEFAULT_LEDGER_LIMIT = 50;
export const STALE_SESSION_DETAIL = "the session's process ended without closing it";

export interface LedgerEntry extends Session {
  transactions: Transaction[];
  denials: Denial[];
}

export interface LedgerStore
  extends Pick<
    GuardStore,
    'countWritingSessions' | 'startSession' | 'updateSession' | 'endSession' | 'recordTransaction' | 'recordDenial'
  > {
  /** Sessions newest first, each with its transactions and denials (oldest first). */
  listSessions(filter?: { repositoryId?: number; limit?: number }): Promise<LedgerEntry[]>;
  /**
   * Marks `open` sessions whose process is gone as `aborted`. isAlive says whether process pid
   * on host still runs (answer true when unsure). Returns how many sessions were closed.
   */
  closeStaleSessions(isAlive: (pid: number, host: string) => boolean): Promise<number>;
}

export function createLedgerStore({ db, now }: StoreDeps): LedgerStore {
  return {
    async startSession(session) {
      const row = await db
        .insertInto('sessions')
        .values({
          key_id: session.keyId,
          key_name: session.keyName,
          repository_id: null,
          repository_name: null,
          role: null,
          client_address: session.clientAddress,
          client_version: null,
          started_at: iso(session.startedAt),
          ended_at: null,
          detail: null,
          pid: session.pid,
          host: session.host,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return row.id;
    },

    async updateSession(sessionId, update) {
      const values = {
        ...(update.repositoryId !== undefined && { repository_id: update.repositoryId }),
        ...(update.repositoryName !== undefined && { repository_name: update.repositoryName }),
        ...(update.role !== undefined && { role: update.role }),
        ...(update.clientVersion !== undefined && { client_version: update.clientVersion }),
        ...(update.bytesIn !== undefined && { bytes_in: update.bytesIn }),
        ...(update.bytesOut !== undefined && { bytes_out: update.bytesOut }),
      };
      if (Object.keys(values).length === 0) return;
      await db.updateTable('sessions').set(values).where('id', '=', sessionId).execute();
    },

    async endSession(sessionId, end) {
      await db
        .updateTable('sessions')
        .set({
          ended_at: iso(end.endedAt),
          result: end.result,
          detail: end.detail,
          bytes_in: end.bytesIn,
          bytes_out: end.bytesOut,
        })
        .where('id', '=', sessionId)
        .execute();
    },

    async recordTransaction(tx) {
      const row = await db
        .insertInto('transactions')
        .values({
          session_id: tx.sessionId,
          borg_transaction_id: tx.borgTransactionId,
          objects_put: tx.objectsPut,
          objects_overwritten: tx.objectsOverwritten,
          objects_deleted: tx.objectsDeleted,
          manifest_written: tx.manifestWritten ? 1 : 0,
          state: tx.state,
          started_at: iso(tx.startedAt),
          ended_at: iso(tx.endedAt),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return row.id;
    },

    async recordDenial(denial) {
      const row = await db
        .insertInto('denials')
        .values({
          session_id: denial.sessionId,
          key_id: denial.keyId,
          repository_id: denial.repositoryId,
          method: denial.method,
          reason: denial.reason,
          message: denial.message,
          at: iso(denial.at),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return row.id;
    },

    async countWritingSessions(keyId, repositoryId, since) {
      const row = await db
        .selectFrom('sessions as s')
        .where('s.key_id', '=', keyId)
        .where('s.repository_id', '=', repositoryId)
        .where('s.started_at', '>=', iso(since))
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('transactions as t')
              .select('t.id')
              .whereRef('t.session_id', '=', 's.id')
              .where('t.state', '=', 'committed'),
          ),
        )
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async listSessions(filter = {}) {
      let query = db.selectFrom('sessions').selectAll();
      if (filter.repositoryId !== undefined) query = query.where('repository_id', '=', filter.repositoryId);
      const sessions = await query
        .orderBy('started_at', 'desc')
        .orderBy('id', 'desc')
        .limit(filter.limit ?? DEFAULT_LEDGER_LIMIT)
        .execute();
      if (sessions.length === 0) return [];
      const ids = sessions.map((s) => s.id);
      const [transactions, denials] = await Promise.all([
        db.selectFrom('transactions').selectAll().where('session_id', 'in', ids).orderBy('id').execute(),
        db.selectFrom('denials').selectAll().where('session_id', 'in', ids).orderBy('id').execute(),
      ]);
      return sessions.map((row) => ({
        ...toSession(row),
        transactions: transactions.filter((t) => t.session_id === row.id).map(toTransaction),
        denials: denials.filter((d) => d.session_id === row.id).map(toDenial),
      }));
    },

    async closeStaleSessions(isAlive) {
      const open = await db.selectFrom('sessions').select(['id', 'pid', 'host']).where('result', '=', 'open').execute();
      const dead = open.filter((s) => s.pid !== null && s.host !== null && !isAlive(s.pid, s.host)).map((s) => s.id);
      if (dead.length === 0) return 0;
      // `result = 'open'` again: the session may have ended properly since it was read.
      const updated = await db
        .updateTable('sessions')
        .set({ result: 'aborted', ended_at: iso(now()), detail: STALE_SESSION_DETAIL })
        .where('id', 'in', dead)
        .where('result', '=', 'open')
        .executeTakeFirst();
      return Number(updated.numUpdatedRows);
    },
  };
}
