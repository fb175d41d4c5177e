// A prune grant's archive removals per UTC day (--max-removals-per-day; migration 0013): the guard
// claims the removals of a manifest put before it forwards the put, and gives them back when borg
// rolls the transaction back. Counting and inserting happen in one database transaction, so
// sessions racing each other cannot all get past the limit. A claim whose session died without a
// rollback keeps counting: the safe side of a limit on deletions.

import { iso } from './rows.js';
import type { StoreDeps } from './store-deps.js';
import type { GuardStore } from './types.js';

export type RemovalClaimStore = Pick<GuardStore, 'claimRemovals' | 'releaseRemovals'>;

/** The UTC day of a time, YYYY-MM-DD: what a day's removals are counted by. */
export const utcDay = (at: Date): string => at.toISOString().slice(0, 10);

export function createRemovalClaimStore({ db }: StoreDeps): RemovalClaimStore {
  return {
    async claimRemovals(claim) {
      return db.transaction().execute(async (trx) => {
        // Serialises the claims of one grant (see claimBackup in ledger-store.ts): on SQLite the
        // transaction already holds the write lock; on PostgreSQL this no-op update locks the row.
        await trx.updateTable('grants').set((eb) => ({ max_removals_per_day: eb.ref('max_removals_per_day') })).where('id', '=', claim.grantId).execute();
        const day = utcDay(claim.at);
        const row = await trx
          .selectFrom('removal_claims')
          .where('grant_id', '=', claim.grantId)
          .where('repository_id', '=', claim.repositoryId)
          .where('day', '=', day)
          .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('archives'), eb.lit(0)).as('n'))
          .executeTakeFirstOrThrow();
        const used = Number(row.n);
        if (used + claim.archives > claim.limit) return { claimed: false, used, claimId: null };
        const inserted = await trx
          .insertInto('removal_claims')
          .values({ session_id: claim.sessionId, grant_id: claim.grantId, repository_id: claim.repositoryId, day, archives: claim.archives, claimed_at: iso(claim.at) })
          .returning('id')
          .executeTakeFirstOrThrow();
        return { claimed: true, used, claimId: inserted.id };
      });
    },
    async releaseRemovals(claimIds) {
      if (claimIds.length === 0) return;
      await db.deleteFrom('removal_claims').where('id', 'in', [...claimIds]).execute();
    },
  };
}
