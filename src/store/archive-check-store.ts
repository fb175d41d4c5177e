// Archive checks (migration 0025): per repository the rules each new archive must pass, and per
// archive the server's verdict (checks/archive-check-service.ts). Setting rules replaces the whole
// set (a rule left out is no longer a rule); verdicts are written once per archive and never
// changed, except that the checks job marks an archive gone once it has left the manifest.
// Values are checked by checks/check-rules.ts before they get here.

import type { Selectable } from 'kysely';

import type { CheckFigures, CheckFinding, CheckRules } from '../checks/check-rules.js';
import type { ArchiveCheckRulesTable, ArchiveChecksTable } from './schema.js';
import type { StoreDeps } from './store-deps.js';

export type ArchiveCheckVerdict = 'passed' | 'failed' | 'skipped';

export interface StoredCheckRules extends CheckRules {
  readonly repositoryId: number;
  readonly updatedAt: Date;
  readonly updatedBy: string;
}

export interface ArchiveCheckRecord {
  readonly id: number;
  readonly repositoryId: number;
  readonly archiveId: string;
  readonly archiveName: string;
  readonly archiveTime: string;
  readonly verdict: ArchiveCheckVerdict;
  readonly findings: readonly CheckFinding[];
  readonly notes: readonly string[];
  readonly figures: CheckFigures | null;
  readonly checkedAt: Date;
  readonly goneAt: Date | null;
}

export type NewArchiveCheck = Omit<ArchiveCheckRecord, 'id' | 'checkedAt' | 'goneAt'>;

export interface ArchiveCheckStore {
  getCheckRules(repositoryId: number): Promise<StoredCheckRules | null>;
  setCheckRules(repositoryId: number, rules: CheckRules, by: string): Promise<StoredCheckRules>;
  /** True when there were rules. */
  removeCheckRules(repositoryId: number): Promise<boolean>;
  /** Every verdict of a repository, oldest first. */
  listArchiveChecks(repositoryId: number): Promise<ArchiveCheckRecord[]>;
  /** Records a verdict; an archive that already has one keeps it (false). */
  recordArchiveCheck(check: NewArchiveCheck): Promise<boolean>;
  /** Marks the repository's verdicts of archives not in `present` (keys `${id} ${name}`) as gone. */
  markArchiveChecksGone(repositoryId: number, present: ReadonlySet<string>): Promise<number>;
  /** Failed verdicts of archives still in their repository: what the `archive-check` alert shows. */
  failedArchiveChecks(): Promise<ArchiveCheckRecord[]>;
}

function json<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    // written by this file only; unreadable shows as empty rather than failing a page
    return fallback;
  }
}

function toRules(row: Selectable<ArchiveCheckRulesTable>): StoredCheckRules {
  return {
    repositoryId: row.repository_id,
    requiredPaths: json<string[]>(row.required_paths, []),
    maxCountChange: row.max_count_change,
    maxSizeChange: row.max_size_change,
    maxChanged: row.max_changed,
    maxNewData: row.max_new_data,
    updatedAt: new Date(row.updated_at),
    updatedBy: row.updated_by,
  };
}

function toRecord(row: Selectable<ArchiveChecksTable>): ArchiveCheckRecord {
  return {
    id: row.id,
    repositoryId: row.repository_id,
    archiveId: row.archive_id,
    archiveName: row.archive_name,
    archiveTime: row.archive_time,
    verdict: row.verdict as ArchiveCheckVerdict,
    findings: json<CheckFinding[]>(row.findings, []),
    notes: json<string[]>(row.notes, []),
    figures: json<CheckFigures | null>(row.figures, null),
    checkedAt: new Date(row.checked_at),
    goneAt: row.gone_at === null ? null : new Date(row.gone_at),
  };
}

export function createArchiveCheckStore({ db, now }: StoreDeps): ArchiveCheckStore {
  return {
    async getCheckRules(repositoryId) {
      const row = await db.selectFrom('archive_check_rules').selectAll().where('repository_id', '=', repositoryId).executeTakeFirst();
      return row ? toRules(row) : null;
    },

    async setCheckRules(repositoryId, rules, by) {
      const values = {
        required_paths: JSON.stringify(rules.requiredPaths),
        max_count_change: rules.maxCountChange,
        max_size_change: rules.maxSizeChange,
        max_changed: rules.maxChanged,
        max_new_data: rules.maxNewData,
        updated_at: now().toISOString(),
        updated_by: by,
      };
      const row = await db
        .insertInto('archive_check_rules')
        .values({ repository_id: repositoryId, ...values })
        .onConflict((oc) => oc.column('repository_id').doUpdateSet(values))
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRules(row);
    },

    async removeCheckRules(repositoryId) {
      const r = await db.deleteFrom('archive_check_rules').where('repository_id', '=', repositoryId).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    },

    async listArchiveChecks(repositoryId) {
      return (await db.selectFrom('archive_checks').selectAll().where('repository_id', '=', repositoryId).orderBy('id').execute()).map(toRecord);
    },

    async recordArchiveCheck(c) {
      const r = await db
        .insertInto('archive_checks')
        .values({
          repository_id: c.repositoryId,
          archive_id: c.archiveId,
          archive_name: c.archiveName,
          archive_time: c.archiveTime,
          verdict: c.verdict,
          // Bounded: a sentence per rule, at most 50 required paths.
          findings: JSON.stringify(c.findings.slice(0, 100)),
          notes: JSON.stringify(c.notes.slice(0, 20)),
          figures: c.figures === null ? null : JSON.stringify(c.figures),
          checked_at: now().toISOString(),
        })
        .onConflict((oc) => oc.columns(['repository_id', 'archive_id', 'archive_name']).doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
    },

    async markArchiveChecksGone(repositoryId, present) {
      const rows = await db.selectFrom('archive_checks').select(['id', 'archive_id', 'archive_name']).where('repository_id', '=', repositoryId).where('gone_at', 'is', null).execute();
      const gone = rows.filter((r) => !present.has(`${r.archive_id} ${r.archive_name}`)).map((r) => r.id);
      if (gone.length === 0) return 0;
      await db.updateTable('archive_checks').set({ gone_at: now().toISOString() }).where('id', 'in', gone).execute();
      return gone.length;
    },

    async failedArchiveChecks() {
      return (await db.selectFrom('archive_checks').selectAll().where('verdict', '=', 'failed').where('gone_at', 'is', null).orderBy('id').execute()).map(toRecord);
    },
  };
}
