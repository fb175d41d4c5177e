// Second-factor recovery codes: a user's set of one-use codes, kept as SHA-256 hashes only (the
// codes carry 80 random bits, so a plain hash cannot be reversed by guessing). The caller hashes;
// this store never sees a code. A set is replaced whole (enrolment, regeneration) and voided when
// the second factor is turned off (user-store's setTotp).

import type { StoreDeps } from './store-deps.js';
import { iso } from './rows.js';

export interface RecoveryCodeStore {
  /** Replaces every code of the user by these hashes (all unused). */
  replaceRecoveryCodes(userId: number, codeHashes: readonly string[]): Promise<void>;
  /** Marks the code used; false when it is not one of the user's or was used before. */
  claimRecoveryCode(userId: number, codeHash: string): Promise<boolean>;
  /** How many unused codes the user has left. */
  countRecoveryCodes(userId: number): Promise<number>;
}

export function createRecoveryCodeStore({ db, now }: StoreDeps): RecoveryCodeStore {
  return {
    async replaceRecoveryCodes(userId, codeHashes) {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
        if (codeHashes.length > 0) {
          await trx
            .insertInto('recovery_codes')
            .values(codeHashes.map((code_hash) => ({ user_id: userId, code_hash, used_at: null })))
            .execute();
        }
      });
    },
    async claimRecoveryCode(userId, codeHash) {
      // One conditional update: two logins racing with the same code cannot both win.
      const updated = await db
        .updateTable('recovery_codes')
        .set({ used_at: iso(now()) })
        .where('user_id', '=', userId)
        .where('code_hash', '=', codeHash)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      return Number(updated.numUpdatedRows) >= 1;
    },
    async countRecoveryCodes(userId) {
      const row = await db
        .selectFrom('recovery_codes')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('user_id', '=', userId)
        .where('used_at', 'is', null)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
