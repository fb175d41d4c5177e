// The API from the console: JSON over fetch with the session cookie (same origin), the CSRF
// token on every state change, and errors as ApiError carrying the server's code and sentence.
// GETs are conditional: the answer's ETag is kept with its text, sent back as If-None-Match, and
// a 304 reuses the copy, so a page polling an unchanged list gets no body. The dashboard's list
// (GET /repositories) is kept up to date through GET /repository-changes: only the repositories
// changed since the copy held travel (a console open on a thousand repositories fetches a few KB
// per refresh, not the whole list).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;
let onSignedOut: () => void = () => {};

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when a request finds the session gone (401), so the app shows the login again. */
export function onSessionEnded(handler: () => void): void {
  onSignedOut = handler;
}

/** GET answers kept for If-None-Match, by path; the oldest go first beyond MAX_COPIES. */
const copies = new Map<string, { etag: string; text: string }>();
const MAX_COPIES = 32;

export async function api<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  if (method === 'GET' && path === '/repositories') return (await repositoriesIncrementally()) as T;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const copy = method === 'GET' ? copies.get(path) : undefined;
  if (copy) headers['if-none-match'] = copy.etag;
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, credentials: 'same-origin', ...(body !== undefined && { body: JSON.stringify(body) }) });
  } catch {
    throw new ApiError(0, 'BK_ERR_NETWORK', 'the server cannot be reached; is borgkeep serve running?');
  }
  // Parsed anew from the copy's text: callers may keep or change what they get.
  if (response.status === 304 && copy) return JSON.parse(copy.text) as T;
  const text = await response.text();
  if (method === 'GET') {
    const etag = response.headers.get('etag');
    copies.delete(path);
    if (response.ok && etag) {
      copies.set(path, { etag, text });
      if (copies.size > MAX_COPIES) copies.delete(copies.keys().next().value!);
    }
  }
  const json = text === '' ? undefined : (JSON.parse(text) as unknown);
  if (!response.ok) {
    const error = (json ?? {}) as { code?: string; message?: string };
    if (response.status === 401 && path !== '/session') onSignedOut();
    throw new ApiError(response.status, error.code ?? 'BK_ERR_INTERNAL', error.message ?? `the server answered ${response.status}`);
  }
  return json as T;
}

interface RepositoryChanges {
  version: string;
  full: boolean;
  names: string[] | null;
  repositories: Repository[];
}
/** The dashboard's list as last brought up to date, and its version. */
let repositoryList: { version: string; names: string[]; byName: Map<string, Repository> } | null = null;

async function repositoriesIncrementally(): Promise<{ repositories: Repository[] }> {
  const held = repositoryList;
  const r = await api<RepositoryChanges>('GET', `/repository-changes${held ? `?since=${encodeURIComponent(held.version)}` : ''}`);
  let next: NonNullable<typeof repositoryList>;
  if (r.full || !held) {
    next = { version: r.version, names: r.names ?? r.repositories.map((x) => x.name), byName: new Map(r.repositories.map((x) => [x.name, x])) };
  } else {
    // A new copy, never the held one changed: an answer that arrives late must not mix lists.
    next = { version: r.version, names: r.names ?? held.names, byName: new Map(held.byName) };
    for (const x of r.repositories) next.byName.set(x.name, x);
    if (r.names) {
      const present = new Set(r.names);
      for (const n of next.byName.keys()) if (!present.has(n)) next.byName.delete(n);
    }
  }
  // A list missing one it names (cannot happen with a consistent server): start over with the whole list.
  if (next.names.some((n) => !next.byName.has(n))) {
    repositoryList = null;
    if (held) return repositoriesIncrementally();
  }
  repositoryList = next;
  return { repositories: next.names.flatMap((n) => next.byName.get(n) ?? []) };
}

// The shapes the console reads (see /api/v1/openapi.json).
export type UserRole = 'admin' | 'operator' | 'viewer';
export type GrantRole = 'read' | 'append' | 'prune' | 'full';

export interface User {
  id: number;
  name: string;
  role: UserRole;
  hasPassword: boolean;
  totpEnabled: boolean;
  createdAt: string;
  /** An admin reset the password: the console asks for a new one first. */
  mustChangePassword: boolean;
  /** Where the user signs in: a password here, an OpenID provider, an LDAP directory. */
  source: 'local' | 'oidc' | 'ldap';
}

export interface Repository {
  id: number;
  name: string;
  quotaBytes: number | null;
  expectedIntervalSeconds: number;
  createdAt: string;
  grantCount: number;
  lastSessionAt: string | null;
  /** The newest finished session: ok, refused (denied), failed (error) or cut off (aborted). */
  lastSessionResult: 'ok' | 'denied' | 'error' | 'aborted' | null;
  lastWriteAt: string | null;
  lastBackupAt: string | null;
  backup: 'ok' | 'late' | 'never';
  denialsLast24h: number;
  lastAudit: { at: string; verdict: string | null; detail: string } | null;
  gate: { open: boolean; why: string; coveredThrough: number | null; waitingTxn: number | null };
  initialized: boolean;
  sizeBytes: number | null;
  /** Whether borgkeep holds this repository's key in its vault. */
  keyHeld: boolean;
}

export interface Grant {
  keyId: number;
  keyName: string;
  keyFingerprint: string;
  keyRevoked: boolean;
  repositoryName: string;
  role: GrantRole;
  writesPerDay: number | null;
  fromCidrs: string[] | null;
  expiresAt: string | null;
  createdAt: string;
}

export interface SshKey {
  id: number;
  name: string;
  type: string;
  bits: number;
  fingerprint: string;
  comment: string | null;
  revoked: boolean;
  revokedAt: string | null;
  createdAt: string;
}

export interface Transaction {
  id: number;
  borgTransactionId: number | null;
  objectsPut: number;
  objectsOverwritten: number;
  objectsDeleted: number;
  manifestWritten: boolean;
  state: 'committed' | 'rolled_back';
  startedAt: string;
  endedAt: string;
}

export interface Denial {
  id: number;
  sessionId: number | null;
  keyId: number | null;
  repositoryId: number | null;
  method: string;
  reason: string;
  message: string;
  at: string;
  keyName?: string | null;
  repositoryName?: string | null;
}

export interface Session {
  id: number;
  /** 'retention': the server's own borg prune and compact, with no key. */
  kind?: 'client' | 'retention' | 'pull';
  keyId: number | null;
  keyName: string | null;
  repositoryId: number | null;
  repositoryName: string | null;
  role: GrantRole | null;
  clientAddress: string | null;
  clientVersion: string | null;
  startedAt: string;
  endedAt: string | null;
  bytesIn: number;
  bytesOut: number;
  result: 'open' | 'ok' | 'denied' | 'error' | 'aborted';
  detail: string | null;
  transactions?: Transaction[];
  denials?: Denial[];
  /** What kind of run (ledger lists only; the server judges it). */
  runKind?: string;
  /** Archives it added, where an audit or the vault saw them. */
  archives?: Array<{ name: string; transactionId: number }>;
}

export interface AuditedTransaction {
  id: number;
  time: string | null;
  verdict: 'ok' | 'notice' | 'suspicious';
  reasons: string[];
  session: number | null;
  key: string | null;
  role: GrantRole | null;
  attributed: boolean;
  objectsPut: number;
  objectsOverwritten: number;
  objectsDeleted: number;
  manifestWritten: boolean;
  archivesAdded: string[] | null;
  archivesRemoved: string[] | null;
  archivesReplaced: string[] | null;
  checkpointsPromoted: string[] | null;
  compacted?: boolean;
}

export interface AuditReport {
  verdict: 'clean' | 'suspicious';
  firstSuspiciousTransaction: number | null;
  lastKnownGoodTransaction: number | null;
  manifestsRead: boolean;
  checksNeedingKey?: string[];
  problems?: string[];
  transactions: AuditedTransaction[];
}

export interface AuditEvent {
  id: number;
  kind: string;
  throughTxn: number | null;
  verdict: string | null;
  actor: string;
  detail: string;
  at: string;
}

export interface SshEndpoint {
  user: string;
  port: number;
  host: string | null;
  fingerprints: Array<{ type: string; fingerprint: string }>;
}

// Monitoring (alert-routes.ts): alerts with their deliveries, channels, settings, jobs, statistics.
export interface Alert {
  id: number;
  rule: string;
  severity: 'warning' | 'critical';
  repository: string | null;
  summary: string;
  detail: string;
  openedAt: string;
  lastNotifiedAt: string;
  notifications: number;
  resolvedAt: string | null;
  /** The SSH key it is about (refusals, failed logins). */
  key: string | null;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  /** A silence covers it: nothing of it goes to the channels now. */
  silenced: boolean;
}

export interface AlertSilence {
  id: number;
  repository: string | null;
  key: string | null;
  until: string;
  reason: string | null;
  createdBy: string;
  createdAt: string;
  endedBy: string | null;
  active: boolean;
}

export interface Delivery {
  id: number;
  channel: string;
  event: 'opened' | 'repeated' | 'resolved' | 'test';
  state: 'pending' | 'sent' | 'failed';
  attempts: number;
  lastError: string | null;
  createdAt: string;
  finishedAt: string | null;
}

export type WebhookFormat = 'json' | 'slack' | 'discord' | 'text';

export interface AlertChannel {
  name: string;
  kind: 'email' | 'webhook';
  target: string;
  format: WebhookFormat | null;
  hasSecret: boolean;
  enabled: boolean;
  createdAt: string;
}

export interface AlertSettings {
  repeatSeconds: number;
  quotaWarnPercent: number;
  quotaCriticalPercent: number;
  denialWindowSeconds: number;
  authFailureThreshold: number;
  authFailureWindowSeconds: number;
  diskFreePercent: number;
}

export interface SmtpServer {
  host: string;
  port: number;
  secure: boolean;
  requireTls: boolean;
  user: string | null;
  hasPassword: boolean;
  from: string;
  verifyCertificate: boolean;
}

export interface Job {
  name: string;
  description: string;
  pattern: string;
  running: boolean;
  nextRunAt: string | null;
  lastStartedAt: string | null;
  lastFinishedAt: string | null;
  lastResult: 'ok' | 'error' | null;
  lastDetail: string | null;
}

export interface RepositoryStat {
  at: string;
  sizeBytes: number;
  objects: number | null;
  reclaimableBytes: number | null;
  storageUsedBytes: number | null;
}

/** GET /repositories/:name/retention (src/api/routes/retention-routes.ts). */
export interface RetentionPolicy {
  keepLast: number | null;
  keepHourly: number | null;
  keepDaily: number | null;
  keepWeekly: number | null;
  keepMonthly: number | null;
  keepYearly: number | null;
  keepWithin: string | null;
  prefix: string | null;
  schedule: string;
  updatedAt: string;
  updatedBy: string;
  lastRunAt: string | null;
  lastResult: 'ok' | 'warning' | 'error' | null;
  lastDetail: string | null;
}

export interface Retention {
  repository: string;
  keyHeld: boolean;
  policy: RetentionPolicy | null;
  nextRunAt: string | null;
}
