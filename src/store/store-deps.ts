// What every *-store.ts factory gets: the database handle, the clock and a change mark.
// Nothing else, so the stores can be tested against a real database file with a fixed clock.

import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface StoreDeps {
  db: Kysely<Database>;
  now: () => Date;
  /**
   * A value that differs whenever anything in the database may have changed since it was last
   * read, by this process or another (SQLite: data_version and this connection's total changes;
   * PostgreSQL: a version every writing statement bumps, migration 0026).
   * Left out, nothing that depends on it is cached.
   */
  changeMark?: () => string | Promise<string>;
}

/** A uniqueness constraint refused the write (SQLite or PostgreSQL). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}
