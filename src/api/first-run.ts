// The first `borgkeep serve` on a store without users creates the user `admin` (role admin) with
// a random password and hands it to a person once: on the terminal (stderr) when it is one, else
// in a file of the data directory with mode 0600. Never on stdout (the JSON log's stream) and
// never in the log. A second serve starting at the same moment finds the user taken and prints
// nothing.

import { closeSync, fchmodSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

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

/** Where the one-time password goes when no person watches the terminal: in the data directory, mode 0600. */
export const FIRST_ADMIN_PASSWORD_FILE = 'first-admin-password';

export interface Handover {
  /** One line for the start-up text and the log, without the password. */
  line: string;
  file: string | null;
}

/**
 * Hands the one-time password to a person and to nothing else: on the terminal (stderr) when
 * stderr is one, else in a file of the data directory only its owner can read. Never on stdout,
 * which the JSON log shares (and systemd's journal keeps), and never through the logger.
 */
export function handOverFirstAdmin(admin: { name: string; password: string }, io: { dataDir: string; stderr: { isTTY?: boolean; write(text: string): unknown } }): Handover {
  const next = `log in as '${admin.name}' and change it (Account page, or POST /api/v1/me/password), or set one with: borgkeep user passwd ${admin.name}`;
  if (io.stderr.isTTY) {
    io.stderr.write(`created the console user '${admin.name}' (role admin) with this one-time password, shown only now:\n  ${admin.password}\n${next}\n`);
    return { line: `created the console user '${admin.name}' (role admin); its one-time password was shown on the terminal (stderr) only`, file: null };
  }
  const file = join(io.dataDir, FIRST_ADMIN_PASSWORD_FILE);
  // mode applies only to a new file: a file left by an earlier start is narrowed before writing.
  const fd = openSync(file, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, `${admin.password}\n`);
  } finally {
    closeSync(fd);
  }
  return { line: `created the console user '${admin.name}' (role admin); its one-time password is in ${file} (mode 0600): ${next}, then delete the file`, file };
}
