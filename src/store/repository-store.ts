// Registered repositories: name (what clients write in their URL), the random directory under
// repos/ that holds it, and its storage quota. The store never creates a repository's directory
// (borg's init does, through the guard) and never deletes one: deleting a registration hands
// the directory to the caller's moveFiles, inside the same transaction.

import { randomBytes } from 'node:crypto';
import { conflict, invalidInput } from '../errors.js';
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
  createRepository(input: { name: string; quotaBytes: number | null }): Promise<Repository>;
  findRepository(name: string): Promise<Repository | undefined>;
  /** Throws BK_ERR_NOT_FOUND "no repository named 'x'". */
  getRepository(name: string): Promise<Repository>;
  listRepositories(): Promise<RepositorySummary[]>;
  getRepositorySummary(name: string): Promise<RepositorySummary>;
  /**
   * Removes the registration and its grants, refusing while a session is open on it. moveFiles
   * runs inside the transaction: if it throws, nothing is removed; if the commit fails after
   * it, its undo runs.
   */
  deleteRepository(name: string, moveFiles?: (repository: Repository) => Promise<MovedFiles | null>): Promise<RepositoryDeletion>;
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
    async createRepository({ name, quotaBytes }) {
      checkName('repository', name);
      if (quotaBytes !== null && (!Number.isSafeInteger(quotaBytes) || quotaBytes < MIN_QUOTA_BYTES)) {
        throw invalidInput(`the quota must be at least 10M (${MIN_QUOTA_BYTES} bytes), since borg refuses less`);
      }
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
