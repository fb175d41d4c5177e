// Verification runs (migration 0023): what each run of `borgkeep verify` or the daily verify job
// read and found. The newest run that read anything says where the next one starts; a run that
// found damage keeps its alert open until a later full run (`--all`) finds the repository intact.
// Findings name objects and archives, never a path or a key.

import type { Selectable } from 'kysely';

import type { VerificationsTable } from './schema.js';
import type { StoreDeps } from './store-deps.js';

export type VerificationScope = 'changed' | 'all';
export type VerificationVerdict = 'intact' | 'damaged' | 'error';

export interface VerificationRecord {
  readonly id: number;
  readonly repositoryId: number;
  readonly at: Date;
  readonly actor: string;
  readonly scope: VerificationScope;
  readonly verdict: VerificationVerdict;
  readonly fromTxn: number | null;
  readonly throughTxn: number | null;
  readonly throughStamp: string | null;
  readonly objectsRead: number;
  readonly bytesRead: number;
  readonly detail: string;
  /** As verify-service.ts stored them (objects, kinds, sentences, archives). */
  readonly findings: unknown[];
}

/** A run to record: the record without its id and time (the store sets them). */
export interface NewVerification extends Omit<VerificationRecord, 'id' | 'at' | 'findings'> {
  readonly findings: readonly unknown[];
}

export interface VerificationStore {
  recordVerification(v: NewVerification): Promise<VerificationRecord>;
  /** The newest run that read the repository (intact or damaged), or null. */
  lastVerification(repositoryId: number): Promise<VerificationRecord | null>;
  /** Per repository, the newest run that found damage and that no later intact full run followed. */
  unresolvedVerificationDamage(): Promise<VerificationRecord[]>;
}

function toRecord(row: Selectable<VerificationsTable>): VerificationRecord {
  let findings: unknown[] = [];
  try {
    findings = JSON.parse(row.findings) as unknown[];
  } catch {
    // written by this file only; an unreadable list shows as none rather than failing a page
  }
  return {
    id: row.id,
    repositoryId: row.repository_id,
    at: new Date(row.at),
    actor: row.actor,
    scope: row.scope as VerificationScope,
    verdict: row.verdict as VerificationVerdict,
    fromTxn: row.from_txn === null ? null : Number(row.from_txn),
    throughTxn: row.through_txn === null ? null : Number(row.through_txn),
    throughStamp: row.through_stamp,
    objectsRead: Number(row.objects_read),
    bytesRead: Number(row.bytes_read),
    detail: row.detail,
    findings,
  };
}

export function createVerificationStore({ db, now }: StoreDeps): VerificationStore {
  return {
    async recordVerification(v) {
      const row = await db
        .insertInto('verifications')
        .values({
          repository_id: v.repositoryId,
          at: now().toISOString(),
          actor: v.actor,
          scope: v.scope,
          verdict: v.verdict,
          from_txn: v.fromTxn,
          through_txn: v.throughTxn,
          through_stamp: v.throughStamp,
          objects_read: v.objectsRead,
          bytes_read: v.bytesRead,
          detail: v.detail.slice(0, 2000),
          // Bounded: a repository damaged everywhere keeps the first thousand findings.
          findings: JSON.stringify(v.findings.slice(0, 1000)),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRecord(row);
    },

    async lastVerification(repositoryId) {
      const row = await db
        .selectFrom('verifications')
        .selectAll()
        .where('repository_id', '=', repositoryId)
        .where('verdict', '!=', 'error')
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row ? toRecord(row) : null;
    },

    async unresolvedVerificationDamage() {
      const rows = await db
        .selectFrom('verifications as v')
        .selectAll('v')
        .where('v.verdict', '=', 'damaged')
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('verifications as w')
                .select('w.id')
                .whereRef('w.repository_id', '=', 'v.repository_id')
                .whereRef('w.id', '>', 'v.id')
                .where((eb) => eb.or([eb('w.verdict', '=', 'damaged'), eb.and([eb('w.scope', '=', 'all'), eb('w.verdict', '=', 'intact')])])),
            ),
          ),
        )
        .orderBy('v.repository_id')
        .execute();
      return rows.map(toRecord);
    },
  };
}
