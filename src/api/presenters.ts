// How records look in API responses (camelCase; dates become ISO-8601 strings when serialised).
// Never includes a server path, a repository's directory name, a hash or a secret.

import type { ApiToken } from '../store/auth-store.js';
import type { GrantView } from '../store/grant-store.js';
import type { RepositoryStatus } from '../store/repository-store.js';
import type { SshKey } from '../store/types.js';
import type { User } from '../store/user-store.js';
import type { Principal } from './auth/authenticator.js';

export const userJson = (u: User) => ({ id: u.id, name: u.name, role: u.role, hasPassword: u.hasPassword, totpEnabled: u.totpEnabled, createdAt: u.createdAt, mustChangePassword: u.mustChangePassword, source: u.source });

export const keyJson = (k: SshKey) => ({
  id: k.id,
  name: k.name,
  type: k.type,
  bits: k.bits,
  fingerprint: k.fingerprint,
  comment: k.comment,
  revoked: k.revokedAt !== null,
  revokedAt: k.revokedAt,
  createdAt: k.createdAt,
});

export const grantJson = (view: GrantView) => ({
  keyId: view.grant.keyId,
  keyName: view.keyName,
  keyFingerprint: view.keyFingerprint,
  keyRevoked: view.keyRevokedAt !== null,
  repositoryName: view.repositoryName,
  role: view.grant.role,
  writesPerDay: view.grant.writesPerDay,
  fromCidrs: view.grant.fromCidrs,
  expiresAt: view.grant.expiresAt,
  createdAt: view.grant.createdAt,
  minAgeSeconds: view.grant.minAgeSeconds,
  keepLast: view.grant.keepLast,
  prefix: view.grant.prefix,
  maxRemovalsPerDay: view.grant.maxRemovalsPerDay,
  verifyObjects: view.grant.verifyObjects,
});

export const tokenJson = (t: ApiToken) => ({
  id: t.id,
  name: t.name,
  prefix: t.prefix,
  user: t.userName,
  role: t.role,
  createdAt: t.createdAt,
  expiresAt: t.expiresAt,
  lastUsedAt: t.lastUsedAt,
  revokedAt: t.revokedAt,
});

/** Whether the repository's last backup is within its expected interval at `now`. */
export function backupState(s: RepositoryStatus, now: Date): 'never' | 'late' | 'ok' {
  if (s.lastBackupAt === null) return 'never';
  return now.getTime() - s.lastBackupAt.getTime() > s.repository.expectedIntervalSeconds * 1000 ? 'late' : 'ok';
}

export function repositoryJson(s: RepositoryStatus, extra: { now: Date; initialized: boolean; sizeBytes: number | null; keyHeld: boolean }) {
  const r = s.repository;
  const backup = backupState(s, extra.now);
  return {
    id: r.id,
    name: r.name,
    quotaBytes: r.quotaBytes,
    expectedIntervalSeconds: r.expectedIntervalSeconds,
    createdAt: r.createdAt,
    grantCount: s.grantCount,
    lastSessionAt: s.lastSessionAt,
    lastSessionResult: s.lastSessionResult as 'ok' | 'denied' | 'error' | 'aborted' | null,
    lastWriteAt: s.lastWriteAt,
    lastBackupAt: s.lastBackupAt,
    backup,
    denialsLast24h: s.denialsSince,
    lastAudit: s.lastAudit,
    gate: s.gate,
    initialized: extra.initialized,
    sizeBytes: extra.sizeBytes,
    keyHeld: extra.keyHeld,
  };
}

/** Who did it, as repository events record it. */
export function actorOf(principal: Principal): string {
  return principal.via === 'token' ? `${principal.user.name} (API token '${principal.tokenName}')` : principal.user.name;
}
