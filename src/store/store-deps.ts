// What every *-store.ts factory gets: the database handle and the clock. Nothing else, so the
// stores can be tested against a real database file with a fixed clock.

import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface StoreDeps {
  db: Kysely<Database>;
  now: () => Date;
}

/** A uniqueness constraint refused the write (SQLite or PostgreSQL). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}
