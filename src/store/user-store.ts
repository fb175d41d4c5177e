// Console users (admin, operator, viewer): their role, password hash and second factor. The
// store only keeps hashes it is given (argon2id, made in src/api/auth/passwords.ts); it never sees
// a password. Changing a password or removing a user ends that user's console sessions in the
// same transaction, and the last admin can be neither demoted nor removed.

import type { Selectable } from 'kysely';
import { conflict, invalidInput, notFound } from '../errors.js';
import { checkName } from './names.js';
import { iso } from './rows.js';
import type { Database, UsersTable } from './schema.js';
import { isUniqueViolation, type StoreDeps } from './store-deps.js';
import type { Kysely } from 'kysely';

export const USER_ROLES = ['admin', 'operator', 'viewer'] as const;
export type UserRole = (typeof USER_ROLES)[number];
/** Where a user signs in: a password here, an OpenID provider, or an LDAP directory. */
export type UserSource = 'local' | 'oidc' | 'ldap';

export interface User {
  id: number;
  name: string;
  role: UserRole;
  hasPassword: boolean;
  totpEnabled: boolean;
  /** An admin reset the password: the console asks for a new one before anything else. */
  mustChangePassword: boolean;
  createdAt: Date;
  source: UserSource;
}

/** What a login needs to check, beside the user. */
export interface UserCredentials {
  user: User;
  passwordHash: string | null;
  /** Base32 secret, pending (not yet confirmed) while user.totpEnabled is false. */
  totpSecret: string | null;
  totpLastStep: number | null;
}

export interface UserStore {
  addUser(input: { name: string; role: string; passwordHash?: string | null }): Promise<User>;
  listUsers(): Promise<User[]>;
  countUsers(): Promise<number>;
  /** Throws BK_ERR_NOT_FOUND "no user named 'x'". */
  getUser(name: string): Promise<User>;
  findUserCredentials(name: string): Promise<UserCredentials | undefined>;
  getUserCredentialsById(id: number): Promise<UserCredentials | undefined>;
  /** Sets the hash and ends every console session of the user; mustChange (an admin's reset) asks for a new one at the next login. */
  setPasswordHash(name: string, passwordHash: string, options?: { mustChange?: boolean; keepSessionId?: number }): Promise<User>;
  setUserRole(name: string, role: string): Promise<User>;
  removeUser(name: string): Promise<User>;
  /** secret null: no second factor. enabled false with a secret: enrolment pending. */
  setTotp(userId: number, totp: { secret: string | null; enabled: boolean }): Promise<void>;
  /** Records that the code of this time step was used; false when it (or a later one) was used before. */
  claimTotpStep(userId: number, step: number): Promise<boolean>;
}

export function checkUserRole(role: string): UserRole {
  if ((USER_ROLES as readonly string[]).includes(role)) return role as UserRole;
  throw invalidInput(`unknown user role '${role}'; use admin, operator or viewer`);
}

export const toUser = (row: Selectable<UsersTable>): User => ({
  id: row.id,
  name: row.name,
  role: row.role as UserRole,
  hasPassword: row.password_hash !== null,
  totpEnabled: Number(row.totp_enabled) === 1,
  mustChangePassword: Number(row.must_change_password) === 1,
  createdAt: new Date(row.created_at),
  source: (row.source ?? 'local') as UserSource,
});

const toCredentials = (row: Selectable<UsersTable>): UserCredentials => ({
  user: toUser(row),
  passwordHash: row.password_hash,
  totpSecret: row.totp_secret,
  totpLastStep: row.totp_last_step === null ? null : Number(row.totp_last_step),
});

const userNotFound = (name: string) => notFound(`no user named '${name}'`);

async function requireUser(db: Kysely<Database>, name: string): Promise<Selectable<UsersTable>> {
  const row = await db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
  if (!row) throw userNotFound(name);
  return row;
}

async function otherAdmins(db: Kysely<Database>, userId: number): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('role', '=', 'admin')
    .where('id', '!=', userId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export function createUserStore({ db, now }: StoreDeps): UserStore {
  return {
    async addUser({ name, role, passwordHash = null }) {
      checkName('user', name);
      checkUserRole(role);
      const taken = () => conflict(`a user named '${name}' already exists`);
      try {
        return await db.transaction().execute(async (trx) => {
          if (await trx.selectFrom('users').select('id').where('name', '=', name).executeTakeFirst()) throw taken();
          const row = await trx
            .insertInto('users')
            .values({ name, role, password_hash: passwordHash, created_at: iso(now()), totp_secret: null, totp_last_step: null })
            .returningAll()
            .executeTakeFirstOrThrow();
          return toUser(row);
        });
      } catch (error) {
        throw isUniqueViolation(error) ? taken() : error;
      }
    },

    async listUsers() {
      return (await db.selectFrom('users').selectAll().orderBy('name').execute()).map(toUser);
    },

    async countUsers() {
      const row = await db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async getUser(name) {
      return toUser(await requireUser(db, name));
    },

    async findUserCredentials(name) {
      const row = await db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
      return row && toCredentials(row);
    },

    async getUserCredentialsById(id) {
      const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toCredentials(row);
    },

    async setPasswordHash(name, passwordHash, options = {}) {
      return db.transaction().execute(async (trx) => {
        const row = await requireUser(trx, name);
        // A sign-on user with a password would be a second way in that the provider cannot take away.
        if (row.source !== 'local') throw invalidInput(`'${name}' signs on through ${row.source === 'oidc' ? 'the OpenID provider' : 'the LDAP directory'} and has no password here`);
        let ended = trx.deleteFrom('console_sessions').where('user_id', '=', row.id);
        if (options.keepSessionId !== undefined) ended = ended.where('id', '!=', options.keepSessionId);
        await ended.execute();
        const set = { password_hash: passwordHash, must_change_password: options.mustChange ? 1 : 0 };
        return toUser(await trx.updateTable('users').set(set).where('id', '=', row.id).returningAll().executeTakeFirstOrThrow());
      });
    },

    async setUserRole(name, role) {
      const checked = checkUserRole(role);
      return db.transaction().execute(async (trx) => {
        const row = await requireUser(trx, name);
        if (row.role === 'admin' && checked !== 'admin' && (await otherAdmins(trx, row.id)) === 0) {
          throw conflict(`'${name}' is the only admin; make another user admin first`);
        }
        // A token never acts above its user's role; lowering the role lowers them too (auth checks the lesser).
        return toUser(await trx.updateTable('users').set({ role: checked }).where('id', '=', row.id).returningAll().executeTakeFirstOrThrow());
      });
    },

    async removeUser(name) {
      return db.transaction().execute(async (trx) => {
        const row = await requireUser(trx, name);
        if (row.role === 'admin' && (await otherAdmins(trx, row.id)) === 0) {
          throw conflict(`'${name}' is the only admin and cannot be removed; make another user admin first`);
        }
        // Sessions and tokens go with the user (foreign keys cascade).
        await trx.deleteFrom('users').where('id', '=', row.id).execute();
        return toUser(row);
      });
    },

    async setTotp(userId, { secret, enabled }) {
      await db.transaction().execute(async (trx) => {
        await trx.updateTable('users').set({ totp_secret: secret, totp_enabled: enabled ? 1 : 0, totp_last_step: null }).where('id', '=', userId).execute();
        // Recovery codes belong to one enrolment: turning the factor off or starting again voids them.
        if (!enabled) await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
      });
    },

    async claimTotpStep(userId, step) {
      const updated = await db
        .updateTable('users')
        .set({ totp_last_step: step })
        .where('id', '=', userId)
        .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
        .executeTakeFirst();
      return Number(updated.numUpdatedRows) === 1;
    },
  };
}
