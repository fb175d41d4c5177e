// Console sessions and API tokens. Both are looked up by the SHA-256 of the secret the client
// holds (a cookie, a bearer token), so the database alone never lets anyone in. Expiry and idle
// time are decided by the caller (src/api/auth), which passes the clock's time in; the store
// only keeps the times.

import type { Selectable } from 'kysely';
import { conflict, notFound } from '../errors.js';
import { checkName } from './names.js';
import { iso, isoOrNull } from './rows.js';
import type { ApiTokensTable, ConsoleSessionsTable } from './schema.js';
import { isUniqueViolation, type StoreDeps } from './store-deps.js';
import { checkUserRole, type UserRole } from './user-store.js';

export interface ConsoleSession {
  id: number;
  userId: number;
  address: string | null;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

export interface ApiToken {
  id: number;
  userId: number;
  userName: string;
  name: string;
  /** The first characters of the token (e.g. "bk_Ab12Cd"), to tell tokens apart. */
  prefix: string;
  role: UserRole;
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface AuthStore {
  createConsoleSession(input: { userId: number; idHash: string; address: string | null; expiresAt: Date }): Promise<ConsoleSession>;
  findConsoleSession(idHash: string): Promise<ConsoleSession | undefined>;
  touchConsoleSession(id: number, at: Date): Promise<void>;
  deleteConsoleSession(id: number): Promise<void>;
  createApiToken(input: { userId: number; name: string; tokenHash: string; prefix: string; role: string; expiresAt: Date | null }): Promise<ApiToken>;
  findApiToken(tokenHash: string): Promise<ApiToken | undefined>;
  /** Every token, or those of one user; newest first. */
  listApiTokens(userId?: number): Promise<ApiToken[]>;
  getApiToken(id: number): Promise<ApiToken>;
  revokeApiToken(id: number): Promise<ApiToken>;
  touchApiToken(id: number, at: Date): Promise<void>;
}

const toSession = (row: Selectable<ConsoleSessionsTable>): ConsoleSession => ({
  id: row.id,
  userId: row.user_id,
  address: row.address,
  createdAt: new Date(row.created_at),
  lastSeenAt: new Date(row.last_seen_at),
  expiresAt: new Date(row.expires_at),
});

const toToken = (row: Selectable<ApiTokensTable> & { user_name: string }): ApiToken => ({
  id: row.id,
  userId: row.user_id,
  userName: row.user_name,
  name: row.name,
  prefix: row.prefix,
  role: row.role as UserRole,
  createdAt: new Date(row.created_at),
  expiresAt: row.expires_at === null ? null : new Date(row.expires_at),
  lastUsedAt: row.last_used_at === null ? null : new Date(row.last_used_at),
  revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at),
});

export function createAuthStore({ db, now }: StoreDeps): AuthStore {
  const tokens = () => db.selectFrom('api_tokens as t').innerJoin('users as u', 'u.id', 't.user_id').selectAll('t').select('u.name as user_name');
  const getApiToken = async (id: number) => {
    const row = await tokens().where('t.id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`no API token with id ${id}`);
    return toToken(row);
  };
  return {
    async createConsoleSession({ userId, idHash, address, expiresAt }) {
      const at = iso(now());
      const row = await db
        .insertInto('console_sessions')
        .values({ user_id: userId, id_hash: idHash, address, created_at: at, last_seen_at: at, expires_at: iso(expiresAt) })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toSession(row);
    },
    async findConsoleSession(idHash) {
      const row = await db.selectFrom('console_sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
      return row && toSession(row);
    },
    async touchConsoleSession(id, at) {
      await db.updateTable('console_sessions').set({ last_seen_at: iso(at) }).where('id', '=', id).execute();
    },
    async deleteConsoleSession(id) {
      await db.deleteFrom('console_sessions').where('id', '=', id).execute();
    },

    async createApiToken({ userId, name, tokenHash, prefix, role, expiresAt }) {
      checkName('token', name);
      checkUserRole(role);
      // Unique among a user's live tokens (a partial unique index backs this up against races).
      const taken = () => conflict(`you already have an API token named '${name}'; pick another name or revoke that one first`);
      const same = await db.selectFrom('api_tokens').select('id').where('user_id', '=', userId).where('name', '=', name).where('revoked_at', 'is', null).executeTakeFirst();
      if (same) throw taken();
      const row = await db
        .insertInto('api_tokens')
        .values({
          user_id: userId,
          name,
          token_hash: tokenHash,
          prefix,
          role,
          created_at: iso(now()),
          expires_at: isoOrNull(expiresAt),
          last_used_at: null,
          revoked_at: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow()
        .catch((error: unknown) => {
          throw isUniqueViolation(error) ? taken() : error;
        });
      return getApiToken(row.id);
    },
    async findApiToken(tokenHash) {
      const row = await tokens().where('t.token_hash', '=', tokenHash).executeTakeFirst();
      return row && toToken(row);
    },
    async listApiTokens(userId) {
      let query = tokens();
      if (userId !== undefined) query = query.where('t.user_id', '=', userId);
      return (await query.orderBy('t.id', 'desc').execute()).map(toToken);
    },
    getApiToken,
    async revokeApiToken(id) {
      const token = await getApiToken(id);
      if (token.revokedAt !== null) return token;
      await db.updateTable('api_tokens').set({ revoked_at: iso(now()) }).where('id', '=', id).execute();
      return getApiToken(id);
    },
    async touchApiToken(id, at) {
      await db.updateTable('api_tokens').set({ last_used_at: iso(at) }).where('id', '=', id).execute();
    },
  };
}
