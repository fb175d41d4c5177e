// The alert rules: from what the server knows now (the facts) to the conditions that hold now.
// Pure: the facts and the clock come in from outside, so each rule is tested with fake time.
// A condition has a stable key; the engine (alert-engine.ts) opens an alert when a key appears,
// repeats it while the key stays, and resolves it when the key is gone.
//
// Two families, evaluated at different rates: `security` (guard denials, failed logins of known
// keys) every second, so a refused delete reaches people within seconds; `state` (late backups,
// quota, audit verdicts, disk space) every half minute.

export type AlertFamily = 'security' | 'state';
export type AlertRule = 'backup-late' | 'quota' | 'denial' | 'audit-suspicious' | 'auth-failures' | 'disk-space';
export type AlertSeverity = 'warning' | 'critical';

export const RULE_FAMILY: Readonly<Record<AlertRule, AlertFamily>> = {
  'backup-late': 'state',
  quota: 'state',
  'audit-suspicious': 'state',
  'disk-space': 'state',
  denial: 'security',
  'auth-failures': 'security',
};

export interface AlertCondition {
  /** Stable while the condition lasts: the same key is the same alert. */
  readonly key: string;
  readonly rule: AlertRule;
  readonly severity: AlertSeverity;
  readonly repositoryId: number | null;
  /** One line, for a mail subject or a chat message. */
  readonly summary: string;
  /** What an admin needs to act on it. */
  readonly detail: string;
}

export interface AlertSettings {
  /** While an alert lasts it is sent again this often. */
  readonly repeatSeconds: number;
  readonly quotaWarnPercent: number;
  readonly quotaCriticalPercent: number;
  /** A denial alert lasts until no denial came for this long. */
  readonly denialWindowSeconds: number;
  /** Failed logins of one known key within the window that raise an alert. */
  readonly authFailureThreshold: number;
  readonly authFailureWindowSeconds: number;
  /** The data directory's file system with less free space than this raises an alert. */
  readonly diskFreePercent: number;
}

export const DEFAULT_ALERT_SETTINGS: AlertSettings = {
  repeatSeconds: 4 * 3600,
  quotaWarnPercent: 80,
  quotaCriticalPercent: 95,
  denialWindowSeconds: 3600,
  authFailureThreshold: 5,
  authFailureWindowSeconds: 600,
  diskFreePercent: 10,
};

export interface RepositoryFacts {
  readonly id: number;
  readonly name: string;
  readonly createdAt: Date;
  readonly expectedIntervalSeconds: number;
  /** End of the newest session that committed a write. */
  readonly lastWriteAt: Date | null;
  readonly sizeBytes: number | null;
  readonly quotaBytes: number | null;
  /** The newest audit's verdict, and whether the compaction gate is still closed by it. */
  readonly auditSuspiciousUnreviewed: boolean;
  readonly lastAuditAt: Date | null;
}

/** Guard denials within the denial window, one entry per (key, repository). */
export interface DenialFacts {
  readonly keyId: number | null;
  readonly keyName: string | null;
  readonly repositoryId: number | null;
  readonly repositoryName: string | null;
  readonly count: number;
  readonly lastAt: Date;
  /** The newest denial's method and message, and the address it came from. */
  readonly method: string;
  readonly message: string;
  readonly address: string | null;
}

/** Failed logins of one known key within the window. */
export interface AuthFailureFacts {
  readonly keyId: number;
  readonly keyName: string;
  readonly count: number;
  readonly lastAt: Date;
  readonly addresses: readonly string[];
  readonly reason: string;
}

export interface DiskFacts {
  readonly freeBytes: number;
  readonly totalBytes: number;
}

export interface AlertFacts {
  readonly now: Date;
  readonly repositories?: readonly RepositoryFacts[];
  readonly denials?: readonly DenialFacts[];
  readonly authFailures?: readonly AuthFailureFacts[];
  readonly disk?: DiskFacts | null;
}

/** "1 d 3 h", "45 min": for people. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  return m > 0 ? `${m} min` : `${s} s`;
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(bytes >= 10 * 1024 ** 3 ? 0 : 1)} GiB`;

export function evaluateAlerts(facts: AlertFacts, settings: AlertSettings): AlertCondition[] {
  const now = facts.now.getTime();
  const out: AlertCondition[] = [];

  for (const r of facts.repositories ?? []) {
    const since = r.lastWriteAt ?? r.createdAt;
    const age = (now - since.getTime()) / 1000;
    if (age > r.expectedIntervalSeconds) {
      out.push({
        key: `backup-late:repository:${r.id}`,
        rule: 'backup-late',
        severity: 'warning',
        repositoryId: r.id,
        summary: r.lastWriteAt ? `no backup of '${r.name}' for ${formatDuration(age)}` : `'${r.name}' has had no backup since it was created ${formatDuration(age)} ago`,
        detail:
          `Repository '${r.name}' expects a backup every ${formatDuration(r.expectedIntervalSeconds)}; ` +
          (r.lastWriteAt ? `the last one ended at ${r.lastWriteAt.toISOString()}.` : `none has written to it since ${r.createdAt.toISOString()}.`),
      });
    }
    if (r.quotaBytes !== null && r.sizeBytes !== null && r.quotaBytes > 0) {
      const percent = (100 * r.sizeBytes) / r.quotaBytes;
      for (const [level, severity] of [
        [settings.quotaWarnPercent, 'warning'],
        [settings.quotaCriticalPercent, 'critical'],
      ] as const) {
        if (percent < level) continue;
        out.push({
          key: `quota-${level}:repository:${r.id}`,
          rule: 'quota',
          severity,
          repositoryId: r.id,
          summary: `'${r.name}' uses ${Math.floor(percent)} % of its quota`,
          detail: `Repository '${r.name}' holds ${gib(r.sizeBytes)} of its ${gib(r.quotaBytes)} quota (over ${level} %). Prune it or raise the quota before backups are refused.`,
        });
      }
    }
    if (r.auditSuspiciousUnreviewed) {
      out.push({
        key: `audit-suspicious:repository:${r.id}`,
        rule: 'audit-suspicious',
        severity: 'critical',
        repositoryId: r.id,
        summary: `the audit of '${r.name}' found suspicious transactions`,
        detail:
          `The audit of repository '${r.name}'${r.lastAuditAt ? ` at ${r.lastAuditAt.toISOString()}` : ''} found transactions that a client's role may not make. ` +
          `Compaction stays closed until an admin reviews them: borgkeep audit ${r.name}, then rollback or approve.`,
      });
    }
  }

  for (const d of facts.denials ?? []) {
    if ((now - d.lastAt.getTime()) / 1000 > settings.denialWindowSeconds) continue;
    const key = d.keyName ? `key '${d.keyName}'` : 'an unknown key';
    const where = d.repositoryName ? ` on '${d.repositoryName}'` : '';
    out.push({
      key: `denial:key:${d.keyId ?? d.keyName ?? 'unknown'}:repository:${d.repositoryId ?? 'none'}`,
      rule: 'denial',
      severity: 'critical',
      repositoryId: d.repositoryId,
      summary: `${key} was refused ${d.method}${where}${d.address ? ` from ${d.address}` : ''}${d.count > 1 ? ` (${d.count} refusals)` : ''}`,
      detail:
        `The guard refused ${d.method} to ${key}${where}${d.address ? ` connecting from ${d.address}` : ''}: ${d.message} ` +
        `${d.count} refusal(s) in the last ${formatDuration(settings.denialWindowSeconds)}, the last at ${d.lastAt.toISOString()}. ` +
        'A client trying what its role may not do can be a compromised machine.',
    });
  }

  for (const f of facts.authFailures ?? []) {
    if (f.count < settings.authFailureThreshold) continue;
    out.push({
      key: `auth-failures:key:${f.keyId}`,
      rule: 'auth-failures',
      severity: 'warning',
      repositoryId: null,
      summary: `key '${f.keyName}' failed to log in ${f.count} times`,
      detail:
        `Key '${f.keyName}' was refused ${f.count} times in ${formatDuration(settings.authFailureWindowSeconds)} (${f.reason}), ` +
        `the last at ${f.lastAt.toISOString()}, from ${f.addresses.join(', ') || 'unknown addresses'}.`,
    });
  }

  const disk = facts.disk;
  if (disk && disk.totalBytes > 0 && (100 * disk.freeBytes) / disk.totalBytes < settings.diskFreePercent) {
    out.push({
      key: 'disk-space:data',
      rule: 'disk-space',
      severity: 'critical',
      repositoryId: null,
      summary: `the data directory's disk is nearly full: ${gib(disk.freeBytes)} free`,
      detail: `Only ${gib(disk.freeBytes)} of ${gib(disk.totalBytes)} are free on the file system of the data directory (under ${settings.diskFreePercent} %). Backups fail when it is full.`,
    });
  }
  return out;
}
