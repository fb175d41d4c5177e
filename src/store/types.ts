// Domain records of the store, as the rest of borgkeep sees them (camelCase, parsed values).
// The database schema lives in migrations.ts; queries in the *-store.ts files map rows to these.

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
  /** At most this many writing sessions per rolling 24 hours, or null for no limit. */
  writesPerDay: number | null;
  /** Allowed client address ranges (CIDR), or null for any address. */
  fromCidrs: string[] | null;
  expiresAt: Date | null;
  createdAt: Date;
}

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
}

export interface Transaction {
  id: number;
  sessionId: number;
  /** borg's transaction id: the segment number of its COMMIT; null when rolled back. */
  borgTransactionId: number | null;
  objectsPut: number;
  objectsOverwritten: number;
  objectsDeleted: number;
  manifestWritten: boolean;
  state: 'committed' | 'rolled_back';
  startedAt: Date;
  endedAt: Date;
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
}

export type NewTransaction = Omit<Transaction, 'id'>;
export type NewDenial = Omit<Denial, 'id'>;

/** What the guard needs from the store: nothing more, so it can be tested with a fake. */
export interface GuardStore {
  findKey(ref: string): Promise<SshKey | undefined>;
  /** The grant of this key on the repository of this name, or undefined when there is none. */
  findGrant(keyId: number, repositoryName: string): Promise<{ grant: Grant; repository: Repository } | undefined>;
  /**
   * What a running session asks about every half second (guard/grant-watch.ts), in one indexed
   * query: when the key was revoked, and its grant on the repository now; undefined when the key
   * is not registered.
   */
  grantStanding(keyId: number, repositoryId: number): Promise<{ keyRevokedAt: Date | null; grant: Grant | null } | undefined>;
  /** Sessions of this key on this repository since `since` that committed at least one transaction. */
  countWritingSessions(keyId: number, repositoryId: number, since: Date): Promise<number>;
  startSession(session: NewSession): Promise<number>;
  updateSession(sessionId: number, update: SessionUpdate): Promise<void>;
  endSession(sessionId: number, end: SessionEnd): Promise<void>;
  recordTransaction(tx: NewTransaction): Promise<number>;
  recordDenial(denial: NewDenial): Promise<number>;
  /** Whether a full session may compact (or destroy) the repository now, and why. */
  compactionGate(repositoryId: number): Promise<{ readonly open: boolean; readonly why: string }>;
}
