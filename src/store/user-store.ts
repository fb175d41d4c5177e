// Console users (admin, operator, viewer). For now only their registration; passwords and
// console sessions come with the web console, which will set password_hash.

import { conflict, invalidInput } from '../errors.js';
import { checkName } from './names.js';
import { iso } from './rows.js';
import { isUniqueViolation, type StoreDeps } from './store-deps.js';

export const USER_ROLES = ['admin', 'operator', 'viewer'] as const;
export type UserRole = (typeof USER_ROLES)[number];

export interface User {
  id: number;
  name: string;
  role: UserRole;
  hasPassword: boolean;
  createdAt: Date;
}

export interface UserStore {
  addUser(input: { name: string; role: string }): Promise<User>;
  listUsers(): Promise<User[]>;
}

export function createUserStore({ db, now }: StoreDeps): UserStore {
  const toUser = (row: { id: number; name: string; role: string; password_hash: string | null; created_at: string }): User => ({
    id: row.id,
    name: row.name,
    role: row.role as UserRole,
    hasPassword: row.password_hash !== null,
    createdAt: new Date(row.created_at),
  });

  return {
    async addUser({ name, role }) {
      checkName('user', name);
      if (!(USER_ROLES as readonly string[]).includes(role)) {
        throw invalidInput(`unknown user role '${role}'; use admin, operator or viewer`);
      }
      const taken = () => conflict(`a user named '${name}' already exists`);
      try {
        return await db.transaction().execute(async (trx) => {
          if (await trx.selectFrom('users').select('id').where('name', '=', name).executeTakeFirst()) throw taken();
          const row = await trx
            .insertInto('users')
            .values({ name, role, password_hash: null, created_at: iso(now()) })
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
  };
}
