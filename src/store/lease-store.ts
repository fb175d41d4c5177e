// Leases (migration 0028): one holder at a time for a named duty among the processes sharing the
// database — the scheduled jobs of several gateways on PostgreSQL (jobs/scheduler.ts) — and each
// gateway's own lease, which says it still runs (dead-processes.ts).

import { iso } from './rows.js';
import type { StoreDeps } from './store-deps.js';

export interface LeaseStore {
  /**
   * Takes or renews the lease `name` for `holder` until `ttlMs` from now, when nobody holds it,
   * its holder's time ran out, or `holder` holds it already; whether `holder` holds it now.
   */
  holdLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up, if `holder` holds it (a clean shutdown: another takes over at once). */
  releaseLease(name: string, holder: string): Promise<void>;
  /** The names of the leases starting with `prefix` whose time ran out: their holders stopped renewing them. */
  expiredLeases(prefix: string): Promise<string[]>;
  /** Removes the lease `name` if its time has still run out (a renewal since keeps it). */
  forgetExpiredLease(name: string): Promise<void>;
}

export function createLeaseStore({ db, now }: StoreDeps): LeaseStore {
  return {
    async holdLease(name, holder, ttlMs) {
      return db.transaction().execute(async (trx) => {
        const at = now();
        const row = await trx.selectFrom('leases').select(['holder', 'expires_at']).where('name', '=', name).executeTakeFirst();
        if (row && row.holder !== holder && row.expires_at > iso(at)) return false;
        const expires = iso(new Date(at.getTime() + ttlMs));
        if (row) await trx.updateTable('leases').set({ holder, expires_at: expires }).where('name', '=', name).execute();
        else await trx.insertInto('leases').values({ name, holder, expires_at: expires }).execute();
        return true;
      });
    },
    async releaseLease(name, holder) {
      await db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
    },
    async expiredLeases(prefix) {
      const rows = await db.selectFrom('leases').select('name').where('expires_at', '<=', iso(now())).orderBy('name').execute();
      return rows.map((r) => r.name).filter((name) => name.startsWith(prefix));
    },
    async forgetExpiredLease(name) {
      await db.deleteFrom('leases').where('name', '=', name).where('expires_at', '<=', iso(now())).execute();
    },
  };
}
