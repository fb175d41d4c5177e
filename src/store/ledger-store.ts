// The ledger: every session (who, where from, which repository, bytes, result), every
// transaction in it and every denial. The guard writes it as a session runs; the CLI and the
// API read it. Rows are never deleted or rewritten after their session ends, except that a
// session whose process died while it was open is closed as aborted.

import { invalidInput } from '../errors.js';
import { iso, toDenial, toSession, toTransaction } from './rows.js';
import { classifyRun, type RunKind } from './run-kind.js';
import type { Database, SessionsTable } from './schema.js';
import type { StoreDeps } from './store-deps.js';
import type { Denial, GuardStore, NewSession, Role, Session, SessionResult, Transaction } from './types.js';
import type { Kysely, Selectable } from 'kysely';

export const DEFAULT_LEDGER_LIMIT = 50;
export const STALE_SESSION_DETAIL = "the session's process ended without closing it";

export interface LedgerEntry extends Session {
  transactions: Transaction[];
  denials: Denial[];
  /** What kind of run it was (run-kind.ts): as written at its end, or judged from what it did so far while open. */
  runKind: RunKind;
  /** The archives its transactions added, where an audit or the vault's archive rules saw them (archive sightings). */
  archives: Array<{ name: string; transactionId: number }>;
}

/** A page of a listing, newest first; `next` is the cursor of the following page, null at the end. */
export interface LedgerPage<T> {
  items: T[];
  next: string | null;
}

export interface LedgerFilter {
  repositoryId?: number;
  keyId?: number;
  /** Inclusive lower and exclusive upper bound on the start time (sessions) or the time (denials). */
  from?: Date;
  to?: Date;
  /** Sessions only. */
  result?: SessionResult;
  /** The kind of run (sessions: their own; denials and transactions: their session's). Open sessions have none yet. */
  runKind?: RunKind;
  limit: number;
  /** From the previous page's `next`. */
  cursor?: string;
}

/** A ledger row that committed a borg transaction, for the audit's attributions. */
export interface CommittedTransaction {
  borgTransactionId: number;
  sessionId: number;
  keyName: string | null;
  role: Role | null;
  at: Date;
  /** Its manifest change was judged at the commit with the repository's key and allowed (migration 0013). */
  archiveChecked?: boolean;
}

/**
 * Cursors are opaque to clients: base64url of "time|id" of the last row shown. Ordering by
 * (time desc, id desc) is total, so pages neither skip nor repeat rows while new ones arrive.
 */
export function encodeCursor(at: string, id: number): string {
  return Buffer.from(`${at}|${id}`).toString('base64url');
}

export function decodeCursor(cursor: string): { at: string; id: number } {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|(\d{1,15})$/.exec(text);
  if (!m) throw invalidInput('the cursor is not one this server handed out; start again without it');
  return { at: m[1]!, id: Number(m[2]) };
}

export interface LedgerStore
  extends Pick<
    GuardStore,
    'claimBackup' | 'startSession' | 'startSessionCounted' | 'updateSession' | 'endSession' | 'recordTransaction' | 'recordDenial'
  > {
  /** Sessions newest first, each with its transactions and denials (oldest first). */
  listSessions(filter?: { repositoryId?: number; limit?: number }): Promise<LedgerEntry[]>;
  /** Sessions newest first (start time, then id), filtered, one page at a time. */
  querySessions(filter: LedgerFilter): Promise<LedgerPage<LedgerEntry>>;
  /** Transactions newest first (end time, then id), filtered by their session's repository, key and kind, one page at a time. */
  queryTransactions(filter: Omit<LedgerFilter, 'result'> & { state?: Transaction['state'] }): Promise<LedgerPage<TransactionWithNames>>;
  /** One session with its transactions, denials, kind and archives; undefined when there is none. */
  getLedgerEntry(sessionId: number): Promise<LedgerEntry | undefined>;
  /** Denials newest first (time, then id), filtered, one page at a time. */
  queryDenials(filter: Omit<LedgerFilter, 'result'>): Promise<LedgerPage<Denial & { keyName: string | null; repositoryName: string | null }>>;
  /** Every committed transaction on the repository that has a borg transaction id, oldest first. */
  listCommittedTransactions(repositoryId: number): Promise<CommittedTransaction[]>;
  /**
   * Marks `open` sessions whose process is gone as `aborted`. isAlive says whether process pid
   * on host still runs (answer true when unsure). Returns how many sessions were closed.
   */
  closeStaleSessions(isAlive: (pid: number, host: string) => boolean): Promise<number>;
  /** The newest session and denial ids (0 for none): where a live view starts looking. */
  ledgerMarks(): Promise<LedgerMarks>;
  /**
   * For live views (the API's event stream), one look at what may have changed: sessions that
   * are open, newer than `marks.sessionId`, or in `watchIds` (open at the previous look); and
   * denials newer than `marks.denialId`. Two indexed queries, whatever the ledger's size.
   */
  ledgerChanges(marks: LedgerMarks, watchIds: readonly number[]): Promise<{ sessions: Session[]; denials: DenialWithNames[] }>;
}

export interface LedgerMarks {
  sessionId: number;
  denialId: number;
}

export type DenialWithNames = Denial & { keyName: string | null; repositoryName: string | null };
export type TransactionWithNames = Transaction & { keyName: string | null; repositoryName: string | null; runKind: RunKind | null };

/** sessions.methods as stored (a JSON array), or null. */
function parseMethods(text: string | null): string[] | null {
  if (text === null) return null;
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((m): m is string => typeof m === 'string') : null;
  } catch {
    return null;
  }
}

export function createLedgerStore({ db, now }: StoreDeps): LedgerStore {
  const withDetails = async (sessions: Selectable<SessionsTable>[]): Promise<LedgerEntry[]> => {
    if (sessions.length === 0) return [];
    const ids = sessions.map((s) => s.id);
    const [transactions, denials, archives] = await Promise.all([
      db.selectFrom('transactions').selectAll().where('session_id', 'in', ids).orderBy('id').execute(),
      db.selectFrom('denials').selectAll().where('session_id', 'in', ids).orderBy('id').execute(),
      // The archives a session's committed transactions added: sightings at exactly that
      // transaction (not a baseline, which says "then or earlier").
      db
        .selectFrom('transactions as t')
        .innerJoin('sessions as s', 's.id', 't.session_id')
        .innerJoin('archive_sightings as a', (join) => join.onRef('a.repository_id', '=', 's.repository_id').onRef('a.transaction_id', '=', 't.borg_transaction_id'))
        .select(['t.session_id', 'a.name', 'a.transaction_id'])
        .where('t.session_id', 'in', ids)
        .where('t.state', '=', 'committed')
        .where('a.baseline', '=', 0)
        .orderBy('a.first_seen_at')
        .execute(),
    ]);
    return sessions.map((row) => {
      const entry = {
        ...toSession(row),
        transactions: transactions.filter((t) => t.session_id === row.id).map(toTransaction),
        denials: denials.filter((d) => d.session_id === row.id).map(toDenial),
        archives: archives.filter((a) => a.session_id === row.id).map((a) => ({ name: a.name, transactionId: Number(a.transaction_id) })),
      };
      return { ...entry, runKind: (row.run_kind as RunKind | null) ?? classifyRun({ sessionKind: entry.kind, methods: parseMethods(row.methods), transactions: entry.transactions, denials: entry.denials }) };
    });
  };
  /** The kind of an ending session, from what the ledger holds of it. */
  const runKindOf = async (sessionId: number, methods: readonly string[] | null): Promise<RunKind> => {
    const [session, transactions, denials] = await Promise.all([
      db.selectFrom('sessions').select('kind').where('id', '=', sessionId).executeTakeFirst(),
      db.selectFrom('transactions').selectAll().where('session_id', '=', sessionId).execute(),
      db.selectFrom('denials').select(['method', 'reason']).where('session_id', '=', sessionId).execute(),
    ]);
    return classifyRun({ sessionKind: session?.kind === 'retention' || session?.kind === 'pull' ? session.kind : 'client', methods, transactions: transactions.map(toTransaction), denials });
  };

  return {
    async startSession(session) {
      return insertSession(db, session);
    },

    async startSessionCounted(session) {
      return db.transaction().execute(async (trx) => {
        const open = session.keyId === null
          ? 0
          : Number((await trx.selectFrom('sessions').select((eb) => eb.fn.countAll<number>().as('n')).where('key_id', '=', session.keyId).where('result', '=', 'open').executeTakeFirstOrThrow()).n);
        // At the limit the session is still started, to be refused: the ledger shows the refusal.
        return { id: await insertSession(trx, session), openBefore: open };
      });
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
      const methods = end.methods ? [...new Set(end.methods)].sort() : null;
      await db
        .updateTable('sessions')
        .set({
          ended_at: iso(end.endedAt),
          result: end.result,
          detail: end.detail,
          bytes_in: end.bytesIn,
          bytes_out: end.bytesOut,
          methods: methods && JSON.stringify(methods),
          run_kind: await runKindOf(sessionId, methods),
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
          objects_deleted_older: tx.objectsDeletedOlder ?? null,
          manifest_written: tx.manifestWritten ? 1 : 0,
          archive_checked: tx.archiveChecked ? 1 : 0,
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

    async claimBackup(claim) {
      return db.transaction().execute(async (trx) => {
        // Serialises the claims of one grant: on SQLite the transaction already holds the write
        // lock (BEGIN IMMEDIATE, sqlite-driver.ts); on PostgreSQL this no-op update locks the
        // grant's row until the commit, where a bare count would let two claims both see room.
        await trx.updateTable('grants').set((eb) => ({ writes_per_day: eb.ref('writes_per_day') })).where('id', '=', claim.grantId).execute();
        const row = await trx
          .selectFrom('sessions as s')
          .where('s.key_id', '=', claim.keyId)
          .where('s.repository_id', '=', claim.repositoryId)
          .where('s.id', '!=', claim.sessionId)
          .where((eb) =>
            eb.or([
              // A backup: committed new objects besides the manifest within the window.
              eb.exists(
                eb
                  .selectFrom('transactions as t')
                  .select('t.id')
                  .whereRef('t.session_id', '=', 's.id')
                  .where('t.state', '=', 'committed')
                  .where('t.objects_put', '>', 0)
                  .where('t.ended_at', '>=', iso(claim.since)),
              ),
              // Still running with a claim: it may commit yet. Once it ended without committing
              // new objects, its claim no longer counts.
              eb.and([eb('s.result', '=', 'open'), eb.exists(eb.selectFrom('backup_claims as c').select('c.id').whereRef('c.session_id', '=', 's.id'))]),
            ]),
          )
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow();
        const backups = Number(row.n);
        if (backups >= claim.limit) return { claimed: false, backups };
        await trx
          .insertInto('backup_claims')
          .values({ session_id: claim.sessionId, key_id: claim.keyId, repository_id: claim.repositoryId, claimed_at: iso(claim.at) })
          .onConflict((oc) => oc.column('session_id').doNothing())
          .execute();
        return { claimed: true, backups };
      });
    },

    async listSessions(filter = {}) {
      let query = db.selectFrom('sessions').selectAll();
      if (filter.repositoryId !== undefined) query = query.where('repository_id', '=', filter.repositoryId);
      const sessions = await query
        .orderBy('started_at', 'desc')
        .orderBy('id', 'desc')
        .limit(filter.limit ?? DEFAULT_LEDGER_LIMIT)
        .execute();
      return withDetails(sessions);
    },

    async querySessions(filter) {
      let query = db.selectFrom('sessions').selectAll();
      if (filter.repositoryId !== undefined) query = query.where('repository_id', '=', filter.repositoryId);
      if (filter.keyId !== undefined) query = query.where('key_id', '=', filter.keyId);
      if (filter.result !== undefined) query = query.where('result', '=', filter.result);
      if (filter.runKind !== undefined) query = query.where('run_kind', '=', filter.runKind);
      if (filter.from !== undefined) query = query.where('started_at', '>=', iso(filter.from));
      if (filter.to !== undefined) query = query.where('started_at', '<', iso(filter.to));
      if (filter.cursor !== undefined) {
        const c = decodeCursor(filter.cursor);
        query = query.where((eb) => eb.or([eb('started_at', '<', c.at), eb.and([eb('started_at', '=', c.at), eb('id', '<', c.id)])]));
      }
      const rows = await query.orderBy('started_at', 'desc').orderBy('id', 'desc').limit(filter.limit + 1).execute();
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      return { items: await withDetails(page), next: rows.length > filter.limit && last ? encodeCursor(last.started_at, last.id) : null };
    },

    async queryTransactions(filter) {
      let query = db
        .selectFrom('transactions as t')
        .innerJoin('sessions as s', 's.id', 't.session_id')
        .selectAll('t')
        .select(['s.key_name as key_name', 's.repository_name as repository_name', 's.run_kind as run_kind']);
      if (filter.repositoryId !== undefined) query = query.where('s.repository_id', '=', filter.repositoryId);
      if (filter.keyId !== undefined) query = query.where('s.key_id', '=', filter.keyId);
      if (filter.runKind !== undefined) query = query.where('s.run_kind', '=', filter.runKind);
      if (filter.state !== undefined) query = query.where('t.state', '=', filter.state);
      if (filter.from !== undefined) query = query.where('t.ended_at', '>=', iso(filter.from));
      if (filter.to !== undefined) query = query.where('t.ended_at', '<', iso(filter.to));
      if (filter.cursor !== undefined) {
        const c = decodeCursor(filter.cursor);
        query = query.where((eb) => eb.or([eb('t.ended_at', '<', c.at), eb.and([eb('t.ended_at', '=', c.at), eb('t.id', '<', c.id)])]));
      }
      const rows = await query.orderBy('t.ended_at', 'desc').orderBy('t.id', 'desc').limit(filter.limit + 1).execute();
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      return {
        items: page.map((row) => ({ ...toTransaction(row), keyName: row.key_name, repositoryName: row.repository_name, runKind: row.run_kind as RunKind | null })),
        next: rows.length > filter.limit && last ? encodeCursor(last.ended_at, last.id) : null,
      };
    },

    async getLedgerEntry(sessionId) {
      const row = await db.selectFrom('sessions').selectAll().where('id', '=', sessionId).executeTakeFirst();
      return row ? (await withDetails([row]))[0] : undefined;
    },

    async queryDenials(filter) {
      let query = db
        .selectFrom('denials as d')
        .leftJoin('sessions as s', 's.id', 'd.session_id')
        .selectAll('d')
        .select(['s.key_name as key_name', 's.repository_name as repository_name']);
      if (filter.repositoryId !== undefined) query = query.where('d.repository_id', '=', filter.repositoryId);
      if (filter.keyId !== undefined) query = query.where('d.key_id', '=', filter.keyId);
      if (filter.runKind !== undefined) query = query.where('s.run_kind', '=', filter.runKind);
      if (filter.from !== undefined) query = query.where('d.at', '>=', iso(filter.from));
      if (filter.to !== undefined) query = query.where('d.at', '<', iso(filter.to));
      if (filter.cursor !== undefined) {
        const c = decodeCursor(filter.cursor);
        query = query.where((eb) => eb.or([eb('d.at', '<', c.at), eb.and([eb('d.at', '=', c.at), eb('d.id', '<', c.id)])]));
      }
      const rows = await query.orderBy('d.at', 'desc').orderBy('d.id', 'desc').limit(filter.limit + 1).execute();
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      return {
        items: page.map((row) => ({ ...toDenial(row), keyName: row.key_name, repositoryName: row.repository_name })),
        next: rows.length > filter.limit && last ? encodeCursor(last.at, last.id) : null,
      };
    },

    async listCommittedTransactions(repositoryId) {
      const rows = await db
        .selectFrom('transactions as t')
        .innerJoin('sessions as s', 's.id', 't.session_id')
        .select(['t.borg_transaction_id', 't.session_id', 't.ended_at', 't.archive_checked', 's.key_name', 's.role'])
        .where('s.repository_id', '=', repositoryId)
        .where('t.state', '=', 'committed')
        .where('t.borg_transaction_id', 'is not', null)
        .orderBy('t.id')
        .execute();
      return rows.map((r) => ({
        borgTransactionId: Number(r.borg_transaction_id),
        sessionId: r.session_id,
        keyName: r.key_name,
        role: r.role as Role | null,
        at: new Date(r.ended_at),
        archiveChecked: r.archive_checked === 1,
      }));
    },


    async closeStaleSessions(isAlive) {
      const open = await db.selectFrom('sessions').select(['id', 'pid', 'host']).where('result', '=', 'open').execute();
      const dead = open.filter((s) => s.pid !== null && s.host !== null && !isAlive(s.pid, s.host)).map((s) => s.id);
      if (dead.length === 0) return 0;
      // `result = 'open'` again: the session may have ended properly since it was read.
      let closed = 0;
      for (const id of dead) {
        const updated = await db
          .updateTable('sessions')
          .set({ result: 'aborted', ended_at: iso(now()), detail: STALE_SESSION_DETAIL, run_kind: await runKindOf(id, null) })
          .where('id', '=', id)
          .where('result', '=', 'open')
          .executeTakeFirst();
        closed += Number(updated.numUpdatedRows);
      }
      return closed;
    },

    async ledgerMarks() {
      const [s, d] = await Promise.all([
        db.selectFrom('sessions').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst(),
        db.selectFrom('denials').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst(),
      ]);
      return { sessionId: Number(s?.id ?? 0), denialId: Number(d?.id ?? 0) };
    },

    async ledgerChanges(marks, watchIds) {
      // A UNION, not an OR: each part is a search of sessions_result_started_idx or the primary key
      // whatever the table's statistics (SQLite picks a full scan for the OR without ANALYZE).
      // Ids grow in commit order because SQLite has one writer at a time; a PostgreSQL store
      // would need a change counter instead.
      const part = () => db.selectFrom('sessions').selectAll();
      let sessionQuery = part().where('result', '=', 'open').union(part().where('id', '>', marks.sessionId));
      if (watchIds.length > 0) sessionQuery = sessionQuery.union(part().where('id', 'in', [...watchIds]));
      const [sessionRows, denials] = await Promise.all([
        sessionQuery.execute(),
        db
          .selectFrom('denials as d')
          .leftJoin('sessions as s', 's.id', 'd.session_id')
          .leftJoin('repositories as r', 'r.id', 'd.repository_id')
          .selectAll('d')
          .select(['s.key_name as key_name', (eb) => eb.fn.coalesce('s.repository_name', 'r.name').as('repository_name')])
          .where('d.id', '>', marks.denialId)
          .orderBy('d.id')
          .execute(),
      ]);
      return {
        sessions: sessionRows.sort((a, b) => a.id - b.id).map(toSession),
        denials: denials.map((row) => ({ ...toDenial(row), keyName: row.key_name, repositoryName: row.repository_name })),
      };
    },
  };
}

/** A new open session's row; its id. */
async function insertSession(db: Kysely<Database>, session: NewSession): Promise<number> {
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
      ...(session.kind && session.kind !== 'client' && { kind: session.kind }),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}
