// The facts the alert rules need, gathered from the store and the disk, and one evaluation of a
// family of rules through the engine. The scheduler (src/jobs) calls evaluate('security') every
// second and evaluate('state') every half minute; tests call it with a fixed clock.

import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';

import type { Store } from '../store/database.js';
import { DEFAULT_ALERT_SETTINGS, POLICY_REFUSAL_SECONDS, evaluateAlerts, type AlertFamily, type AlertSettings, type ArchiveCheckFailureFacts, type DiskFacts, type RepositoryFacts } from './alert-rules.js';
import type { VerificationRecord } from '../store/verification-store.js';
import type { AlertEngine, Reconciled } from './alert-engine.js';
import type { SizeOf } from '../api/features/repository-size.js';

export const ALERT_SETTINGS = 'alerts';

type MonitorStore = Pick<Store, 'paths' | 'getSetting' | 'denialsSince' | 'authFailuresSince' | 'listRepositoryStatuses' | 'failedPullHosts' | 'unresolvedVerificationDamage' | 'failedArchiveChecks'>;

export interface MonitorDeps {
  store: MonitorStore;
  engine: AlertEngine;
  now: () => Date;
  /** Bytes a repository's directory holds (cached by the caller), or null when it has none. */
  sizeOf: SizeOf;
  /** Free and total bytes of the file system holding `path`. */
  disk?: (path: string) => Promise<DiskFacts | null>;
}

async function diskOf(path: string): Promise<DiskFacts | null> {
  try {
    const s = await statfs(path);
    return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    return null;
  }
}

/** The stored thresholds (the console's, or the config file's, written at start) over the defaults. */
export async function alertSettings(store: Pick<Store, 'getSetting'>): Promise<AlertSettings> {
  return { ...DEFAULT_ALERT_SETTINGS, ...((await store.getSetting<Partial<AlertSettings>>(ALERT_SETTINGS)) ?? {}) };
}

/** A damaged verification's findings as the alert rule needs them (verify-service.ts stored them). */
function verifyDamageFacts(v: VerificationRecord | undefined): RepositoryFacts['verifyDamage'] {
  if (!v) return null;
  const archives = new Set<string>();
  for (const f of v.findings as Array<{ archives?: unknown }>) if (Array.isArray(f.archives)) for (const a of f.archives) if (typeof a === 'string') archives.add(a);
  return { at: v.at, findings: v.findings.length, archives: [...archives].sort(), detail: v.detail };
}

export function createMonitor(deps: MonitorDeps) {
  const disk = deps.disk ?? diskOf;
  return {
    async evaluate(family: AlertFamily): Promise<Reconciled> {
      const settings = await alertSettings(deps.store);
      const now = deps.now();
      const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000);
      if (family === 'security') {
        const [denials, authFailures] = await Promise.all([
          // Policy refusals are kept in view for a day (alert-rules.ts), hostile ones for the window.
          deps.store.denialsSince(ago(Math.max(settings.denialWindowSeconds, POLICY_REFUSAL_SECONDS))),
          deps.store.authFailuresSince(ago(settings.authFailureWindowSeconds)),
        ]);
        return deps.engine.reconcile(family, evaluateAlerts({ now, denials, authFailures }, settings), settings.repeatSeconds);
      }
      const statuses = await deps.store.listRepositoryStatuses({ denialsSince: now });
      const damage = new Map((await deps.store.unresolvedVerificationDamage()).map((v) => [v.repositoryId, v]));
      const failedChecks = new Map<number, ArchiveCheckFailureFacts[]>();
      for (const c of await deps.store.failedArchiveChecks()) {
        failedChecks.set(c.repositoryId, [...(failedChecks.get(c.repositoryId) ?? []), { archiveId: c.archiveId, archiveName: c.archiveName, checkedAt: c.checkedAt, findings: c.findings }]);
      }
      const repositories = await Promise.all(
        statuses.map(async (s) => ({
          id: s.repository.id,
          name: s.repository.name,
          createdAt: s.repository.createdAt,
          expectedIntervalSeconds: s.repository.expectedIntervalSeconds,
          lastBackupAt: s.lastBackupAt,
          // Looked at only while nothing was backed up: borg init writes the repository's config.
          initialized: s.lastBackupAt !== null || existsSync(join(deps.store.paths.repository(s.repository.dirName), 'config')),
          quotaBytes: s.repository.quotaBytes,
          sizeBytes: s.repository.quotaBytes === null ? null : await deps.sizeOf(deps.store.paths.repository(s.repository.dirName), s.lastWriteAt),
          // A suspicious audit is reviewed by an approval after it (the gate may be open without one:
          // what the audit found may have destroyed nothing compaction would make permanent).
          auditSuspiciousUnreviewed: s.lastAudit?.verdict === 'suspicious' && s.lastAudit.approvedSince !== true,
          lastAuditAt: s.lastAudit?.at ?? null,
          keyChange: s.keyChange,
          compactionDeferred: s.compactionDeferred,
          verifyDamage: verifyDamageFacts(damage.get(s.repository.id)),
          archiveCheckFailures: failedChecks.get(s.repository.id) ?? [],
        })),
      );
      const pulls = (await deps.store.failedPullHosts()).map(({ job, repositoryId }) => ({
        hostId: job.hostId,
        hostName: job.hostName,
        repositoryId,
        jobId: job.id,
        endedAt: job.endedAt ?? job.queuedAt,
        reason: job.reason ?? 'the job failed without saying why',
        hostile: job.hostile,
      }));
      const conditions = evaluateAlerts({ now, repositories, pulls, disk: await disk(deps.store.paths.root) }, settings);
      return deps.engine.reconcile(family, conditions, settings.repeatSeconds);
    },
  };
}

export type Monitor = ReturnType<typeof createMonitor>;
