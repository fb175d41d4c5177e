// The alert rules: from what the server knows now (the facts) to the conditions that hold now.
// Pure: the facts and the clock come in from outside, so each rule is tested with fake time.
// A condition has a stable key; the engine (alert-engine.ts) opens an alert when a key appears,
// repeats it while the key stays, and resolves it when the key is gone.
//
// Two families, evaluated at different rates: `security` (guard denials, failed logins of known
// keys) every second, so a refused delete reaches people within seconds; `state` (late backups,
// quota, audit verdicts, disk space, repository events) every half minute.
//
// Refusals come in two kinds. What policy expects (the compaction gate closed, the day's backups
// used up, an expired grant, the server busy or stopping) is a `refusal` warning, one per cause,
// lasting a day after the last one and sent again at most daily: a nightly borgmatic run that
// meets the gate every night is one alert, not a page a night. Everything else, and any reason
// code this file does not know (new ones are hostile until said otherwise), is what only a
// tampered or misused client sends (overwrites, deletes of older objects, save_key, break_lock,
// nonce tricks, hostile frames, calls its role may not make, a key used from outside its address
// ranges): a critical `denial`. One alert per cause at one severity: the quota alert is one
// alert whose severity rises from warning to critical, not a second alert beside the first.

import { formatBytes } from '../shared/size.js';

export type AlertFamily = 'security' | 'state';
export type AlertRule =
  | 'backup-late'
  | 'waiting-init'
  | 'quota'
  | 'denial'
  | 'refusal'
  | 'audit-suspicious'
  | 'auth-failures'
  | 'disk-space'
  | 'key-change'
  | 'compaction-deferred'
  | 'pull-failed'
  | 'verify-damage'
  | 'archive-check';
export type AlertSeverity = 'warning' | 'critical';

export const RULE_FAMILY: Readonly<Record<AlertRule, AlertFamily>> = {
  'backup-late': 'state',
  'waiting-init': 'state',
  quota: 'state',
  'audit-suspicious': 'state',
  'disk-space': 'state',
  'key-change': 'state',
  'compaction-deferred': 'state',
  'pull-failed': 'state',
  'verify-damage': 'state',
  'archive-check': 'state',
  denial: 'security',
  refusal: 'security',
  'auth-failures': 'security',
};

const DAY_SECONDS = 86_400;
/** A policy refusal's alert lasts this long after the last such refusal, and repeats at most this often. */
export const POLICY_REFUSAL_SECONDS = DAY_SECONDS;
/** A replaced repository key is a critical alert for this long after the replacement. */
export const KEY_CHANGE_ALERT_SECONDS = DAY_SECONDS;

/**
 * Refusals that policy expects, with what the alert says of each. A used-up limit or a closed gate
 * is the policy working; the stock client meets them in everyday use.
 */
const POLICY_REFUSALS: Readonly<Record<string, string>> = {
  BK_DENY_GATE: 'the compaction gate is closed',
  BK_DENY_WRITE_LIMIT: "the grant's backups per day are used up",
  BK_DENY_EXPIRED: 'the grant has expired',
  BK_DENY_SESSION_LIMIT: 'the server had too many sessions',
  BK_DENY_SHUTDOWN: 'the server was shutting down',
  BK_DENY_NODE_DOWN: 'the storage node holding the repository could not be reached',
  // The grant asks for --verify-objects and borgkeep cannot verify (no key held, the vault
  // sealed): the server's set-up, not the client, is what needs an admin.
  BK_DENY_OBJECT_UNVERIFIED: "borgkeep could not verify the objects the grant asks it to (no key held, or the vault sealed)",
};

/** Whether a refusal's reason code is one policy expects; unknown codes are hostile. */
export function refusalKind(reason: string): 'policy' | 'hostile' {
  return Object.hasOwn(POLICY_REFUSALS, reason) ? 'policy' : 'hostile';
}

export interface AlertCondition {
  /** Stable while the condition lasts: the same key is the same alert. */
  readonly key: string;
  readonly rule: AlertRule;
  readonly severity: AlertSeverity;
  readonly repositoryId: number | null;
  /** The SSH key it is about (refusals, failed logins): silences per key match it. */
  readonly keyId?: number | null;
  /** One line, for a mail subject or a chat message. */
  readonly summary: string;
  /** What an admin needs to act on it. */
  readonly detail: string;
  /** How often it is sent again while it lasts, when not the settings' repeatSeconds. */
  readonly repeatSeconds?: number;
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
  /** Whether borg init has made it (its config exists); left out: it has. */
  readonly initialized?: boolean;
  /** End of the newest session that committed a backup (new objects besides the manifest; a prune is none). */
  readonly lastBackupAt: Date | null;
  readonly sizeBytes: number | null;
  readonly quotaBytes: number | null;
  /** The newest audit's verdict, and whether the compaction gate is still closed by it. */
  readonly auditSuspiciousUnreviewed: boolean;
  readonly lastAuditAt: Date | null;
  /** The newest replacement of the repository's key (a 'key-change' event). */
  readonly keyChange?: { readonly id: number; readonly actor: string; readonly at: Date } | null;
  /** The newest deferred compaction that no compaction followed (its event's detail says what waits). */
  readonly compactionDeferred?: { readonly at: Date; readonly detail: string } | null;
  /**
   * The newest verification that found damage (`borgkeep verify`, the verify job), while no later
   * full verification found the repository intact: its findings and the archives that depend on them.
   */
  readonly verifyDamage?: { readonly at: Date; readonly findings: number; readonly archives: readonly string[]; readonly detail: string } | null;
  /**
   * Archives still in the repository whose archive checks failed (src/checks/): each failed rule
   * as its rule name and one sentence.
   */
  readonly archiveCheckFailures?: readonly ArchiveCheckFailureFacts[];
}

export interface ArchiveCheckFailureFacts {
  readonly archiveId: string;
  readonly archiveName: string;
  readonly checkedAt: Date;
  readonly findings: ReadonlyArray<{ readonly rule: string; readonly sentence: string }>;
}

/**
 * Failed archive checks that look like damage or a client rewriting its files (an unreadable
 * archive, a jump of changed files or of new data: ransomware's signs) are critical; a missing
 * path or a changed file count or size, which a changed backup set also explains, a warning.
 */
const CRITICAL_CHECKS: ReadonlySet<string> = new Set(['readable', 'changed-files', 'new-data']);

/** The words of each archive check rule in an alert's summary. */
const CHECK_WORDS: Readonly<Record<string, string>> = {
  readable: 'unreadable',
  'required-path': 'missing paths',
  'count-change': 'file count',
  'size-change': 'size',
  'changed-files': 'changed files',
  'new-data': 'new data',
};

/** Guard denials within the last day, one entry per (key, repository, reason). */
export interface DenialFacts {
  /** The reason code (BK_DENY_...); the rules tell policy refusals from hostile ones by it. */
  readonly reason: string;
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

/**
 * A pull host whose newest finished job failed (src/pull/): what went wrong, and whether it is
 * what only a changed or hostile client host causes (its SSH host key no longer the pinned one; an
 * object or archive the keyless proxy refused), or the everyday kind (unreachable, timed out).
 */
export interface PullFacts {
  readonly hostId: number;
  readonly hostName: string;
  readonly repositoryId: number;
  readonly jobId: number;
  readonly endedAt: Date;
  readonly reason: string;
  readonly hostile: boolean;
}

export interface AlertFacts {
  readonly now: Date;
  readonly pulls?: readonly PullFacts[];
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

/** Sizes as the console writes them (web/src/format.tsx bytes(): decimal units, 1.5 GB, 85 GB). */
export const sizeText = formatBytes;
const refusals = (n: number) => `${n} ${n === 1 ? 'refusal' : 'refusals'}`;

export function evaluateAlerts(facts: AlertFacts, settings: AlertSettings): AlertCondition[] {
  const now = facts.now.getTime();
  const out: AlertCondition[] = [];

  for (const r of facts.repositories ?? []) {
    const since = r.lastBackupAt ?? r.createdAt;
    const age = (now - since.getTime()) / 1000;
    if (r.lastBackupAt === null && r.initialized === false) {
      // Not late (nothing was ever backed up) but not silent either: no client has run borg init.
      if (age > r.expectedIntervalSeconds) {
        out.push({
          key: `waiting-init:repository:${r.id}`,
          rule: 'waiting-init',
          severity: 'warning',
          repositoryId: r.id,
          summary: `'${r.name}' waits for borg init, ${formatDuration(age)} after it was created`,
          detail:
            `Repository '${r.name}' was created at ${r.createdAt.toISOString()} and no client has initialised it yet: ` +
            'run borg init on the machine that backs up into it (its page in the console shows the command), or remove it if nobody will.',
        });
      }
    } else if (age > r.expectedIntervalSeconds) {
      out.push({
        key: `backup-late:repository:${r.id}`,
        rule: 'backup-late',
        severity: 'warning',
        repositoryId: r.id,
        summary: r.lastBackupAt ? `no backup of '${r.name}' for ${formatDuration(age)}` : `'${r.name}' has had no backup since it was created ${formatDuration(age)} ago`,
        detail:
          `Repository '${r.name}' expects a backup every ${formatDuration(r.expectedIntervalSeconds)}; ` +
          (r.lastBackupAt ? `the last one ended at ${r.lastBackupAt.toISOString()}.` : `none has been made since it was created at ${r.createdAt.toISOString()}.`),
      });
    }
    if (r.quotaBytes !== null && r.sizeBytes !== null && r.quotaBytes > 0) {
      const percent = (100 * r.sizeBytes) / r.quotaBytes;
      // One alert for the quota: over the critical level it is that alert, made critical.
      const level = percent >= settings.quotaCriticalPercent ? settings.quotaCriticalPercent : percent >= settings.quotaWarnPercent ? settings.quotaWarnPercent : null;
      if (level !== null) {
        out.push({
          key: `quota:repository:${r.id}`,
          rule: 'quota',
          severity: level === settings.quotaCriticalPercent ? 'critical' : 'warning',
          repositoryId: r.id,
          summary: `'${r.name}' uses ${Math.floor(percent)} % of its quota`,
          detail: `Repository '${r.name}' holds ${sizeText(r.sizeBytes)} of its ${sizeText(r.quotaBytes)} quota (over ${level} %). Prune it or raise the quota before backups are refused.`,
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
    const k = r.keyChange;
    if (k && now - k.at.getTime() < KEY_CHANGE_ALERT_SECONDS * 1000) {
      out.push({
        // Per event: a second replacement is a new alert.
        key: `key-change:repository:${r.id}:event:${k.id}`,
        rule: 'key-change',
        severity: 'critical',
        repositoryId: r.id,
        summary: `the key of '${r.name}' was replaced`,
        detail:
          `The repository key of '${r.name}' was replaced by ${k.actor} at ${k.at.toISOString()}. ` +
          `If nobody meant to, restore the earlier key (borgkeep repo key-history ${r.name}) and find out which machine did it. ` +
          `This alert ends ${formatDuration(KEY_CHANGE_ALERT_SECONDS)} after the replacement.`,
      });
    }
    const d = r.compactionDeferred;
    if (d) {
      out.push({
        key: `compaction-deferred:repository:${r.id}`,
        rule: 'compaction-deferred',
        severity: 'warning',
        repositoryId: r.id,
        summary: `compaction of '${r.name}' was deferred`,
        detail: d.detail,
        repeatSeconds: Math.max(settings.repeatSeconds, POLICY_REFUSAL_SECONDS),
      });
    }
    const v = r.verifyDamage;
    if (v) {
      const archives = v.archives.length > 0 ? `archives that depend on them: ${v.archives.join(', ')}` : 'no archive was found to depend on them';
      out.push({
        key: `verify-damage:repository:${r.id}`,
        rule: 'verify-damage',
        severity: 'critical',
        repositoryId: r.id,
        summary: `verification found damage in '${r.name}'${v.archives.length > 0 ? `, affecting ${v.archives.length === 1 ? 'archive' : 'archives'} ${v.archives.join(', ')}` : ''}`,
        detail:
          `The verification of repository '${r.name}' at ${v.at.toISOString()} found ${v.findings} damaged or missing ${v.findings === 1 ? 'object' : 'objects'} (${archives}): ${v.detail}. ` +
          `Restores of those archives may fail. Run borg check on the repository, and back up again what the damaged archives held; ` +
          `a later full verification (borgkeep verify ${r.name} --all) that finds it intact ends this alert.`,
      });
    }
    // One alert per failed archive while it is in the repository: pruning it, or removing it after
    // a look, ends the alert; acknowledging it stops the repeats.
    for (const f of r.archiveCheckFailures ?? []) {
      const rules = [...new Set(f.findings.map((x) => CHECK_WORDS[x.rule] ?? x.rule))];
      out.push({
        key: `archive-check:repository:${r.id}:archive:${f.archiveId}`,
        rule: 'archive-check',
        severity: f.findings.some((x) => CRITICAL_CHECKS.has(x.rule)) ? 'critical' : 'warning',
        repositoryId: r.id,
        summary: `archive '${f.archiveName}' of '${r.name}' failed its checks: ${rules.join(', ')}`,
        detail:
          `The archive checks of repository '${r.name}' at ${f.checkedAt.toISOString()} found: ${f.findings.map((x) => x.sentence).join(' ')} ` +
          `Look at the archive before relying on it (borgkeep diff ${r.name} with the archive before it); this alert ends when the archive leaves the repository.`,
      });
    }
  }

  // Pull hosts: one alert per host while its newest job is a failed one; the next job that
  // succeeds resolves it. A changed host key or a refused object stays critical: it is what a
  // taken-over client host looks like.
  for (const p of facts.pulls ?? []) {
    out.push({
      key: `pull-failed:host:${p.hostId}`,
      rule: 'pull-failed',
      severity: p.hostile ? 'critical' : 'warning',
      repositoryId: p.repositoryId,
      summary: p.hostile ? `the pull backup of '${p.hostName}' was refused: ${p.reason}` : `the pull backup of '${p.hostName}' failed: ${p.reason}`,
      detail:
        `Pull job ${p.jobId} of host '${p.hostName}' ended at ${p.endedAt.toISOString()} without an archive: ${p.reason}. ` +
        (p.hostile
          ? 'Nothing it sent was kept. Find out what changed on that machine before it is trusted again (borgkeep pull list --host ' + p.hostName + ').'
          : 'The next job that succeeds ends this alert; its log says more (borgkeep pull list --host ' + p.hostName + ').'),
    });
  }

  // Hostile refusals: one critical alert per (key, repository), whatever the reasons.
  const hostile = new Map<string, DenialFacts>();
  for (const d of facts.denials ?? []) {
    const age = (now - d.lastAt.getTime()) / 1000;
    const who = d.keyName ? `key '${d.keyName}'` : 'an unknown key';
    const where = d.repositoryName ? ` on '${d.repositoryName}'` : '';
    const from = d.address ? ` from ${d.address}` : '';
    if (refusalKind(d.reason) === 'policy') {
      if (age > POLICY_REFUSAL_SECONDS) continue;
      out.push({
        key: `refusal:${d.reason}:key:${d.keyId ?? d.keyName ?? 'unknown'}:repository:${d.repositoryId ?? 'none'}`,
        rule: 'refusal',
        severity: 'warning',
        repositoryId: d.repositoryId,
        keyId: d.keyId,
        summary: `${who} was refused ${d.method}${where}: ${POLICY_REFUSALS[d.reason]}${d.count > 1 ? ` (${d.count} refusals)` : ''}`,
        detail:
          `The guard refused ${d.method} to ${who}${where}${d.address ? ` connecting from ${d.address}` : ''}: ${d.message} ` +
          `${refusals(d.count)} like it in the last ${formatDuration(POLICY_REFUSAL_SECONDS)}, the last at ${d.lastAt.toISOString()}. ` +
          'This is the policy doing what it was set to do, not a sign of a compromised machine; change the grant or the repository if it should not happen.',
        repeatSeconds: Math.max(settings.repeatSeconds, POLICY_REFUSAL_SECONDS),
      });
      continue;
    }
    if (age > settings.denialWindowSeconds) continue;
    const key = `${d.keyId ?? d.keyName ?? 'unknown'}:repository:${d.repositoryId ?? 'none'}`;
    const seen = hostile.get(key);
    // The newest refusal's method, message and address speak for the group.
    if (!seen) hostile.set(key, d);
    else hostile.set(key, { ...(d.lastAt >= seen.lastAt ? d : seen), count: seen.count + d.count });
  }
  for (const [key, d] of hostile) {
    const who = d.keyName ? `key '${d.keyName}'` : 'an unknown key';
    const where = d.repositoryName ? ` on '${d.repositoryName}'` : '';
    out.push({
      key: `denial:key:${key}`,
      rule: 'denial',
      severity: 'critical',
      repositoryId: d.repositoryId,
      keyId: d.keyId,
      summary: `${who} was refused ${d.method}${where}${d.address ? ` from ${d.address}` : ''}${d.count > 1 ? ` (${d.count} refusals)` : ''}`,
      detail:
        `The guard refused ${d.method} to ${who}${where}${d.address ? ` connecting from ${d.address}` : ''}: ${d.message} ` +
        `${refusals(d.count)} in the last ${formatDuration(settings.denialWindowSeconds)}, the last at ${d.lastAt.toISOString()}. ` +
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
      keyId: f.keyId,
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
      summary: `the data directory's disk is nearly full: ${sizeText(disk.freeBytes)} free`,
      detail: `Only ${sizeText(disk.freeBytes)} of ${sizeText(disk.totalBytes)} are free on the file system of the data directory (under ${settings.diskFreePercent} %). Backups fail when it is full.`,
    });
  }
  return out;
}
