// Registered repositories: name (what clients write in their URL), the random directory under
// repos/ that holds it, and its storage quota. The store never creates a repository's directory
// (borg's init does, through the guard) and never deletes one: deleting a registration hands
// the directory to the caller's moveFiles, inside the same transaction.

import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { conflict, invalidInput } from '../errors.js';
import { gateFromEvents, type CompactionGate, type RepositoryEvent, type RepositoryEventKind, type AuditEventVerdict } from './history-store.js';
import { repositoryNotFound, requireRepository, selectRepository } from './lookups.js';
import { checkName } from './names.js';
import { iso, toRepository } from './rows.js';
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

export function createRepositoryStore({ db, now }: StoreDeps): RepositoryStore {
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
      let query = summaries().select((eb) => [
        eb
          .selectFrom('sessions as s')
          .whereRef('s.repository_id', '=', 'r.id')
          .where('s.result', '=', 'ok')
          .where((w) =>
            w.exists(w.selectFrom('transactions as t').select('t.id').whereRef('t.session_id', '=', 's.id').where('t.state', '=', 'committed')),
          )
          .select((sub) => sub.fn.max('s.ended_at').as('m'))
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
      // The newest events of each repository in one query (window functions: SQLite ≥ 3.25 and PostgreSQL).
      const ids = rows.map((r) => r.id);
      const events = ids.length === 0 ? [] : await db
        .selectFrom((eb) =>
          eb
            .selectFrom('repository_events')
            .select(['id', 'repository_id', 'kind', 'through_txn', 'verdict', 'actor', 'detail', 'at'])
            .select(sql<number>`row_number() over (partition by repository_id order by id desc)`.as('rn'))
            .where('repository_id', 'in', ids)
            .as('e'),
        )
        .selectAll()
        .where('rn', '<=', STATUS_EVENTS_PER_REPOSITORY)
        .orderBy('id', 'desc')
        .execute();
      const byRepository = new Map<number, RepositoryEvent[]>();
      for (const e of events) {
        const list = byRepository.get(e.repository_id) ?? [];
        list.push({
          id: e.id,
          repositoryId: e.repository_id,
          kind: e.kind as RepositoryEventKind,
          throughTxn: e.through_txn === null ? null : Number(e.through_txn),
          verdict: e.verdict as AuditEventVerdict | null,
          actor: e.actor,
          detail: e.detail,
          at: new Date(e.at),
        });
        byRepository.set(e.repository_id, list);
      }
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
