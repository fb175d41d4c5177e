// Mapping between table rows (schema.ts) and domain records (types.ts). Kept in one place so
// every query returns the same shapes, and so a PostgreSQL driver's different value types
// (bigint as string, for one) would be handled here and nowhere else.

import type { Selectable } from 'kysely';
import type {
  DenialsTable,
  GrantsTable,
  RepositoriesTable,
  SessionsTable,
  SshKeysTable,
  TransactionsTable,
} from './schema.js';
import type { Denial, Grant, Repository, Role, Session, SessionKind, SessionResult, SshKey, Transaction } from './types.js';
import type { AuditEventVerdict, RepositoryEvent, RepositoryEventKind } from './history-store.js';
import type { RepositoryEventsTable } from './schema.js';

export const iso = (date: Date): string => date.toISOString();
export const isoOrNull = (date: Date | null | undefined): string | null => (date ? date.toISOString() : null);
const dateOrNull = (text: string | null): Date | null => (text === null ? null : new Date(text));
export const num = (value: number | bigint | string): number => Number(value);
const numOrNull = (value: number | bigint | string | null): number | null => (value === null ? null : Number(value));

export function toRepository(row: Selectable<RepositoriesTable>): Repository {
  return {
    id: row.id,
    name: row.name,
    dirName: row.dir_name,
    quotaBytes: numOrNull(row.quota_bytes),
    expectedIntervalSeconds: num(row.expected_interval_seconds),
    createdAt: new Date(row.created_at),
  };
}

export function toSshKey(row: Selectable<SshKeysTable>): SshKey {
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    blob: row.blob,
    fingerprint: row.fingerprint,
    comment: row.comment,
    bits: row.bits,
    createdAt: new Date(row.created_at),
    revokedAt: dateOrNull(row.revoked_at),
  };
}

export function toGrant(row: Selectable<GrantsTable>): Grant {
  return {
    id: row.id,
    keyId: row.key_id,
    repositoryId: row.repository_id,
    role: row.role as Role,
    writesPerDay: row.writes_per_day,
    fromCidrs: row.from_cidrs === null ? null : (JSON.parse(row.from_cidrs) as string[]),
    expiresAt: dateOrNull(row.expires_at),
    createdAt: new Date(row.created_at),
    minAgeSeconds: numOrNull(row.min_age_seconds),
    keepLast: row.keep_last,
    prefix: row.prefix,
    maxRemovalsPerDay: row.max_removals_per_day,
    verifyObjects: row.verify_objects === 1,
  };
}

export function toSession(row: Selectable<SessionsTable>): Session {
  return {
    id: row.id,
    keyId: row.key_id,
    keyName: row.key_name,
    repositoryId: row.repository_id,
    repositoryName: row.repository_name,
    role: row.role as Role | null,
    clientAddress: row.client_address,
    clientVersion: row.client_version,
    startedAt: new Date(row.started_at),
    endedAt: dateOrNull(row.ended_at),
    bytesIn: num(row.bytes_in),
    bytesOut: num(row.bytes_out),
    result: row.result as SessionResult,
    detail: row.detail,
    pid: row.pid,
    host: row.host,
    kind: (row.kind ?? 'client') as SessionKind,
  };
}

export function toTransaction(row: Selectable<TransactionsTable>): Transaction {
  return {
    id: row.id,
    sessionId: row.session_id,
    borgTransactionId: numOrNull(row.borg_transaction_id),
    objectsPut: row.objects_put,
    objectsOverwritten: row.objects_overwritten,
    objectsDeleted: row.objects_deleted,
    objectsDeletedOlder: row.objects_deleted_older,
    manifestWritten: row.manifest_written !== 0,
    state: row.state as Transaction['state'],
    startedAt: new Date(row.started_at),
    endedAt: new Date(row.ended_at),
  };
}

export function toDenial(row: Selectable<DenialsTable>): Denial {
  return {
    id: row.id,
    sessionId: row.session_id,
    keyId: row.key_id,
    repositoryId: row.repository_id,
    method: row.method,
    reason: row.reason,
    message: row.message,
    at: new Date(row.at),
  };
}

export function toRepositoryEvent(e: Pick<Selectable<RepositoryEventsTable>, 'id' | 'repository_id' | 'kind' | 'through_txn' | 'verdict' | 'actor' | 'detail' | 'at'>): RepositoryEvent {
  return {
    id: e.id,
    repositoryId: e.repository_id,
    kind: e.kind as RepositoryEventKind,
    throughTxn: numOrNull(e.through_txn),
    verdict: e.verdict as AuditEventVerdict | null,
    actor: e.actor,
    detail: e.detail,
    at: new Date(e.at),
  };
}
