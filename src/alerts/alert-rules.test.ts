import { expect, test } from 'vitest';

import { DEFAULT_ALERT_SETTINGS as S, evaluateAlerts, formatDuration, type RepositoryFacts } from './alert-rules.js';

const t0 = new Date('2026-11-23T00:00:00Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const repo = (over: Partial<RepositoryFacts> = {}): RepositoryFacts => ({
  id: 1,
  name: 'laptop',
  createdAt: at(-86_400 * 10),
  expectedIntervalSeconds: 26 * 3600,
  lastWriteAt: t0,
  sizeBytes: null,
  quotaBytes: null,
  auditSuspiciousUnreviewed: false,
  lastAuditAt: null,
  ...over,
});
const keys = (now: Date, repositories: RepositoryFacts[]) => evaluateAlerts({ now, repositories }, S).map((c) => c.key);

test('a backup is late exactly when its interval has passed since the last write, and not a second before', () => {
  const interval = 26 * 3600;
  expect(keys(at(interval), [repo()])).toEqual([]);
  expect(keys(at(interval + 1), [repo()])).toEqual(['backup-late:repository:1']);
  const [c] = evaluateAlerts({ now: at(interval + 3600), repositories: [repo()] }, S);
  expect(c.summary).toBe("no backup of 'laptop' for 1 d 3 h");
  expect(c.detail).toContain('expects a backup every 1 d 2 h; the last one ended at 2026-11-23T00:00:00.000Z');
  // A repository nobody ever backed up counts from its creation.
  const fresh = repo({ lastWriteAt: null, createdAt: t0, expectedIntervalSeconds: 3600 });
  expect(keys(at(3600), [fresh])).toEqual([]);
  expect(evaluateAlerts({ now: at(7200), repositories: [fresh] }, S)[0].summary).toBe("'laptop' has had no backup since it was created 2 h ago");
});

test('quota: a warning over 80 %, and a critical alert too over 95 %', () => {
  const gib = 1024 ** 3;
  const q = (size: number) => keys(t0, [repo({ quotaBytes: 100 * gib, sizeBytes: size * gib })]);
  expect(q(79.9)).toEqual([]);
  expect(q(80)).toEqual(['quota-80:repository:1']);
  expect(q(96)).toEqual(['quota-80:repository:1', 'quota-95:repository:1']);
  const [, critical] = evaluateAlerts({ now: t0, repositories: [repo({ quotaBytes: 100 * gib, sizeBytes: 96 * gib })] }, S);
  expect(critical).toMatchObject({ severity: 'critical', summary: "'laptop' uses 96 % of its quota" });
  expect(keys(t0, [repo({ quotaBytes: null, sizeBytes: 10 * gib })])).toEqual([]);
});

test('a suspicious audit lasts until it is reviewed', () => {
  expect(keys(t0, [repo({ auditSuspiciousUnreviewed: true, lastAuditAt: t0 })])).toEqual(['audit-suspicious:repository:1']);
});

test('a denial names key, method, repository and address, and lasts for the denial window after the last one', () => {
  const denial = { keyId: 3, keyName: 'laptop', repositoryId: 1, repositoryName: 'main', count: 2, lastAt: t0, method: 'delete', message: 'the append role may not delete', address: '10.0.0.5' };
  const [c] = evaluateAlerts({ now: at(10), denials: [denial] }, S);
  expect(c).toMatchObject({ key: 'denial:key:3:repository:1', rule: 'denial', severity: 'critical' });
  expect(c.summary).toBe("key 'laptop' was refused delete on 'main' from 10.0.0.5 (2 refusals)");
  expect(c.detail).toContain('the append role may not delete');
  expect(evaluateAlerts({ now: at(S.denialWindowSeconds), denials: [denial] }, S)).toHaveLength(1);
  expect(evaluateAlerts({ now: at(S.denialWindowSeconds + 1), denials: [denial] }, S)).toHaveLength(0);
});

test('failed logins of a known key raise an alert from the threshold on', () => {
  const f = { keyId: 4, keyName: 'old-laptop', count: S.authFailureThreshold - 1, lastAt: t0, addresses: ['192.0.2.7'], reason: 'the key is revoked' };
  expect(evaluateAlerts({ now: t0, authFailures: [f] }, S)).toEqual([]);
  const [c] = evaluateAlerts({ now: t0, authFailures: [{ ...f, count: S.authFailureThreshold }] }, S);
  expect(c.summary).toBe("key 'old-laptop' failed to log in 5 times");
  expect(c.detail).toContain('(the key is revoked)');
  expect(c.detail).toContain('192.0.2.7');
});

test('the data disk under 10 % free', () => {
  expect(evaluateAlerts({ now: t0, disk: { freeBytes: 11, totalBytes: 100 } }, S)).toEqual([]);
  expect(evaluateAlerts({ now: t0, disk: { freeBytes: 9, totalBytes: 100 } }, S).map((c) => c.key)).toEqual(['disk-space:data']);
});

test('durations read as people write them', () => {
  expect([formatDuration(42), formatDuration(600), formatDuration(3600), formatDuration(5400), formatDuration(86_400), formatDuration(97_200)]).toEqual([
    '42 s',
    '10 min',
    '1 h',
    '1 h 30 min',
    '1 d',
    '1 d 3 h',
  ]);
});
