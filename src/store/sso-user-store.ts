// Users who sign on through an OpenID provider or an LDAP directory. They are found by their
// identity at the source (the provider's subject, the entry's DN), never by name alone, so a
// sign-on can never become a local user who happens to have the same name. Their role is what
// the claim or group mapping says at each sign-on; a refused sign-on ends their console sessions
// and revokes their API tokens at once, in one transaction.
//
// Never: keeps a password for such a user, or turns a local user into a sign-on user.

import type { Kysely } from 'kysely';
import { conflict } from '../errors.js';
import { checkName } from './names.js';
import { iso } from './rows.js';
import type { Database } from './schema.js';
import { isUniqueViolation, type StoreDeps } from './store-deps.js';
import { checkUserRole, toUser, type User, type UserRole } from './user-store.js';

export type SsoSource = 'oidc' | 'ldap';

export interface SsoUserStore {
  /**
   * The user of this identity, created on the first sign-on (with `name`), its role set to
   * `role`. Throws BK_ERR_CONFLICT when the name belongs to another user.
   */
  signOnUser(input: { source: SsoSource; externalId: string; name: string; role: UserRole }): Promise<User>;
  /** The user of this identity, if one signed on before. */
  findSsoUser(source: SsoSource, externalId: string): Promise<User | undefined>;
  /** Ends every console session of the user and revokes their API tokens (a refused sign-on). */
  endUserAccess(userId: number): Promise<void>;
  /** Ends the console sessions of every local user except `keep` (password logins turned off). */
  endLocalSessionsExcept(keep: string): Promise<number>;
}

async function userBy(db: Kysely<Database>, source: SsoSource, externalId: string) {
  return db.selectFrom('users').selectAll().where('source', '=', source).where('external_id', '=', externalId).executeTakeFirst();
}

export function createSsoUserStore({ db, now }: StoreDeps): SsoUserStore {
  return {
    async signOnUser({ source, externalId, name, role }) {
      checkName('user', name);
      checkUserRole(role);
      const taken = () =>
        conflict(`the user name '${name}' already belongs to another borgkeep user; rename that user or sign on with another name`);
      try {
        return await db.transaction().execute(async (trx) => {
          const found = await userBy(trx, source, externalId);
          if (found) {
            const row = await trx.updateTable('users').set({ role }).where('id', '=', found.id).returningAll().executeTakeFirstOrThrow();
            return toUser(row);
          }
          if (await trx.selectFrom('users').select('id').where('name', '=', name).executeTakeFirst()) throw taken();
          const row = await trx
            .insertInto('users')
            .values({ name, role, password_hash: null, created_at: iso(now()), totp_secret: null, totp_last_step: null, source, external_id: externalId })
            .returningAll()
            .executeTakeFirstOrThrow();
          return toUser(row);
        });
      } catch (error) {
        throw isUniqueViolation(error) ? taken() : error;
      }
    },
    async findSsoUser(source, externalId) {
      const row = await userBy(db, source, externalId);
      return row && toUser(row);
    },
    async endUserAccess(userId) {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('console_sessions').where('user_id', '=', userId).execute();
        await trx.updateTable('api_tokens').set({ revoked_at: iso(now()) }).where('user_id', '=', userId).where('revoked_at', 'is', null).execute();
      });
    },
    async endLocalSessionsExcept(keep) {
      const result = await db
        .deleteFrom('console_sessions')
        .where('user_id', 'in', (eb) => eb.selectFrom('users').select('id').where('source', '=', 'local').where('name', '!=', keep))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
