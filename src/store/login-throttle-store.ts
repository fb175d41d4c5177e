// Failed SSH logins per source address, shared by the gateways on one database (migration 0027;
// gateway/shared-throttle.ts decides with them).

import { iso } from './rows.js';
import type { StoreDeps } from './store-deps.js';

export interface LoginThrottleStore {
  /** One connection from `address` that has not logged in; its row's id, to take it back. */
  noteLoginFailure(address: string, at: Date): Promise<number>;
  /** The connection logged in after all. */
  forgiveLoginFailure(id: number): Promise<void>;
  /** Addresses with at least `limit` failures at or after `since`, on any gateway. */
  addressesOverLoginLimit(since: Date, limit: number): Promise<string[]>;
  /** Removes failures older than `before`; how many. */
  pruneLoginFailures(before: Date): Promise<number>;
}

export function createLoginThrottleStore({ db }: StoreDeps): LoginThrottleStore {
  return {
    async noteLoginFailure(address, at) {
      return (await db.insertInto('login_failures').values({ address, at: iso(at) }).returning('id').executeTakeFirstOrThrow()).id;
    },
    async forgiveLoginFailure(id) {
      await db.deleteFrom('login_failures').where('id', '=', id).execute();
    },
    async addressesOverLoginLimit(since, limit) {
      const rows = await db
        .selectFrom('login_failures')
        .select('address')
        .where('at', '>=', iso(since))
        .groupBy('address')
        .having((eb) => eb.fn.countAll(), '>=', limit)
        .execute();
      return rows.map((r) => r.address);
    },
    async pruneLoginFailures(before) {
      const result = await db.deleteFrom('login_failures').where('at', '<', iso(before)).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
