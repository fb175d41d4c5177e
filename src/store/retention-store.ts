// Retention policies (migration 0014): one per repository, with the result of its last run.
// Setting a policy replaces the whole of it (a rule left out is no longer a rule); the last run
// stays. The values are checked by retention/retention-policy.ts before they get here.

import type { Selectable } from 'kysely';

import type { RetentionPolicy, RetentionResult, RetentionRules } from '../retention/retention-policy.js';
import type { RetentionPoliciesTable } from './schema.js';
import type { StoreDeps } from './store-deps.js';

export interface RetentionStore {
  getRetentionPolicy(repositoryId: number): Promise<RetentionPolicy | null>;
  listRetentionPolicies(): Promise<RetentionPolicy[]>;
  setRetentionPolicy(repositoryId: number, rules: RetentionRules, by: string): Promise<RetentionPolicy>;
  /** True when there was one. */
  removeRetentionPolicy(repositoryId: number): Promise<boolean>;
  recordRetentionRun(repositoryId: number, run: { at: Date; result: RetentionResult; detail: string }): Promise<void>;
}

const date = (t: string | null): Date | null => (t === null ? null : new Date(t));

function toPolicy(row: Selectable<RetentionPoliciesTable>): RetentionPolicy {
  return {
    repositoryId: row.repository_id,
    keepLast: row.keep_last,
    keepHourly: row.keep_hourly,
    keepDaily: row.keep_daily,
    keepWeekly: row.keep_weekly,
    keepMonthly: row.keep_monthly,
    keepYearly: row.keep_yearly,
    keepWithin: row.keep_within,
    prefix: row.prefix,
    schedule: row.schedule,
    updatedAt: new Date(row.updated_at),
    updatedBy: row.updated_by,
    lastRunAt: date(row.last_run_at),
    lastResult: row.last_result as RetentionResult | null,
    lastDetail: row.last_detail,
  };
}

export function createRetentionStore({ db, now }: StoreDeps): RetentionStore {
  return {
    async getRetentionPolicy(repositoryId) {
      const row = await db.selectFrom('retention_policies').selectAll().where('repository_id', '=', repositoryId).executeTakeFirst();
      return row ? toPolicy(row) : null;
    },

    async listRetentionPolicies() {
      return (await db.selectFrom('retention_policies').selectAll().orderBy('repository_id').execute()).map(toPolicy);
    },

    async setRetentionPolicy(repositoryId, rules, by) {
      const values = {
        keep_last: rules.keepLast,
        keep_hourly: rules.keepHourly,
        keep_daily: rules.keepDaily,
        keep_weekly: rules.keepWeekly,
        keep_monthly: rules.keepMonthly,
        keep_yearly: rules.keepYearly,
        keep_within: rules.keepWithin,
        prefix: rules.prefix,
        schedule: rules.schedule,
        updated_at: now().toISOString(),
        updated_by: by,
      };
      const row = await db
        .insertInto('retention_policies')
        .values({ repository_id: repositoryId, ...values })
        .onConflict((oc) => oc.column('repository_id').doUpdateSet(values))
        .returningAll()
        .executeTakeFirstOrThrow();
      return toPolicy(row);
    },

    async removeRetentionPolicy(repositoryId) {
      const r = await db.deleteFrom('retention_policies').where('repository_id', '=', repositoryId).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    },

    async recordRetentionRun(repositoryId, run) {
      await db
        .updateTable('retention_policies')
        .set({ last_run_at: run.at.toISOString(), last_result: run.result, last_detail: run.detail.slice(0, 2000) })
        .where('repository_id', '=', repositoryId)
        .execute();
    },
  };
}
