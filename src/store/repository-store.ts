// Registered repositories: name (what clients write in their URL), the random directory under
// repos/ that holds it, and its storage quota. The store never creates a repository's directory
// (borg's init does, through the guard) and never deletes one: deleting a registration hands
// the directory to the caller's moveFiles, inside the same transaction.

import { randomBytes } from 'node:crypto';
import { sql, type ExpressionBuilder } from 'kysely';
import { conflict, invalidInput } from '../errors.js';
import { nextTurn } from '../shared/event-loop.js';
import { coverageFromEvents } from '../audit/compaction-gate.js';
import { DESTRUCTIVE, gateState, type CompactionGate, type RepositoryEvent, type AuditEventVerdict } from './history-store.js';
import { repositoryNotFound, requireRepository, selectRepository } from './lookups.js';
import { checkName } from './names.js';
import { iso, toRepository, toRepositoryEvent } from './rows.js';
import type { Database } from './schema.js';
import { isUniqueViolation, type StoreDeps } from './store-deps.js';
import type { Repository } from './types.js';

/** borg refuses a --storage-quota under 10M (parse_storage_quota in borg/archiver.py). */
export const MIN_QUOTA_BYTES = 10_000_000;

export interface RepositorySummary {
  repository: Repository;
  grantCount: number;
  lastSessionAt: Date | null;
}

/** A backup interval from a minute to a year: anything else is a typo. */
export const MIN_EXPECTED_INTERVAL_SECONDS = 60;
export const MAX_EXPECTED_INTERVAL_SECONDS = 366 * 86_400;
/** How many of a repository's newest events the status reads to find its gate (see gateFromEvents). */
const STATUS_EVENTS_PER_REPOSITORY = 20;
/** The whole status list is given again, unchanged, for a denial count from up to this much later. */
const STATUS_REUSE_MS = 1000;

/** A repository at a glance, for the console's dashboard and `GET /repositories`. */
export interface RepositoryStatus extends RepositorySummary {
  /** The newest finished session's result (ok, denied, error, aborted), or null before any. */
  lastSessionResult: string | null;
  /** End of the newest session that ended ok and committed at least one transaction (any write). */
  lastWriteAt: Date | null;
  /**
   * End of the newest session that ended ok and committed a backup: a transaction with new
   * objects besides the manifest. A prune or a compaction alone is no backup.
   */
  lastBackupAt: Date | null;
  denialsSince: number;
  /** The newest audit; `approvedSince`: an admin approved the history after it (its findings were reviewed). */
  lastAudit: { at: Date; verdict: AuditEventVerdict | null; detail: string; approvedSince?: boolean } | null;
  gate: CompactionGate;
  /** The newest replacement of the repository key among its recent events, for the alerts. */
  keyChange: { id: number; actor: string; at: Date } | null;
  /** The newest deferred compaction that no compaction followed, among its recent events. */
  compactionDeferred: { at: Date; detail: string } | null;
}

export interface RepositorySettings {
  quotaBytes?: number | null;
  expectedIntervalSeconds?: number;
}

/** What moveFiles did with the repository's directory, and how to put it back. */
export interface MovedFiles {
  to: string;
  undo(): Promise<void>;
}

export interface RepositoryDeletion {
  repository: Repository;
  grantsRemoved: number;
  movedTo: string | null;
}

export interface RepositoryStore {
  /**
   * Registers a repository. Names are unique regardless of case ('Web' and 'web' would be two
   * repositories a person cannot tell apart). `dirName`: the folder it already has (a repository
   * restored from the trash); else a new random one.
   */
  createRepository(input: { name: string; quotaBytes: number | null; expectedIntervalSeconds?: number; dirName?: string }): Promise<Repository>;
  findRepository(name: string): Promise<Repository | undefined>;
  /** Throws BK_ERR_NOT_FOUND "no repository named 'x'". */
  getRepository(name: string): Promise<Repository>;
  listRepositories(): Promise<RepositorySummary[]>;
  /**
   * Every repository's registration by name, without the figures listRepositories adds (its
   * grant count and last session, a search of the sessions per repository): what jobs and the
   * lists that only name repositories need. A sixth of the cost with 1,000 repositories.
   */
  listRepositoryRecords(): Promise<Repository[]>;
  getRepositorySummary(name: string): Promise<RepositorySummary>;
  /** Every repository (or the one named) with its state; denials are counted from `denialsSince`. */
  listRepositoryStatuses(options: { denialsSince: Date; name?: string }): Promise<RepositoryStatus[]>;
  updateRepository(name: string, settings: RepositorySettings): Promise<Repository>;
  /**
   * Removes the registration and its grants, refusing while a session is open on it. moveFiles
   * runs inside the transaction: if it throws, nothing is removed; if the commit fails after
   * it, its undo runs.
   */
  deleteRepository(name: string, moveFiles?: (repository: Repository) => Promise<MovedFiles | null>): Promise<RepositoryDeletion>;
}

/** SQLite's order of names (bytes; names are ASCII: see names.ts). */
const compareNames = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function checkQuota(quotaBytes: number | null): void {
  if (quotaBytes !== null && (!Number.isSafeInteger(quotaBytes) || quotaBytes < MIN_QUOTA_BYTES)) {
    throw invalidInput(`the quota must be at least 10M (${MIN_QUOTA_BYTES} bytes), since borg refuses less`);
  }
}

export function checkInterval(seconds: number): void {
  if (!Number.isSafeInteger(seconds) || seconds < MIN_EXPECTED_INTERVAL_SECONDS || seconds > MAX_EXPECTED_INTERVAL_SECONDS) {
    throw invalidInput(`the expected backup interval must be a whole number of seconds from ${MIN_EXPECTED_INTERVAL_SECONDS} to ${MAX_EXPECTED_INTERVAL_SECONDS}, not ${seconds}`);
  }
}

export function createRepositoryStore({ db, now, changeMark }: StoreDeps): RepositoryStore {
  const summaries = () =>
    db
      .selectFrom('repositories as r')
      .selectAll('r')
      .select((eb) => [
        eb
          .selectFrom('grants as g')
          .whereRef('g.repository_id', '=', 'r.id')
          .select((sub) => sub.fn.countAll().as('n'))
          .as('grant_count'),
        eb
          .selectFrom('sessions as s')
          .whereRef('s.repository_id', '=', 'r.id')
          .select((sub) => sub.fn.max('s.started_at').as('m'))
          .as('last_session_at'),
      ]);
  type SummaryRow = Awaited<ReturnType<ReturnType<typeof summaries>['executeTakeFirstOrThrow']>>;
  const toSummary = (row: SummaryRow): RepositorySummary => ({
    repository: toRepository(row),
    grantCount: Number(row.grant_count ?? 0),
    lastSessionAt: row.last_session_at ? new Date(row.last_session_at) : null,
  });

  const toEvent = toRepositoryEvent;
  const eventColumns = ['id', 'repository_id', 'kind', 'through_txn', 'verdict', 'actor', 'detail', 'at'] as const;
  const newestFirstOf = (rows: Array<Parameters<typeof toEvent>[0]>) => {
    const byRepository = new Map<number, RepositoryEvent[]>();
    for (const e of rows) {
      const list = byRepository.get(e.repository_id) ?? [];
      list.push(toEvent(e));
      byRepository.set(e.repository_id, list);
    }
    return byRepository;
  };

  // The newest events of every repository, kept in memory once the whole list was asked for
  // (the dashboard; the alert rules every 30 s) and topped up with the events recorded since
  // (in any process) by one search of the primary key: the daily audits add a row per
  // repository and day, so reading them all again would cost more every day. Event ids grow in
  // commit order (SQLite has one writer at a time; a PostgreSQL store would compare a change
  // counter instead) and events are never changed, so nothing else can go stale.
  const recent = {
    loaded: null as Promise<void> | null,
    upTo: 0,
    byRepository: new Map<number, RepositoryEvent[]>(),
    /** Per repository, how many times its list changed: whether a status made from it is current. */
    versions: new Map<number, number>(),
  };
  /** Repository ids per query of loadAllEvents. */
  const EVENTS_BATCH = 100;
  const takeEvents = (rows: Array<Parameters<typeof toEvent>[0]>) => {
    for (const e of rows) {
      // Two requests may top up at once: each event is taken once.
      if (e.id <= recent.upTo) continue;
      const list = recent.byRepository.get(e.repository_id) ?? [];
      list.unshift(toEvent(e));
      if (list.length > STATUS_EVENTS_PER_REPOSITORY) list.length = STATUS_EVENTS_PER_REPOSITORY;
      recent.byRepository.set(e.repository_id, list);
      recent.versions.set(e.repository_id, (recent.versions.get(e.repository_id) ?? 0) + 1);
      recent.upTo = e.id;
    }
  };
  const loadAllEvents = async () => {
    // The newest events of each repository (window functions: SQLite ≥ 3.25 and PostgreSQL), for
    // a range of repository ids at a time with a turn of the event loop between: in one query,
    // 1,000 repositories over cold pages held the server for a quarter of a second. Every range
    // reads the events through one id, all committed by then (ids grow in commit order), and
    // the top-up after reads from there on.
    const top = await db.selectFrom('repository_events').select((eb) => [eb.fn.max('id').as('id'), eb.fn.min('repository_id').as('lo'), eb.fn.max('repository_id').as('hi')]).executeTakeFirst();
    if (top?.id == null) return;
    const through = Number(top.id);
    const rows: Array<Parameters<typeof toEvent>[0]> = [];
    for (let lo = Number(top.lo); lo <= Number(top.hi); lo += EVENTS_BATCH) {
      rows.push(
        ...(await db
          .selectFrom((eb) =>
            eb
              .selectFrom('repository_events')
              .select(eventColumns)
              .select(sql<number>`row_number() over (partition by repository_id order by id desc)`.as('rn'))
              .where('repository_id', '>=', lo)
              .where('repository_id', '<', lo + EVENTS_BATCH)
              .where('id', '<=', through)
              .as('e'),
          )
          .select(eventColumns)
          .where('rn', '<=', STATUS_EVENTS_PER_REPOSITORY)
          .execute()),
      );
      await nextTurn();
    }
    takeEvents(rows.sort((a, b) => a.id - b.id));
  };
  /** Each repository's newest events (newest first); `all`: every repository is asked for. */
  const newestEvents = async (ids: number[], all: boolean): Promise<Map<number, RepositoryEvent[]>> => {
    if (ids.length === 0) return new Map();
    if (!recent.loaded && !all) {
      // One repository's page (or the CLI): its own events, without loading everyone's.
      const rows = await db
        .selectFrom('repository_events')
        .select(eventColumns)
        .where('repository_id', 'in', ids)
        .orderBy('id', 'desc')
        .limit(STATUS_EVENTS_PER_REPOSITORY * ids.length)
        .execute();
      const byRepository = newestFirstOf(rows);
      for (const list of byRepository.values()) list.length = Math.min(list.length, STATUS_EVENTS_PER_REPOSITORY);
      return byRepository;
    }
    recent.loaded ??= loadAllEvents().catch((error: unknown) => {
      recent.loaded = null;
      throw error;
    });
    await recent.loaded;
    takeEvents(await db.selectFrom('repository_events').select(eventColumns).where('id', '>', recent.upTo).orderBy('id').execute());
    return recent.byRepository;
  };

  /** The status columns of the repositories asked for (by name or ids), denials and events apart. */
  const readBases = (filter: { name?: string; ids?: number[] }) => {
    // The newest first from sessions_repository_result_ended_idx, stopping at the first that
    // committed (max() would visit every successful session of the repository).
    const newestOkSession = (eb: ExpressionBuilder<Database & { r: Database['repositories'] }, 'r'>, backupsOnly: boolean) =>
      eb
        .selectFrom('sessions as s')
        .whereRef('s.repository_id', '=', 'r.id')
        .where('s.result', '=', 'ok')
        .where('s.ended_at', 'is not', null)
        .where((w) => {
          let t = w.selectFrom('transactions as t').select('t.id').whereRef('t.session_id', '=', 's.id').where('t.state', '=', 'committed');
          if (backupsOnly) t = t.where('t.objects_put', '>', 0);
          return w.exists(t);
        })
        .select('s.ended_at')
        .orderBy('s.ended_at', 'desc')
        .limit(1);
    let query = summaries().select((eb) => [
      // The newest finished session's result: the dashboard shows a failed one.
      eb
        .selectFrom('sessions as s4')
        .whereRef('s4.repository_id', '=', 'r.id')
        .where('s4.result', '!=', 'open')
        .select('s4.result')
        .orderBy('s4.id', 'desc')
        .limit(1)
        .as('last_session_result'),
      newestOkSession(eb, false).as('last_write_at'),
      newestOkSession(eb, true).as('last_backup_at'),
      // The gate (gateState): the newest committed transaction that needs review, and what
      // covers transactions since the newest rollback (coverageFromEvents says the same).
      eb
        .selectFrom('transactions as t')
        .innerJoin('sessions as s2', 's2.id', 't.session_id')
        .whereRef('s2.repository_id', '=', 'r.id')
        .where('t.state', '=', 'committed')
        .where(DESTRUCTIVE)
        .select((sub) => sub.fn.max('t.borg_transaction_id').as('m'))
        .as('last_destructive_txn'),
      eb
        .selectFrom('repository_events as e')
        .whereRef('e.repository_id', '=', 'r.id')
        .where(
          'e.id',
          '>',
          sql<number>`coalesce((select max(x.id) from repository_events x where x.repository_id = r.id and x.kind = 'rollback'), 0)`,
        )
        .where((w) => w.or([w('e.kind', 'in', ['approve', 'compaction']), w.and([w('e.kind', '=', 'audit'), w('e.verdict', '=', 'clean')])]))
        .select((sub) => sub.fn.max('e.through_txn').as('m'))
        .as('covered_through'),
    ]);
    if (filter.name !== undefined) query = query.where('r.name', '=', filter.name);
    if (filter.ids !== undefined) query = query.where('r.id', 'in', filter.ids);
    return query.execute();
  };
  type BaseRow = Awaited<ReturnType<typeof readBases>>[number];
  type Base = RepositorySummary & { lastSessionResult: string | null; lastWriteAt: Date | null; lastBackupAt: Date | null; lastDestructiveTxn: number | null; coveredThrough: number | null };
  const toBase = (row: BaseRow): Base => ({
    ...toSummary(row),
    lastSessionResult: row.last_session_result ?? null,
    lastWriteAt: row.last_write_at ? new Date(row.last_write_at) : null,
    lastBackupAt: row.last_backup_at ? new Date(row.last_backup_at) : null,
    lastDestructiveTxn: row.last_destructive_txn == null ? null : Number(row.last_destructive_txn),
    coveredThrough: row.covered_through == null ? null : Number(row.covered_through),
  });

  /** Denials per repository from `since` (those of the repositories in `ids`, or every one). */
  const countDenials = async (since: Date, ids?: number[]): Promise<Map<number, number>> => {
    let query = db
      .selectFrom('denials')
      .select(['repository_id', (eb) => eb.fn.countAll().as('n')])
      .where('at', '>=', iso(since))
      .where('repository_id', 'is not', null)
      .groupBy('repository_id');
    if (ids !== undefined) query = query.where('repository_id', 'in', ids);
    return new Map((await query.execute()).map((r) => [r.repository_id!, Number(r.n)]));
  };

  const coverageOf = (base: Base, newestFirst: RepositoryEvent[]) => {
    const seen = coverageFromEvents(newestFirst);
    if (seen.coveredThrough === base.coveredThrough) return seen;
    return { ...seen, coveredThrough: base.coveredThrough, by: base.coveredThrough === null ? null : `history is verified through transaction ${base.coveredThrough}` };
  };
  const toStatus = (base: Base, denials: number, newestFirst: RepositoryEvent[]): RepositoryStatus => {
    const audit = newestFirst.find((e) => e.kind === 'audit');
    const keyChange = newestFirst.find((e) => e.kind === 'key-change');
    const compaction = newestFirst.find((e) => e.kind === 'compaction' || e.kind === 'compaction-deferred');
    return {
      ...base,
      denialsSince: denials,
      lastAudit: audit ? { at: audit.at, verdict: audit.verdict, detail: audit.detail, approvedSince: newestFirst.some((e) => e.kind === 'approve' && e.id > audit.id) } : null,
      // The newest events tell who covered it; the query, what covers it (events beyond the
      // newest few, such as an approval before many daily audits, still count).
      gate: gateState(coverageOf(base, newestFirst), base.lastDestructiveTxn),
      keyChange: keyChange ? { id: keyChange.id, actor: keyChange.actor, at: keyChange.at } : null,
      compactionDeferred: compaction?.kind === 'compaction-deferred' ? { at: compaction.at, detail: compaction.detail } : null,
    };
  };

  /** One repository's status (its page, the CLI), read whole. */
  async function readStatus(name: string, denialsSince: Date): Promise<RepositoryStatus> {
    // The status columns the whole list keeps (below) serve while the repository's status_version
    // has not moved: the list is brought up to date every second by the alert rules, and reading
    // them afresh is the costliest query of a repository's page. Only read here, never stored: the
    // list alone decides what it holds and in which order.
    const version = await db.selectFrom('repositories').select(['id', 'status_version']).where('name', '=', name).executeTakeFirst();
    if (!version) throw repositoryNotFound(name);
    const kept = live.bases.get(version.id);
    let base: Base;
    if (kept && kept.version === version.status_version) base = kept.base;
    else {
      const [row] = await readBases({ ids: [version.id] });
      if (!row) throw repositoryNotFound(name);
      base = toBase(row);
    }
    const [denials, events] = await Promise.all([countDenials(denialsSince, [version.id]), newestEvents([version.id], false)]);
    return toStatus(base, denials.get(version.id) ?? 0, events.get(version.id) ?? []);
  }

  // The whole list (the dashboard; the alert rules every 30 s; the metrics), kept in memory and
  // brought up to date by reading again only what changed: each repository's status columns
  // when its status_version moved (migration 0006's triggers bump it on every write that
  // changes them, in any process), its newest events as they are recorded, and the denial counts
  // (a window that moves with time). A repository whose inputs are all unchanged keeps its
  // status object, so the API can keep what it made of it. Callers asking for different windows
  // (a day for the dashboard, none for the alerts, ever for the metrics) each keep their own
  // objects. Every change goes through `refresh`, one at a time.
  const live = {
    bases: new Map<number, { version: number; base: Base }>(),
    order: [] as number[],
    windows: new Map<number, { mark: string; since: number; list: RepositoryStatus[]; byId: Map<number, { base: Base; denials: number; events: number; status: RepositoryStatus }> }>(),
    running: null as Promise<unknown> | null,
  };
  const MAX_WINDOWS = 4;
  const REREAD_BATCH = 100;

  async function refresh(mark: string, denialsSince: Date): Promise<RepositoryStatus[]> {
    const versions = await db.selectFrom('repositories').select(['id', 'status_version']).execute();
    const stale = versions.filter((v) => live.bases.get(v.id)?.version !== v.status_version).map((v) => v.id);
    if (stale.length > 0 || versions.length !== live.bases.size) {
      const present = new Set(versions.map((v) => v.id));
      for (const id of live.bases.keys()) if (!present.has(id)) live.bases.delete(id);
      // In batches, one after the other with a turn of the event loop between: each runs
      // synchronously, and the whole list at once (the first dashboard after a start, 1,000
      // repositories over cold pages) held the server for 0.5 s in bench/api.bench.mjs.
      for (const ids of chunks(stale, REREAD_BATCH)) {
        for (const row of await readBases({ ids })) live.bases.set(row.id, { version: row.status_version, base: toBase(row) });
        if (ids.length === REREAD_BATCH) await nextTurn();
      }
      live.order = [...live.bases.keys()].sort((a, b) => compareNames(live.bases.get(a)!.base.repository.name, live.bases.get(b)!.base.repository.name));
    }
    const [denials, events] = await Promise.all([countDenials(denialsSince), newestEvents(live.order, true)]);
    const key = windowKey(denialsSince);
    const window = live.windows.get(key) ?? { mark, since: 0, list: [], byId: new Map() };
    const byId = new Map<number, { base: Base; denials: number; events: number; status: RepositoryStatus }>();
    const list = live.order.map((id) => {
      const { base } = live.bases.get(id)!;
      const n = denials.get(id) ?? 0;
      const eventVersion = recent.versions.get(id) ?? 0;
      const was = window.byId.get(id);
      const entry = was && was.base === base && was.denials === n && was.events === eventVersion ? was : { base, denials: n, events: eventVersion, status: toStatus(base, n, events.get(id) ?? []) };
      byId.set(id, entry);
      return entry.status;
    });
    live.windows.delete(key);
    live.windows.set(key, { mark, since: denialsSince.getTime(), list, byId });
    if (live.windows.size > MAX_WINDOWS) live.windows.delete(live.windows.keys().next().value!);
    return list;
  }
  /** Callers ask for "the last day" (or none) at different moments: the window's length in seconds; -1 for ever (the metrics). */
  const windowKey = (since: Date) => (since.getTime() <= 0 ? -1 : Math.round((now().getTime() - since.getTime()) / 1000));

  return {
    async createRepository({ name, quotaBytes, expectedIntervalSeconds, dirName }) {
      checkName('repository', name);
      checkQuota(quotaBytes);
      if (expectedIntervalSeconds !== undefined) checkInterval(expectedIntervalSeconds);
      if (dirName !== undefined && !/^[0-9a-f]{16}$/.test(dirName)) throw invalidInput(`'${dirName}' is not a repository folder name`);
      const taken = () => conflict(`a repository named '${name}' already exists`);
      try {
        return await db.transaction().execute(async (trx) => {
          if (await selectRepository(trx, name)) throw taken();
          const alike = await trx.selectFrom('repositories').select('name').where(sql`lower(name)`, '=', name.toLowerCase()).executeTakeFirst();
          if (alike) throw conflict(`a repository named '${alike.name}' already exists; names differing only in case would be mistaken for each other`);
          const row = await trx
            .insertInto('repositories')
            .values({
              name,
              dir_name: dirName ?? randomBytes(8).toString('hex'),
              quota_bytes: quotaBytes,
              ...(expectedIntervalSeconds !== undefined && { expected_interval_seconds: expectedIntervalSeconds }),
              created_at: iso(now()),
            })
            .returningAll()
            .executeTakeFirstOrThrow();
          return toRepository(row);
        });
      } catch (error) {
        throw isUniqueViolation(error) ? taken() : error;
      }
    },

    async findRepository(name) {
      const row = await selectRepository(db, name);
      return row && toRepository(row);
    },

    async getRepository(name) {
      return toRepository(await requireRepository(db, name));
    },

    async listRepositories() {
      return (await summaries().orderBy('r.name').execute()).map(toSummary);
    },

    async listRepositoryRecords() {
      return (await db.selectFrom('repositories').selectAll().orderBy('name').execute()).map(toRepository);
    },

    async getRepositorySummary(name) {
      const row = await summaries().where('r.name', '=', name).executeTakeFirst();
      if (!row) throw repositoryNotFound(name);
      return toSummary(row);
    },

    async listRepositoryStatuses({ denialsSince, name }) {
      if (name !== undefined) return [await readStatus(name, denialsSince)];
      for (;;) {
        // Wait for a refresh under way: the next may find nothing left to do.
        while (live.running) await live.running.catch(() => undefined);
        const mark = (await changeMark?.()) ?? String(Math.random());
        const window = live.windows.get(windowKey(denialsSince));
        // The same list again while nothing in the database has changed, counting denials from
        // within a second of the same time.
        if (window && window.mark === mark && Math.abs(window.since - denialsSince.getTime()) < STATUS_REUSE_MS) return window.list;
        const running = refresh(mark, denialsSince);
        live.running = running;
        try {
          return await running;
        } finally {
          live.running = null;
        }
      }
    },

    async updateRepository(name, settings) {
      if (settings.quotaBytes !== undefined) checkQuota(settings.quotaBytes);
      if (settings.expectedIntervalSeconds !== undefined) checkInterval(settings.expectedIntervalSeconds);
      return db.transaction().execute(async (trx) => {
        const row = await requireRepository(trx, name);
        const values = {
          ...(settings.quotaBytes !== undefined && { quota_bytes: settings.quotaBytes }),
          ...(settings.expectedIntervalSeconds !== undefined && { expected_interval_seconds: settings.expectedIntervalSeconds }),
        };
        if (Object.keys(values).length === 0) return toRepository(row);
        return toRepository(await trx.updateTable('repositories').set({ ...values, status_version: sql`status_version + 1` }).where('id', '=', row.id).returningAll().executeTakeFirstOrThrow());
      });
    },

    async deleteRepository(name, moveFiles) {
      let moved: MovedFiles | null = null;
      try {
        return await db.transaction().execute(async (trx) => {
          const repository = toRepository(await requireRepository(trx, name));
          const open = await trx
            .selectFrom('sessions')
            .select(['pid', 'host'])
            .where('repository_id', '=', repository.id)
            .where('result', '=', 'open')
            .execute();
          if (open.length > 0) {
            const first = open[0]!;
            const sessions = open.length === 1 ? '1 open session' : `${open.length} open sessions`;
            throw conflict(
              `repository '${name}' is in use by ${sessions} (pid ${first.pid} on ${first.host}); try again when ${open.length === 1 ? 'it has' : 'they have'} ended`,
            );
          }
          const removed = await trx.deleteFrom('grants').where('repository_id', '=', repository.id).executeTakeFirst();
          await trx.deleteFrom('repositories').where('id', '=', repository.id).execute();
          moved = moveFiles ? await moveFiles(repository) : null;
          return { repository, grantsRemoved: Number(removed.numDeletedRows), movedTo: moved?.to ?? null };
        });
      } catch (error) {
        if (moved) await (moved as MovedFiles).undo().catch(() => undefined);
        throw error;
      }
    },
  };
}
