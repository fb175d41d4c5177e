// Registered SSH public keys. A key is never deleted, only revoked: sessions and authorized_keys
// lines name it by id, and a revoked key (a compromised one, usually) must never come back
// under another name, so its blob stays registered.

import type { Selectable } from 'kysely';
import { conflict } from '../errors.js';
import { noteGrantsChanged } from '../shared/grant-changes.js';
import { checkGrantTerms, type GrantTerms } from './grant-terms.js';
import { writeGrant } from './grant-store.js';
import { requireKey, requireRepository, selectKey } from './lookups.js';
import { checkName } from './names.js';
import { iso, toSshKey } from './rows.js';
import type { SshKeysTable } from './schema.js';
import type { SshPublicKey } from './ssh-public-key.js';
import { isUniqueViolation, type StoreDeps } from './store-deps.js';
import type { Grant, GuardStore, SshKey } from './types.js';

export interface NewKey {
  name: string;
  publicKey: SshPublicKey;
  /** Also grant the new key this role on this repository, in the same transaction. */
  grant?: { repositoryName: string } & GrantTerms;
}

export interface KeyRevocation {
  key: SshKey;
  alreadyRevoked: boolean;
  grantsRemoved: number;
}

export interface KeyStore extends Pick<GuardStore, 'findKey'> {
  /** Throws BK_ERR_NOT_FOUND "no key named 'x'" / "no key with id N". */
  getKey(ref: string): Promise<SshKey>;
  /** The key sshd or the embedded server saw (type and base64 blob), revoked or not. */
  findKeyByBlob(type: string, blob: string): Promise<SshKey | undefined>;
  listKeys(): Promise<SshKey[]>;
  /** Each key's newest session start (any result), by key id; a key never used is absent. */
  keysLastUsed(): Promise<Map<number, Date>>;
  /**
   * What the key list depends on: the version of keys, grants and repository names (bumped by
   * triggers in any process), and the newest session id (a key's last use comes from sessions).
   */
  keyListMarks(): Promise<{ access: number; newestSession: number }>;
  /** For each key with a session newer than session `afterId`: the newest start among them. */
  keysUsedSince(afterId: number): Promise<Map<number, Date>>;
  addKey(input: NewKey): Promise<{ key: SshKey; grant: Grant | null }>;
  /** Marks the key revoked and removes its grants; revoking a revoked key changes nothing. */
  revokeKey(ref: string): Promise<KeyRevocation>;
}

function alreadyRegistered(row: Pick<Selectable<SshKeysTable>, 'id' | 'name' | 'revoked_at'>) {
  return row.revoked_at === null
    ? conflict(`this key is already registered as '${row.name}' (id ${row.id})`)
    : conflict(`this key was registered as '${row.name}' (id ${row.id}) and revoked; a revoked key cannot be added again`);
}

export function createKeyStore({ db, now }: StoreDeps): KeyStore {
  return {
    async findKey(ref) {
      const row = await selectKey(db, ref);
      return row && toSshKey(row);
    },

    async getKey(ref) {
      return toSshKey(await requireKey(db, ref));
    },

    async findKeyByBlob(type, blob) {
      const row = await db
        .selectFrom('ssh_keys')
        .selectAll()
        .where('type', '=', type)
        .where('blob', '=', blob)
        .executeTakeFirst();
      return row && toSshKey(row);
    },

    async listKeys() {
      return (await db.selectFrom('ssh_keys').selectAll().orderBy('name').execute()).map(toSshKey);
    },

    async keysLastUsed() {
      // One max() per key: with sessions_key_started_idx SQLite answers each by a single index
      // seek, so the Keys page stays fast however long the ledger grows (key-store.test.ts
      // checks the plan).
      const rows = await db
        .selectFrom('ssh_keys as k')
        .select((eb) => ['k.id', eb.selectFrom('sessions as s').select((s) => s.fn.max('s.started_at').as('m')).whereRef('s.key_id', '=', 'k.id').as('last_used_at')])
        .execute();
      const used = new Map<number, Date>();
      for (const row of rows) if (row.last_used_at !== null) used.set(row.id, new Date(row.last_used_at as string));
      return used;
    },

    async keyListMarks() {
      const [access, newest] = await Promise.all([
        db.selectFrom('access_version').select('version').where('id', '=', 1).executeTakeFirst(),
        db.selectFrom('sessions').select((eb) => eb.fn.max('id').as('m')).executeTakeFirst(),
      ]);
      return { access: access?.version ?? 0, newestSession: Number(newest?.m ?? 0) };
    },

    async keysUsedSince(afterId) {
      // The sessions after `afterId` by the primary key (a few since the last look), grouped
      // here: with `group by key_id` SQLite walks the key index over the whole ledger instead.
      const rows = await db.selectFrom('sessions').select(['key_id', 'started_at']).where('id', '>', afterId).execute();
      const used = new Map<number, Date>();
      for (const r of rows) {
        if (r.key_id === null) continue;
        const at = new Date(r.started_at);
        const seen = used.get(r.key_id);
        if (!seen || seen < at) used.set(r.key_id, at);
      }
      return used;
    },

    async addKey({ name, publicKey, grant }) {
      checkName('key', name);
      const nameTaken = () => conflict(`a key named '${name}' already exists`);
      try {
        return await db.transaction().execute(async (trx) => {
          if (await trx.selectFrom('ssh_keys').select('id').where('name', '=', name).executeTakeFirst()) throw nameTaken();
          const same = await trx
            .selectFrom('ssh_keys')
            .select(['id', 'name', 'revoked_at'])
            .where('type', '=', publicKey.type)
            .where('blob', '=', publicKey.blob)
            .executeTakeFirst();
          if (same) throw alreadyRegistered(same);
          const at = now();
          // Resolve and check the grant before writing anything, so a bad --repo or --role
          // leaves no key behind (the transaction would roll it back anyway).
          const repository = grant ? await requireRepository(trx, grant.repositoryName) : undefined;
          const terms = grant ? checkGrantTerms(grant, at) : undefined;
          const row = await trx
            .insertInto('ssh_keys')
            .values({
              name,
              type: publicKey.type,
              blob: publicKey.blob,
              fingerprint: publicKey.fingerprint,
              comment: publicKey.comment,
              bits: publicKey.bits,
              created_at: iso(at),
              revoked_at: null,
            })
            .returningAll()
            .executeTakeFirstOrThrow();
          const written = repository && terms ? await writeGrant(trx, at, row, repository.id, terms) : undefined;
          return { key: toSshKey(row), grant: written?.grant ?? null };
        });
      } catch (error) {
        throw isUniqueViolation(error) ? conflict(`a key named '${name}' or this same key is already registered`) : error;
      }
    },

    async revokeKey(ref) {
      const revocation = await db.transaction().execute(async (trx) => {
        const row = await requireKey(trx, ref);
        if (row.revoked_at !== null) return { key: toSshKey(row), alreadyRevoked: true, grantsRemoved: 0 };
        const removed = await trx.deleteFrom('grants').where('key_id', '=', row.id).executeTakeFirst();
        const revoked = await trx
          .updateTable('ssh_keys')
          .set({ revoked_at: iso(now()) })
          .where('id', '=', row.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        return { key: toSshKey(revoked), alreadyRevoked: false, grantsRemoved: Number(removed.numDeletedRows) };
      });
      if (!revocation.alreadyRevoked) noteGrantsChanged();
      return revocation;
    },
  };
}
