// Row shapes of the database tables, as Kysely sees them (snake_case, stored values).
// Only the *-store.ts files use these; everything else sees the domain types in types.ts.
// Timestamps are ISO-8601 UTC text (Date#toISOString), so they sort as strings on every dialect.
// Booleans are integers 0/1 because better-sqlite3 cannot bind JavaScript booleans.

import type { Generated } from 'kysely';

export interface UsersTable {
  id: Generated<number>;
  name: string;
  role: string;
  password_hash: string | null;
  created_at: string;
  totp_secret: string | null;
  totp_enabled: Generated<number>;
  totp_last_step: number | null;
  /** 1 after an admin reset the password: the console asks for a new one before anything else. */
  must_change_password: Generated<number>;
  /** 'local', 'oidc' or 'ldap' (0019). */
  source: Generated<string>;
  /** The provider's subject or the directory entry's DN; null for local users. */
  external_id: string | null;
}

export interface RecoveryCodesTable {
  id: Generated<number>;
  user_id: number;
  code_hash: string;
  used_at: string | null;
}

export interface RepositoriesTable {
  id: Generated<number>;
  name: string;
  dir_name: string;
  quota_bytes: number | null;
  created_at: string;
  expected_interval_seconds: Generated<number>;
  /** Bumped by every write that changes the repository's status (migration 0006). */
  status_version: Generated<number>;
}

export interface SshKeysTable {
  id: Generated<number>;
  name: string;
  type: string;
  blob: string;
  fingerprint: string;
  comment: string | null;
  bits: number;
  created_at: string;
  revoked_at: string | null;
}

export interface GrantsTable {
  id: Generated<number>;
  key_id: number;
  repository_id: number;
  role: string;
  writes_per_day: number | null;
  /** JSON array of CIDR strings, or null for any address. */
  from_cidrs: string | null;
  expires_at: string | null;
  created_at: string;
  /** A prune grant's retention rule (migration 0013); null: no such bound. */
  min_age_seconds: number | null;
  keep_last: number | null;
  prefix: string | null;
  max_removals_per_day: number | null;
  verify_objects: Generated<number>;
}

export interface SessionsTable {
  id: Generated<number>;
  key_id: number | null;
  /** Names are copied in so the ledger still reads right after a key or repository is gone. */
  key_name: string | null;
  repository_id: number | null;
  repository_name: string | null;
  role: string | null;
  client_address: string | null;
  client_version: string | null;
  started_at: string;
  ended_at: string | null;
  bytes_in: Generated<number>;
  bytes_out: Generated<number>;
  result: Generated<string>;
  detail: string | null;
  pid: number | null;
  host: string | null;
  /** 'client', or 'retention' for the server's own prune and compact (migration 0014). */
  kind: Generated<string>;
  /** JSON array of the borg methods borg serve answered (and run-kind.ts's notes); null before migration 0017. */
  methods: string | null;
  /** store/run-kind.ts's kind, written when the session ends; null while open (migration 0017). */
  run_kind: string | null;
}

export interface RetentionPoliciesTable {
  repository_id: number;
  keep_last: number | null;
  keep_hourly: number | null;
  keep_daily: number | null;
  keep_weekly: number | null;
  keep_monthly: number | null;
  keep_yearly: number | null;
  keep_within: string | null;
  prefix: string | null;
  schedule: string;
  updated_at: string;
  updated_by: string;
  last_run_at: string | null;
  last_result: string | null;
  last_detail: string | null;
}

export interface TransactionsTable {
  id: Generated<number>;
  session_id: number;
  borg_transaction_id: number | null;
  objects_put: number;
  objects_overwritten: number;
  objects_deleted: number;
  /** Of those, objects the session had not written itself; null before migration 0011. */
  objects_deleted_older: number | null;
  manifest_written: number;
  state: string;
  started_at: string;
  ended_at: string;
  /** 1: every manifest put was judged at the commit with the key and allowed (migration 0013). */
  archive_checked: Generated<number>;
}

export interface RemovalClaimsTable {
  id: Generated<number>;
  session_id: number;
  grant_id: number;
  repository_id: number;
  day: string;
  archives: number;
  claimed_at: string;
}

export interface BackupClaimsTable {
  id: Generated<number>;
  session_id: number;
  key_id: number;
  repository_id: number;
  claimed_at: string;
}

export interface DenialsTable {
  id: Generated<number>;
  session_id: number | null;
  key_id: number | null;
  repository_id: number | null;
  method: string;
  reason: string;
  message: string;
  at: string;
}

export interface RepositoryEventsTable {
  id: Generated<number>;
  repository_id: number;
  kind: string;
  through_txn: number | null;
  verdict: string | null;
  actor: string;
  detail: string;
  at: string;
  /** The audit's whole report as JSON (audits recorded since migration 0003), else null. */
  report: Generated<string | null>;
}

export interface ConsoleSessionsTable {
  id: Generated<number>;
  user_id: number;
  /** SHA-256 (hex) of the session id in the cookie; the id itself is never stored. */
  id_hash: string;
  address: string | null;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
}

export interface ApiTokensTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  /** SHA-256 (hex) of the whole token; the token is shown once and never stored. */
  token_hash: string;
  /** The first characters of the token, so people can tell their tokens apart. */
  prefix: string;
  role: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface AlertChannelsTable {
  id: Generated<number>;
  name: string;
  kind: string;
  target: string;
  format: string | null;
  secret: string | null;
  enabled: Generated<number>;
  created_at: string;
}

export interface AlertsTable {
  id: Generated<number>;
  key: string;
  rule: string;
  severity: string;
  repository_id: number | null;
  summary: string;
  detail: string;
  opened_at: string;
  last_notified_at: string;
  notifications: Generated<number>;
  resolved_at: string | null;
  key_id: number | null;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
}

export interface AlertSilencesTable {
  id: Generated<number>;
  repository_id: number | null;
  key_id: number | null;
  until: string;
  reason: string | null;
  created_by: string;
  created_at: string;
  ended_by: string | null;
}

export interface AlertDeliveriesTable {
  id: Generated<number>;
  alert_id: number | null;
  channel_id: number | null;
  channel_name: string;
  event: string;
  state: string;
  attempts: Generated<number>;
  last_error: string | null;
  created_at: string;
  finished_at: string | null;
}

export interface JobsTable {
  name: string;
  last_started_at: string | null;
  last_finished_at: string | null;
  last_result: string | null;
  last_detail: string | null;
}

export interface RepositoryStatsTable {
  id: Generated<number>;
  repository_id: number;
  at: string;
  size_bytes: number;
  objects: number | null;
  reclaimable_bytes: number | null;
  storage_used_bytes: number | null;
}

export interface LeasesTable {
  name: string;
  holder: string;
  expires_at: string;
}

export interface NodesTable {
  name: string;
  address: string;
  host_key: string;
  client_key: string;
  borg_version: string | null;
  capacity_bytes: Generated<number>;
  free_bytes: Generated<number>;
  started_at: string;
  heartbeat_at: string;
  stopped_at: string | null;
  host: string;
  pid: number;
}

export interface FleetKeysTable {
  public_key: string;
  name: string;
  seen_at: string;
}

export interface RepositoryNodesTable {
  repository_id: number;
  node: string;
  moving_to: string | null;
}

export interface LoginFailuresTable {
  id: Generated<number>;
  address: string;
  at: string;
}

export interface AuthFailuresTable {
  id: Generated<number>;
  key_id: number | null;
  address: string | null;
  reason: string;
  at: string;
}

/** Migration 0009: the server's time at which each archive (id and name) was first seen. */
export interface ArchiveSightingsTable {
  repository_id: number;
  archive_id: string;
  name: string;
  client_time: string;
  first_seen_at: string;
  transaction_id: number;
  baseline: Generated<number>;
}

export interface SettingsTable {
  name: string;
  /** JSON. */
  value: string;
  updated_at: string;
}

/** One row: bumped by triggers on every write to keys, grants and repository names (migration 0020). */
export interface AccessVersionTable {
  id: number;
  version: number;
}

/** Migration 0021: client hosts of pull backups (src/pull/types.ts PullHost). */
export interface PullHostsTable {
  id: Generated<number>;
  name: string;
  address: string;
  port: number;
  user_name: string;
  repository_id: number;
  /** JSON array of absolute paths. */
  paths: string;
  /** JSON array of borg exclude patterns. */
  excludes: string;
  compression: string;
  archive_template: string;
  schedule: string | null;
  schedule_from: string;
  timeout_seconds: number;
  retries: number;
  host_key_fingerprint: string | null;
  offered_host_key: string | null;
  offered_host_key_at: string | null;
  created_at: string;
  /** Migration 0022: 1 = jobs give the client the repository's chunk index, 0 = not. */
  send_chunk_index: Generated<number>;
  /** Migration 0024: 1 = the client keeps borg's files cache between jobs, 0 = not. */
  keep_files_cache: Generated<number>;
}

/** Migration 0021: pull jobs; host_id/host_name outlive the host (no foreign key). */
export interface PullJobsTable {
  id: Generated<number>;
  host_id: number;
  host_name: string;
  trigger: string;
  state: string;
  archive_name: string | null;
  queued_at: string;
  not_before: string | null;
  started_at: string | null;
  ended_at: string | null;
  bytes: Generated<number>;
  files: Generated<number>;
  current_path: string | null;
  reason: string | null;
  attempt: Generated<number>;
  hostile: Generated<number>;
  runner_kind: string | null;
  runner_pid: number | null;
  runner_host: string | null;
}

/** Migration 0021: each pull job's log lines, numbered per job from 1. */
export interface PullJobLogTable {
  job_id: number;
  seq: number;
  at: string;
  line: string;
}

/** Migration 0023: each verification run (verify/verify-service.ts); the newest says how far verification got. */
export interface VerificationsTable {
  id: Generated<number>;
  repository_id: number;
  at: string;
  actor: string;
  scope: string;
  verdict: string;
  from_txn: number | null;
  through_txn: number | null;
  through_stamp: string | null;
  objects_read: Generated<number>;
  bytes_read: Generated<number>;
  detail: string;
  findings: Generated<string>;
}

/** Migration 0025: a repository's archive check rules (checks/check-rules.ts); percentages, null: not checked. */
export interface ArchiveCheckRulesTable {
  repository_id: number;
  /** JSON array of path patterns. */
  required_paths: Generated<string>;
  max_count_change: number | null;
  max_size_change: number | null;
  max_changed: number | null;
  max_new_data: number | null;
  updated_at: string;
  updated_by: string;
}

/** Migration 0025: the server's verdict on each archive (checks/archive-check-service.ts). */
export interface ArchiveChecksTable {
  id: Generated<number>;
  repository_id: number;
  archive_id: string;
  archive_name: string;
  archive_time: string;
  verdict: string;
  /** JSON: [{rule, sentence}]. */
  findings: Generated<string>;
  /** JSON: [sentence]. */
  notes: Generated<string>;
  /** JSON: checks/check-rules.ts CheckFigures, or null (skipped). */
  figures: string | null;
  checked_at: string;
  gone_at: string | null;
}

/** Migration 0025: whether console viewers may browse a repository's archives (names and metadata). */
export interface BrowseAccessTable {
  repository_id: number;
  viewers_may_browse: Generated<number>;
  updated_at: string;
  updated_by: string;
}

export interface Database {
  access_version: AccessVersionTable;
  users: UsersTable;
  repositories: RepositoriesTable;
  ssh_keys: SshKeysTable;
  grants: GrantsTable;
  sessions: SessionsTable;
  transactions: TransactionsTable;
  denials: DenialsTable;
  backup_claims: BackupClaimsTable;
  removal_claims: RemovalClaimsTable;
  repository_events: RepositoryEventsTable;
  console_sessions: ConsoleSessionsTable;
  api_tokens: ApiTokensTable;
  recovery_codes: RecoveryCodesTable;
  alert_channels: AlertChannelsTable;
  alerts: AlertsTable;
  alert_deliveries: AlertDeliveriesTable;
  alert_silences: AlertSilencesTable;
  jobs: JobsTable;
  repository_stats: RepositoryStatsTable;
  auth_failures: AuthFailuresTable;
  login_failures: LoginFailuresTable;
  leases: LeasesTable;
  nodes: NodesTable;
  fleet_keys: FleetKeysTable;
  repository_nodes: RepositoryNodesTable;
  settings: SettingsTable;
  archive_sightings: ArchiveSightingsTable;
  retention_policies: RetentionPoliciesTable;
  pull_hosts: PullHostsTable;
  pull_jobs: PullJobsTable;
  pull_job_log: PullJobLogTable;
  verifications: VerificationsTable;
  archive_check_rules: ArchiveCheckRulesTable;
  archive_checks: ArchiveChecksTable;
  browse_access: BrowseAccessTable;
}
