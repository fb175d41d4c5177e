// Grants: what one key may do on one repository (role and limits). At most one per key and
// repository; setting a grant again replaces its terms. A revoked key gets no grants.

import type { Kysely, Selectable } from 'kysely';
import { conflict, notFound } from '../errors.js';
import { noteGrantsChanged } from '../shared/grant-changes.js';
import { checkGrantTerms, type GrantTerms } from './grant-terms.js';
import { requireKey, requireRepository, selectRepository } from './lookups.js';
import { iso, isoOrNull, toGrant, toRepository } from './rows.js';
import type { Database, GrantsTable } from './schema.js';
import type { StoreDeps } from './store-deps.js';
import type { Grant, GuardStore } from './types.js';

export interface GrantView {
  grant: Grant;
  keyName: string;
  keyFingerprint: string;
  keyRevokedAt: Date | null;
  repositoryName: string;
}

export interface GrantStore extends Pick<GuardStore, 'findGrant' | 'grantStanding'> {
  /** Creates the grant of KEY on the repository, or replaces its terms. */
  setGrant(keyRef: string, repositoryName: string, terms: GrantTerms): Promise<{ grant: Grant; replaced: boolean; keyName: string }>;
  /** Throws BK_ERR_NOT_FOUND when the key, the repository or the grant does not exist. */
  removeGrant(keyRef: string, repositoryName: string): Promise<{ grant: Grant; keyName: string }>;
  listGrants(filter?: { repositoryId?: number; keyId?: number }): Promise<GrantView[]>;
}

/** Writes a grant inside the caller's transaction; the terms must have passed checkGrantTerms. */
export async function writeGrant(
  trx: Kysely<Database>,
  createdAt: Date,
  key: { id: number; name: string; revoked_at: string | null },
  repositoryId: number,
  terms: GrantTerms,
): Promise<{ grant: Grant; replaced: boolean }> {
  if (key.revoked_at !== null) throw conflict(`key '${key.name}' is revoked; a revoked key gets no grants`);
  const values = {
    role: terms.role,
    writes_per_day: terms.writesPerDay,
    from_cidrs: terms.fromCidrs === null ? null : JSON.stringify(terms.fromCidrs),
    expires_at: isoOrNull(terms.expiresAt),
    created_at: iso(createdAt),
    min_age_seconds: terms.minAgeSeconds ?? null,
    keep_last: terms.keepLast ?? null,
    prefix: terms.prefix ?? null,
    max_removals_per_day: terms.maxRemovalsPerDay ?? null,
    verify_objects: terms.verifyObjects ? 1 : 0,
  };
  const existing = await trx
    .selectFrom('grants')
    .select('id')
    .where('key_id', '=', key.id)
    .where('repository_id', '=', repositoryId)
    .executeTakeFirst();
  const row = existing
    ? await trx.updateTable('grants').set(values).where('id', '=', existing.id).returningAll().executeTakeFirstOrThrow()
    : await trx
        .insertInto('grants')
        .values({ key_id: key.id, repository_id: repositoryId, ...values })
        .returningAll()
        .executeTakeFirstOrThrow();
  return { grant: toGrant(row), replaced: existing !== undefined };
}

export function createGrantStore({ db, now }: StoreDeps): GrantStore {
  return {
    async findGrant(keyId, repositoryName) {
      const repository = await selectRepository(db, repositoryName);
      if (!repository) return undefined;
      const grant = await db
        .selectFrom('grants')
        .selectAll()
        .where('key_id', '=', keyId)
        .where('repository_id', '=', repository.id)
        .executeTakeFirst();
      return grant && { grant: toGrant(grant), repository: toRepository(repository) };
    },

    async grantStanding(keyId, repositoryId) {
      // The key by its primary key, its grant by the (key_id, repository_id) unique index.
      const row = await db
        .selectFrom('ssh_keys as k')
        .leftJoin('grants as g', (join) => join.onRef('g.key_id', '=', 'k.id').on('g.repository_id', '=', repositoryId))
        .select([
          'k.revoked_at as key_revoked_at',
          'g.id',
          'g.key_id',
          'g.repository_id',
          'g.role',
          'g.writes_per_day',
          'g.from_cidrs',
          'g.expires_at',
          'g.created_at',
          'g.min_age_seconds',
          'g.keep_last',
          'g.prefix',
          'g.max_removals_per_day',
          'g.verify_objects',
        ])
        .where('k.id', '=', keyId)
        .executeTakeFirst();
      if (!row) return undefined;
      const { key_revoked_at: revokedAt, ...grant } = row;
      return {
        keyRevokedAt: revokedAt === null ? null : new Date(revokedAt),
        grant: grant.id === null ? null : toGrant(grant as Selectable<GrantsTable>),
      };
    },

    async setGrant(keyRef, repositoryName, terms) {
      const set = await db.transaction().execute(async (trx) => {
        const key = await requireKey(trx, keyRef);
        const repository = await requireRepository(trx, repositoryName);
        const at = now();
        return { ...(await writeGrant(trx, at, key, repository.id, checkGrantTerms(terms, at))), keyName: key.name };
      });
      if (set.replaced) noteGrantsChanged();
      return set;
    },

    async removeGrant(keyRef, repositoryName) {
      const removed = await db.transaction().execute(async (trx) => {
        const key = await requireKey(trx, keyRef);
        const repository = await requireRepository(trx, repositoryName);
        const row = await trx
          .deleteFrom('grants')
          .where('key_id', '=', key.id)
          .where('repository_id', '=', repository.id)
          .returningAll()
          .executeTakeFirst();
        if (!row) throw notFound(`key '${key.name}' has no grant on repository '${repository.name}'`);
        return { grant: toGrant(row), keyName: key.name };
      });
      noteGrantsChanged();
      return removed;
    },

    async listGrants(filter = {}) {
      let query = db
        .selectFrom('grants as g')
        .innerJoin('ssh_keys as k', 'k.id', 'g.key_id')
        .innerJoin('repositories as r', 'r.id', 'g.repository_id')
        .selectAll('g')
        .select([
          'k.name as key_name',
          'k.fingerprint as key_fingerprint',
          'k.revoked_at as key_revoked_at',
          'r.name as repository_name',
        ]);
      if (filter.repositoryId !== undefined) query = query.where('g.repository_id', '=', filter.repositoryId);
      if (filter.keyId !== undefined) query = query.where('g.key_id', '=', filter.keyId);
      const rows = await query.orderBy('r.name').orderBy('k.name').execute();
      return rows.map((row) => ({
        grant: toGrant(row),
        keyName: row.key_name,
        keyFingerprint: row.key_fingerprint,
        keyRevokedAt: row.key_revoked_at === null ? null : new Date(row.key_revoked_at),
        repositoryName: row.repository_name,
      }));
    },
  };
}
