// The first `borgkeep serve` on a store without users creates the user `admin` (role admin) with
// a random password and hands it back to be printed once, on serve's standard output, never to
// the log. A second serve starting at the same moment finds the user taken and prints nothing.

import { isBorgkeepError } from '../errors.js';
import type { UserStore } from '../store/user-store.js';
import { generatePassword, type PasswordHasher } from './auth/passwords.js';

export const FIRST_ADMIN = 'admin';

export async function ensureFirstAdmin(
  store: Pick<UserStore, 'countUsers' | 'addUser'>,
  passwords: Pick<PasswordHasher, 'hash'>,
): Promise<{ name: string; password: string } | null> {
  if ((await store.countUsers()) > 0) return null;
  const password = generatePassword();
  try {
    await store.addUser({ name: FIRST_ADMIN, role: 'admin', passwordHash: await passwords.hash(password) });
  } catch (error) {
    if (isBorgkeepError(error) && error.code === 'BK_ERR_CONFLICT') return null;
    throw error;
  }
  return { name: FIRST_ADMIN, password };
}
