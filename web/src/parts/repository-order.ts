// The dashboard's orders: by name, or by state with what needs a person first. Plain data in,
// plain data out (no React, no DOM, no imports), so a unit test runs it under node; it must never
// fetch or change the list it is given.

/** What the order by state reads of a repository (a subset of api.ts's Repository). */
export interface RepositoryStateInput {
  name: string;
  quotaBytes: number | null;
  sizeBytes: number | null;
  initialized: boolean;
  lastBackupAt: string | null;
  backup: 'ok' | 'late' | 'never';
  lastSessionResult: 'ok' | 'denied' | 'error' | 'aborted' | null;
  lastAudit: { verdict: string | null } | null;
}

export type RepositoryOrder = 'name' | 'state';

/** The alert rules' default warning level (80 %), as the dashboard's "near quota" marker. */
export const NEAR_QUOTA = 0.8;

/**
 * 0: failing or over quota (the last session failed, was refused or cut off; over its quota; the
 * audit found it suspicious): backups are not landing or something is wrong now.
 * 1: late: the last backup is older than its interval.
 * 2: near quota: it will fail soon.
 * 3: waiting: no backup yet (waiting for borg init, or initialised but never backed up).
 * 4: ok.
 */
export function stateRank(r: RepositoryStateInput): number {
  const used = r.quotaBytes && r.sizeBytes !== null ? r.sizeBytes / r.quotaBytes : null;
  const failing = (r.lastSessionResult !== null && r.lastSessionResult !== 'ok') || (used !== null && used >= 1) || r.lastAudit?.verdict === 'suspicious';
  if (failing) return 0;
  if (r.backup === 'late') return 1;
  if (used !== null && used >= NEAR_QUOTA) return 2;
  if (r.backup === 'never' || (!r.initialized && r.lastBackupAt === null)) return 3;
  return 4;
}

const byName = (a: RepositoryStateInput, b: RepositoryStateInput) => a.name.localeCompare(b.name, undefined, { sensitivity: 'base' });

/** A sorted copy; within one state, by name. */
export function sortRepositories<T extends RepositoryStateInput>(list: readonly T[], order: RepositoryOrder): T[] {
  const copy = [...list];
  return order === 'state' ? copy.sort((a, b) => stateRank(a) - stateRank(b) || byName(a, b)) : copy.sort(byName);
}
