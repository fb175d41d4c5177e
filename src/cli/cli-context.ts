// What every command gets: where the data directory is, where to print, the clock, and the
// store, opened lazily. Commands import the store module only when they run, so `--help` and
// commands that need no database stay quick to start (borg-serve starts once per SSH session).

import { hostname } from 'node:os';
import type { Store } from '../store/database.js';
import type { Output } from './output.js';

export interface CliContext {
  /** Absolute path of the data directory (--data-dir, else BORGKEEP_DATA_DIR, else ./borgkeep-data). */
  getDataDir(): string;
  out: Output;
  now(): Date;
  stdin: NodeJS.ReadStream;
  /** Where questions to a person go (never stdout, which scripts read). */
  prompt: NodeJS.WritableStream;
}

export async function withStore<T>(ctx: CliContext, work: (store: Store) => Promise<T>): Promise<T> {
  const [{ openStore }, { databaseUrlFor }] = await Promise.all([import('../store/database.js'), import('../store/database-location.js')]);
  const dataDir = ctx.getDataDir();
  const database = databaseUrlFor(dataDir);
  const store = await openStore({ dataDir, now: () => ctx.now(), ...(database !== undefined && { database }) });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/**
 * Whether the process that runs a ledger session still exists. Only processes on this host can
 * be checked; for any other host the answer is "alive", so its sessions are left alone.
 */
export function isLocalProcessAlive(pid: number, host: string): boolean {
  if (host !== hostname()) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user (sshd sessions may run as another account).
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
