// Domain records of the store, as the rest of borgkeep sees them (camelCase, parsed values).
// The database schema lives in migrations.ts; queries in the *-store.ts files map rows to these.

import type { ArchiveSightingRecord } from './archive-sighting-store.js';
import type { RepositoryEvent } from './history-store.js';

export const ROLES = ['read', 'append', 'prune', 'full'] as const;
export type Role = (typeof ROLES)[number];

export const SESSION_RESULTS = ['open', 'ok', 'denied', 'error', 'aborted'] as const;
export type SessionResult = (typeof SESSION_RESULTS)[number];

export interface Repository {
  id: number;
  name: string;
  /** Directory under <data-dir>/repos/; random, so it reveals neither owner nor name. */
  dirName: string;
  /** Storage quota in bytes, or null for none. */
  quotaBytes: number | null;
  /** A backup is late when the last successful write is older than this. */
  expectedIntervalSeconds: number;
  createdAt: Date;
}

export interface SshKey {
  id: number;
  name: string;
  /** OpenSSH key type, e.g. ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa. */
  type: string;
  /** Base64 key blob exactly as in the public key line. */
  blob: string;
  /** "SHA256:..." as `ssh-keygen -l` prints it. */
  fingerprint: string;
  comment: string | null;
  bits: number;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface Grant {
  id: number;
  keyId: number;
  repositoryId: number;
  role: Role;
  /**
   * At most this many backups (sessions that commit new objects besides the manifest) per rolling
   * 24 hours, or null for no limit. Named after the CLI's --writes-per-day.
   */
  writesPerDay: number | null;
  /** Allowed client address ranges (CIDR), or null for any address. */
  fromCidrs: string[] | null;
  expiresAt: Date | null;
  createdAt: Date;
  /**
   * A prune grant's retention rule, enforced at the manifest put when borgkeep holds the
   * repository's key (guard/archive-rules.ts); null: no such bound. Archives may be removed once
   * the server first saw them at least this long ago...
   */
  minAgeSeconds: number | null;
  /** ...but never the N newest (by the server's first sighting) of the prefix... */
  keepLast: number | null;
  /** ...and only archives whose names start with it (null: every archive)... */
  prefix: string | null;
  /** ...and at most this many per UTC day. */
  maxRemovalsPerDay: number | null;
  /** Every put's id is checked against its content with the repository's key (a writing role). */
  verifyObjects: boolean;
}

/** A grant's archive rules when none are set. */
export const NO_ARCHIVE_RULES = { minAgeSeconds: null, keepLast: null, prefix: null, maxRemovalsPerDay: null, verifyObjects: false } as const satisfies Partial<Grant>;

/** What a prune grant may remove (the Grant fields of its retention rule). */
export type GrantRetention = Pick<Grant, 'minAgeSeconds' | 'keepLast' | 'prefix' | 'maxRemovalsPerDay'>;

export interface Session {
  id: number;
  keyId: number | null;
  keyName: string | null;
  repositoryId: number | null;
  repositoryName: string | null;
  role: Role | null;
  clientAddress: string | null;
  clientVersion: string | null;
  startedAt: Date;
  endedAt: Date | null;
  bytesIn: number;
  bytesOut: number;
  result: SessionResult;
  /** One sentence on why the session ended the way it did (errors, aborts). */
  detail: string | null;
  /** Process that runs the session; used to close sessions whose process died. */
  pid: number | null;
  host: string | null;
  /** Whose session: a client's, or the server's own retention run (prune and compact). */
  kind: SessionKind;
}

export const SESSION_KINDS = ['client', 'retention', 'pull'] as const;
export type SessionKind = (typeof SESSION_KINDS)[number];

export interface Transaction {
  id: number;
  sessionId: number;
  /** borg's transaction id: the segment number of its COMMIT; null when rolled back. */
  borgTransactionId: number | null;
  objectsPut: number;
  objectsOverwritten: number;
  objectsDeleted: number;
  /** Of those, objects the session had not written itself (null: recorded before borgkeep counted them). */
  objectsDeletedOlder?: number | null;
  manifestWritten: boolean;
  state: 'committed' | 'rolled_back';
  startedAt: Date;
  endedAt: Date;
  /**
   * Every manifest put of the transaction was judged at the commit with the repository's key and
   * allowed by the session's role with nothing suspicious (guard/archive-rules.ts); false also
   * when there was none, or borgkeep holds no key. Written with the transaction; read back by
   * listCommittedTransactions (the gate's concern), not by the ledger listings.
   */
  archiveChecked?: boolean;
}

export interface Denial {
  id: number;
  sessionId: number | null;
  keyId: number | null;
  repositoryId: number | null;
  method: string;
  /** Stable reason code, e.g. BK_DENY_OVERWRITE. */
  reason: string;
  message: string;
  at: Date;
}

export interface NewSession {
  /** Default 'client'. */
  kind?: SessionKind;
  keyId: number | null;
  keyName: string | null;
  clientAddress: string | null;
  startedAt: Date;
  pid: number;
  host: string;
}

export interface SessionUpdate {
  repositoryId?: number;
  repositoryName?: string;
  role?: Role;
  clientVersion?: string;
  bytesIn?: number;
  bytesOut?: number;
}

export interface SessionEnd {
  endedAt: Date;
  result: Exclude<SessionResult, 'open'>;
  detail: string | null;
  bytesIn: number;
  bytesOut: number;
  /** The borg methods borg serve answered, with run-kind.ts's notes (migration 0017): what kind of run it was. */
  methods?: readonly string[];
}

export interface BackupClaim {
  sessionId: number;
  grantId: number;
  keyId: number;
  repositoryId: number;
  /** Backups allowed per rolling 24 hours (the grant's writesPerDay). */
  limit: number;
  /** Backups committed from this time on count; the start of the rolling window. */
  since: Date;
  at: Date;
}

/** A prune grant's archive removals of one UTC day, claimed at the manifest put (removal_claims). */
export interface RemovalClaim {
  sessionId: number;
  grantId: number;
  repositoryId: number;
  /** Archives this manifest put removes beyond what the session claimed before in its transaction. */
  archives: number;
  /** The grant's max_removals_per_day. */
  limit: number;
  at: Date;
}

export type NewTransaction = Omit<Transaction, 'id'>;
export type NewDenial = Omit<Denial, 'id'>;

/** What the guard needs from the store: nothing more, so it can be tested with a fake. */
export interface GuardStore {
  findKey(ref: string): Promise<SshKey | undefined>;
  /** The grant of this key on the repository of this name, or undefined when there is none. */
  findGrant(keyId: number, repositoryName: string): Promise<{ grant: Grant; repository: Repository } | undefined>;
  /**
   * Claims one of the grant's backups for this session, atomically: counts the key's backups of
   * the repository (sessions that committed new objects besides the manifest since `since`, and
   * running sessions holding a claim) and, when fewer than `limit`, records the claim, in one
   * transaction. A claim whose session ends without committing a backup stops counting.
   */
  claimBackup(claim: BackupClaim): Promise<{ readonly claimed: boolean; readonly backups: number }>;
  /**
   * What a running session asks about every half second (guard/grant-watch.ts), in one indexed
   * query: when the key was revoked, and its grant on the repository now; undefined when the key
   * is not registered.
   */
  grantStanding(keyId: number, repositoryId: number): Promise<{ keyRevokedAt: Date | null; grant: Grant | null } | undefined>;
  startSession(session: NewSession): Promise<number>;
  /**
   * startSession for a key with a limit on its sessions at once: in one transaction, under the
   * store's write lock, counts the key's open sessions — in every process on the database: the
   * forced command, every gateway — and starts this one; the caller compares `openBefore` with
   * its limit. (Optional for test doubles; the real stores have it.)
   */
  startSessionCounted?(session: NewSession): Promise<{ id: number; openBefore: number }>;
  updateSession(sessionId: number, update: SessionUpdate): Promise<void>;
  endSession(sessionId: number, end: SessionEnd): Promise<void>;
  recordTransaction(tx: NewTransaction): Promise<number>;
  recordDenial(denial: NewDenial): Promise<number>;
  /** The repository's events (audits, approvals, rollbacks, compactions), newest first: the gate's coverage. */
  listEvents(repositoryId: number, limit?: number): Promise<RepositoryEvent[]>;
  /** Records a compaction the gate let through, or one it deferred. */
  recordEvent(event: Omit<RepositoryEvent, 'id' | 'at'> & { report?: unknown }): Promise<RepositoryEvent>;
  /**
   * Claims a prune grant's removals of the UTC day of `at`, atomically: counts the grant's claims
   * on the repository that day and, when the new ones fit under `limit`, records them in one
   * transaction, so concurrent sessions cannot race past the limit. Returns the claim's id.
   */
  claimRemovals(claim: RemovalClaim): Promise<{ readonly claimed: boolean; readonly used: number; readonly claimId: number | null }>;
  /** Gives claims back (their transaction was rolled back: nothing was removed). */
  releaseRemovals(claimIds: readonly number[]): Promise<void>;
  /** The archive sightings store's (archive-sighting-store.ts): the server's first sighting of each archive. */
  recordArchiveSightings(repositoryId: number, sightings: readonly ArchiveSightingRecord[]): Promise<void>;
  listArchiveSightings(repositoryId: number): Promise<ArchiveSightingRecord[]>;
  /** Every committed transaction on the repository, oldest first: who wrote each, for the gate. */
  listCommittedTransactions(
    repositoryId: number,
  ): Promise<Array<{ borgTransactionId: number; sessionId: number; keyName: string | null; role: Role | null; at: Date; /** Transaction.archiveChecked. */ archiveChecked?: boolean }>>;
}
