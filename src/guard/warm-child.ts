// Starting the child `borg serve` of a forced command before the session asks for it.
//
// Under sshd every session is a new process: node starts and loads the guard and the store, and
// only when the client's `open` arrives does borg serve start, and Python's start-up (a quarter
// of a second) then runs after node's. A backup waits for both, one after the other. Here the
// forced command guesses the child from the database as its very first step (the key's only
// grant: its repository, role and quota, in one read-only query) and starts that borg serve at
// once, so both start-ups overlap.
//
// The guess decides nothing. The child gets no byte until the guard has judged the client's
// `open` exactly as without a guess, and the guard takes the warm child only when the command
// line it would start is the same, argument for argument (borgServeArgv); any other outcome
// (another repository, a changed grant, a refused session) kills the warm child unused. borg
// serve touches no repository before its `open`, so an unused one changed nothing.

import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { isKeyId } from '../store/lookups.js';
import { borgServeArgv, type BorgChild, type BorgServeOptions, type LogLevel, type SpawnBorg } from './borg-child.js';

export interface WarmSpawner {
  /** The warm child when `opts` give the same command line as the guess, else a fresh spawn. */
  readonly spawnBorg: SpawnBorg;
  /** Kills the warm child if nothing took it (at the session's end, whatever the outcome). */
  discard(): void;
  /** Whether the session took the warm child (for tests and the benchmark). */
  readonly adopted: boolean;
}

export function warmSpawner(spawn: SpawnBorg, guess: BorgServeOptions): WarmSpawner {
  const guessed = borgServeArgv(guess);
  let warm: BorgChild | null = spawn(guess);
  let adopted = false;
  const same = (argv: readonly string[]) => argv.length === guessed.length && argv.every((a, i) => a === guessed[i]);
  return {
    spawnBorg(opts) {
      const child = warm;
      warm = null;
      if (child && same(borgServeArgv(opts))) {
        adopted = true;
        return child;
      }
      child?.kill();
      return spawn(opts);
    },
    discard() {
      warm?.kill();
      warm = null;
    },
    get adopted() {
      return adopted;
    },
  };
}

/** The few facts of the key's grants the guess reads (the store's schema, read-only). */
interface GrantRow {
  role: string;
  expires_at: string | null;
  dir_name: string;
  quota_bytes: number | null;
}

/** A minimal read-only SQLite handle (better-sqlite3's), so tests can give another. */
export interface ReadOnlyDb {
  prepare(sql: string): { all(...params: unknown[]): unknown[] };
  close(): void;
}

/**
 * The child the guard will most likely start for this key: its one grant's repository (if that
 * exists on disk), with the grant's role and the repository's quota. Null when the key has no
 * grant or several, is revoked, its grant expired, or anything cannot be read: then the guard
 * starts the child at the `open`, as always.
 */
export function guessChild(db: ReadOnlyDb, reposDir: string, keyRef: string, logLevel: LogLevel | null, now: Date): BorgServeOptions | null {
  const byId = isKeyId(keyRef); // as the store's findKey reads a key reference
  const rows = db
    .prepare(
      `select g.role, g.expires_at, r.dir_name, r.quota_bytes from ssh_keys k
       join grants g on g.key_id = k.id join repositories r on r.id = g.repository_id
       where k.${byId ? 'id' : 'name'} = ? and k.revoked_at is null limit 2`,
    )
    .all(byId ? Number(keyRef) : keyRef) as GrantRow[];
  if (rows.length !== 1) return null;
  const [grant] = rows;
  if (grant.expires_at !== null && Date.parse(grant.expires_at) <= now.getTime()) return null;
  const repositoryPath = join(reposDir, grant.dir_name);
  if (!existsSync(repositoryPath)) return null;
  return { repositoryPath, appendOnly: grant.role !== 'full', storageQuota: grant.quota_bytes, logLevel };
}
