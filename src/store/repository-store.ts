// Registered repositories: name (what clients write in their URL), the random directory under
// repos/ that holds it, and its storage quota. The store never creates a repository's directory
// (borg's init does, through the guard) and never deletes one: deleting a registration hands
// the directory to the caller's moveFiles, inside the same transaction.

import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { conflict, invalidInput } from '../errors.js';
import { gateFromEvents, type CompactionGate, type RepositoryEvent, type AuditEventVerdict } from './history-store.js';
import { repositoryNotFound, requireRepository, selectRepository } from './lookups.js';
import { checkName } from './names.js';
import { iso, toRepository, toRepositoryEvent } from './rows.js';
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
  /** End of the newest session that ended ok and committed at least one transaction. */
  lastWriteAt: Date | null;
  denialsSince: number;
  lastAudit: { at: Date; verdict: AuditEventVerdict | null; detail: string } | null;
  gate: CompactionGate;
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
  createRepository(input: { name: string; quotaBytes: number | null; expectedIntervalSeconds?: number }): Promise<Repository>;
  findRepository(name: string): Promise<Repository | undefined>;
  /** Throws BK_ERR_NOT_FOUND "no repository named 'x'". */
  getRepository(name: string): Promise<Repository>;
  listRepositories(): Promise<RepositorySummary[]>;
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

function checkQuota(quotaBytes: number | null): void {
  if (quotaBytes !== null && (!Number.isSafeInteger(quotaBytes) || quotaBytes < MIN_QUOTA_BYTES)) {
    throw invalidInput(`the quota must be at least 10M (${MIN_QUOTA_BYTES} bytes), since borg refuses less`);
  }
}

function checkInterval(seconds: number): void {
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
  const recent = { loaded: null as Promise<void> | null, upTo: 0, byRepository: new Map<number, RepositoryEvent[]>() };
  const takeEvents = (rows: Array<Parameters<typeof toEvent>[0]>) => {
    for (const e of rows) {
      // Two requests may top up at once: each event is taken once.
      if (e.id <= recent.upTo) continue;
      const list = recent.byRepository.get(e.repository_id) ?? [];
      list.unshift(toEvent(e));
      if (list.length > STATUS_EVENTS_PER_REPOSITORY) list.length = STATUS_EVENTS_PER_REPOSITORY;
      recent.byRepository.set(e.repository_id, list);
      recent.upTo = e.id;
    }
  };
  const loadAllEvents = async () => {
    // The newest events of each repository in one query (window functions: SQLite ≥ 3.25 and PostgreSQL).
    const rows = await db
      .selectFrom((eb) =>
        eb
          .selectFrom('repository_events')
          .select(eventColumns)
          .select(sql<number>`row_number() over (partition by repository_id order by id desc)`.as('rn'))
          .as('e'),
      )
      .select(eventColumns)
      .where('rn', '<=', STATUS_EVENTS_PER_REPOSITORY)
      .orderBy('id')
      .execute();
    takeEvents(rows);
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

  let statusCache: { mark: string; denialsSince: number; statuses: Promise<RepositoryStatus[]> } | null = null;
  async function readStatuses({ denialsSince, name }: { denialsSince: Date; name?: string }): Promise<RepositoryStatus[]> {
    let query = summaries().select((eb) => [
      eb
        .selectFrom('sessions as s')
        .whereRef('s.repository_id', '=', 'r.id')
        .where('s.result', '=', 'ok')
        .where('s.ended_at', 'is not', null)
        .where((w) =>
          w.exists(w.selectFrom('transactions as t').select('t.id').whereRef('t.session_id', '=', 's.id').where('t.state', '=', 'committed')),
        )
        // The newest first from sessions_repository_result_ended_idx, stopping at the first
        // that committed (max() would visit every successful session of the repository).
        .select('s.ended_at')
        .orderBy('s.ended_at', 'desc')
        .limit(1)
        .as('last_write_at'),
      eb
        .selectFrom('denials as d')
        .whereRef('d.repository_id', '=', 'r.id')
        .where('d.at', '>=', iso(denialsSince))
        .select((sub) => sub.fn.countAll().as('n'))
        .as('denials_since'),
    ]);
    if (name !== undefined) query = query.where('r.name', '=', name);
    const rows = await query.orderBy('r.name').execute();
    if (name !== undefined && rows.length === 0) throw repositoryNotFound(name);
    const byRepository = await newestEvents(rows.map((r) => r.id), name === undefined);
    return rows.map((row) => {
      const newestFirst = byRepository.get(row.id) ?? [];
      const audit = newestFirst.find((e) => e.kind === 'audit');
      return {
        ...toSummary(row),
        lastWriteAt: row.last_write_at ? new Date(row.last_write_at) : null,
        denialsSince: Number(row.denials_since ?? 0),
        lastAudit: audit ? { at: audit.at, verdict: audit.verdict, detail: audit.detail } : null,
        gate: gateFromEvents(newestFirst),
      };
    });
  }

  return {
    async createRepository({ name, quotaBytes, expectedIntervalSeconds }) {
      checkName('repository', name);
      checkQuota(quotaBytes);
      if (expectedIntervalSeconds !== undefined) checkInterval(expectedIntervalSeconds);
      const taken = () => conflict(`a repository named '${name}' already exists`);
      try {
        return await db.transaction().execute(async (trx) => {
          if (await selectRepository(trx, name)) throw taken();
          const row = await trx
            .insertInto('repositories')
            .values({
              name,
              dir_name: randomBytes(8).toString('hex'),
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

    async getRepositorySummary(name) {
      const row = await summaries().where('r.name', '=', name).executeTakeFirst();
      if (!row) throw repositoryNotFound(name);
      return toSummary(row);
    },

    async listRepositoryStatuses({ denialsSince, name }) {
      if (name !== undefined || !changeMark) return readStatuses({ denialsSince, name });
      // The whole list (the dashboard, the alert rules) again while nothing in the database has
      // changed: the same answer, counting denials from within a second of the same time.
      const mark = changeMark();
      const hit = statusCache;
      if (hit && hit.mark === mark && Math.abs(hit.denialsSince - denialsSince.getTime()) < STATUS_REUSE_MS) return hit.statuses;
      const statuses = readStatuses({ denialsSince });
      statusCache = { mark, denialsSince: denialsSince.getTime(), statuses };
      statuses.catch(() => {
        if (statusCache?.statuses === statuses) statusCache = null;
      });
      return statuses;
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
        return toRepository(await trx.updateTable('repositories').set(values).where('id', '=', row.id).returningAll().executeTakeFirstOrThrow());
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
