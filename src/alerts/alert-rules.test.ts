import { expect, test } from 'vitest';

import { DEFAULT_ALERT_SETTINGS as S, evaluateAlerts, formatDuration, refusalKind, type DenialFacts, type RepositoryFacts } from './alert-rules.js';

const t0 = new Date('2026-11-23T00:00:00Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const repo = (over: Partial<RepositoryFacts> = {}): RepositoryFacts => ({
  id: 1,
  name: 'laptop',
  createdAt: at(-86_400 * 10),
  expectedIntervalSeconds: 26 * 3600,
  lastBackupAt: t0,
  sizeBytes: null,
  quotaBytes: null,
  auditSuspiciousUnreviewed: false,
  lastAuditAt: null,
  ...over,
});
const keys = (now: Date, repositories: RepositoryFacts[]) => evaluateAlerts({ now, repositories }, S).map((c) => c.key);

test('a backup is late exactly when its interval has passed since the last backup, and not a second before', () => {
  const interval = 26 * 3600;
  expect(keys(at(interval), [repo()])).toEqual([]);
  expect(keys(at(interval + 1), [repo()])).toEqual(['backup-late:repository:1']);
  const [c] = evaluateAlerts({ now: at(interval + 3600), repositories: [repo()] }, S);
  expect(c.summary).toBe("no backup of 'laptop' for 1 d 3 h");
  expect(c.detail).toContain('expects a backup every 1 d 2 h; the last one ended at 2026-11-23T00:00:00.000Z');
  // A repository nobody ever backed up counts from its creation.
  const fresh = repo({ lastBackupAt: null, createdAt: t0, expectedIntervalSeconds: 3600 });
  expect(keys(at(3600), [fresh])).toEqual([]);
  expect(evaluateAlerts({ now: at(7200), repositories: [fresh] }, S)[0].summary).toBe("'laptop' has had no backup since it was created 2 h ago");
});

test('quota: one alert, a warning over 80 % that becomes critical over 95 % instead of a second alert beside it', () => {
  const gib = 1024 ** 3;
  const q = (size: number) => evaluateAlerts({ now: t0, repositories: [repo({ quotaBytes: 100 * gib, sizeBytes: size * gib })] }, S).map((c) => `${c.key} ${c.severity}`);
  expect(q(79.9)).toEqual([]);
  expect(q(80)).toEqual(['quota:repository:1 warning']);
  expect(q(94.9)).toEqual(['quota:repository:1 warning']);
  expect(q(96)).toEqual(['quota:repository:1 critical']);
  const [critical] = evaluateAlerts({ now: t0, repositories: [repo({ quotaBytes: 100 * gib, sizeBytes: 96 * gib })] }, S);
  expect(critical).toMatchObject({ severity: 'critical', summary: "'laptop' uses 96 % of its quota" });
  expect(critical!.detail).toContain('(over 95 %)');
  expect(keys(t0, [repo({ quotaBytes: null, sizeBytes: 10 * gib })])).toEqual([]);
});

test('a suspicious audit lasts until it is reviewed', () => {
  expect(keys(t0, [repo({ auditSuspiciousUnreviewed: true, lastAuditAt: t0 })])).toEqual(['audit-suspicious:repository:1']);
});

test('a hostile denial names key, method, repository and address, and lasts for the denial window after the last one', () => {
  const denial = { reason: 'BK_DENY_ROLE', keyId: 3, keyName: 'laptop', repositoryId: 1, repositoryName: 'main', count: 2, lastAt: t0, method: 'delete', message: 'the append role may not delete', address: '10.0.0.5' };
  const [c] = evaluateAlerts({ now: at(10), denials: [denial] }, S);
  expect(c).toMatchObject({ key: 'denial:key:3:repository:1', rule: 'denial', severity: 'critical' });
  expect(c.summary).toBe("key 'laptop' was refused delete on 'main' from 10.0.0.5 (2 refusals)");
  expect(c.detail).toContain('the append role may not delete');
  expect(evaluateAlerts({ now: at(S.denialWindowSeconds), denials: [denial] }, S)).toHaveLength(1);
  expect(evaluateAlerts({ now: at(S.denialWindowSeconds + 1), denials: [denial] }, S)).toHaveLength(0);
});

const refused = (reason: string, over: Partial<DenialFacts> = {}): DenialFacts => ({
  reason,
  keyId: 3,
  keyName: 'laptop',
  repositoryId: 1,
  repositoryName: 'main',
  count: 1,
  lastAt: t0,
  method: 'put',
  message: `borgkeep refused put: ${reason}`,
  address: '10.0.0.5',
  ...over,
});

test('refusals that policy expects are warnings, one per cause, lasting a day and repeating at most daily', () => {
  for (const reason of ['BK_DENY_GATE', 'BK_DENY_WRITE_LIMIT', 'BK_DENY_EXPIRED', 'BK_DENY_SESSION_LIMIT', 'BK_DENY_SHUTDOWN']) {
    expect(refusalKind(reason)).toBe('policy');
    const [c, ...more] = evaluateAlerts({ now: at(10), denials: [refused(reason)] }, S);
    expect(more).toEqual([]);
    expect(c).toMatchObject({ key: `refusal:${reason}:key:3:repository:1`, rule: 'refusal', severity: 'warning', repeatSeconds: 86_400 });
    expect(c!.detail).toContain('not a sign of a compromised machine');
  }
  const [limit] = evaluateAlerts({ now: at(10), denials: [refused('BK_DENY_WRITE_LIMIT', { count: 2 })] }, S);
  expect(limit!.summary).toBe("key 'laptop' was refused put on 'main': the grant's backups per day are used up (2 refusals)");
  // Past the hostile window, a policy refusal still holds: a nightly run meets it once a day.
  expect(evaluateAlerts({ now: at(S.denialWindowSeconds + 1), denials: [refused('BK_DENY_GATE')] }, S)).toHaveLength(1);
  expect(evaluateAlerts({ now: at(86_400), denials: [refused('BK_DENY_GATE')] }, S)).toHaveLength(1);
  expect(evaluateAlerts({ now: at(86_401), denials: [refused('BK_DENY_GATE')] }, S)).toHaveLength(0);
  // A longer repeat setting is kept.
  expect(evaluateAlerts({ now: t0, denials: [refused('BK_DENY_GATE')] }, { ...S, repeatSeconds: 3 * 86_400 })[0]!.repeatSeconds).toBe(3 * 86_400);
  // Two causes on one grant: two warnings.
  expect(evaluateAlerts({ now: t0, denials: [refused('BK_DENY_GATE'), refused('BK_DENY_WRITE_LIMIT')] }, S).map((c) => c.key).sort()).toEqual([
    'refusal:BK_DENY_GATE:key:3:repository:1',
    'refusal:BK_DENY_WRITE_LIMIT:key:3:repository:1',
  ]);
});

test("refusals only a tampered client sends stay critical, one alert per key and repository whatever the reasons; unknown codes count as hostile", () => {
  const hostile = [
    'BK_DENY_OVERWRITE',
    'BK_DENY_DELETE_OLD',
    'BK_DENY_SAVE_KEY',
    'BK_DENY_BREAK_LOCK',
    'BK_DENY_NONCE',
    'BK_DENY_NONCE_JUMP',
    'BK_DENY_NONCE_ANYTHING_NEW',
    'BK_DENY_BAD_ARGS',
    'BK_DENY_PROTOCOL',
    'BK_DENY_INJECT',
    'BK_DENY_UNKNOWN_METHOD',
    'BK_DENY_ROLE',
    'BK_DENY_ADDRESS',
    'BK_DENY_SOMETHING_NEW',
  ];
  for (const reason of hostile) {
    expect(refusalKind(reason), reason).toBe('hostile');
    expect(evaluateAlerts({ now: at(10), denials: [refused(reason)] }, S)).toMatchObject([{ key: 'denial:key:3:repository:1', rule: 'denial', severity: 'critical' }]);
  }
  // Several hostile reasons of one key on one repository: one alert, counting them all, told by the newest.
  const mixed = evaluateAlerts(
    {
      now: at(10),
      denials: [
        refused('BK_DENY_OVERWRITE', { count: 2, lastAt: at(1), method: 'put' }),
        refused('BK_DENY_SAVE_KEY', { count: 1, lastAt: at(5), method: 'save_key', message: 'save_key is refused' }),
        refused('BK_DENY_WRITE_LIMIT', { lastAt: at(2) }),
      ],
    },
    S,
  );
  expect(mixed.map((c) => `${c.rule} ${c.severity}`).sort()).toEqual(['denial critical', 'refusal warning']);
  const critical = mixed.find((c) => c.rule === 'denial')!;
  expect(critical.summary).toBe("key 'laptop' was refused save_key on 'main' from 10.0.0.5 (3 refusals)");
  expect(critical.repeatSeconds).toBeUndefined();
});

test("a replaced repository key is critical for a day, naming who and when; a second replacement is a new alert", () => {
  const keyChange = { id: 41, actor: "key 'laptop-key' (full)", at: t0 };
  const [c] = evaluateAlerts({ now: at(60), repositories: [repo({ keyChange })] }, S);
  expect(c).toMatchObject({ key: 'key-change:repository:1:event:41', rule: 'key-change', severity: 'critical', summary: "the key of 'laptop' was replaced" });
  expect(c!.detail).toContain("The repository key of 'laptop' was replaced by key 'laptop-key' (full) at 2026-11-23T00:00:00.000Z.");
  expect(keys(at(86_399), [repo({ keyChange })])).toEqual(['key-change:repository:1:event:41']);
  expect(keys(at(86_400), [repo({ keyChange })])).toEqual([]);
  expect(keys(at(60), [repo({ keyChange: { ...keyChange, id: 42 } })])).toEqual(['key-change:repository:1:event:42']);
});

test('a deferred compaction is a warning whose text is the event\'s detail, while no compaction followed it', () => {
  const detail = 'Compaction of laptop was deferred: transactions 12 and 14 are not verified, 1.2 GiB wait to be freed; review them with borgkeep audit laptop, then borgkeep approve laptop.';
  const [c] = evaluateAlerts({ now: t0, repositories: [repo({ compactionDeferred: { at: t0, detail } })] }, S);
  expect(c).toMatchObject({ key: 'compaction-deferred:repository:1', rule: 'compaction-deferred', severity: 'warning', detail, repeatSeconds: 86_400 });
  expect(keys(t0, [repo({ compactionDeferred: null })])).toEqual([]);
});

test('damage a verification found is a critical alert naming the archives that depend on it, while no full verification found the repository intact', () => {
  const verifyDamage = { at: t0, findings: 2, archives: ['laptop-2026-11-22', 'laptop-2026-11-23'], detail: 'damaged: 2 findings in 40 objects read' };
  const [c] = evaluateAlerts({ now: t0, repositories: [repo({ verifyDamage })] }, S);
  expect(c).toMatchObject({ key: 'verify-damage:repository:1', rule: 'verify-damage', severity: 'critical', summary: "verification found damage in 'laptop', affecting archives laptop-2026-11-22, laptop-2026-11-23" });
  expect(c!.detail).toContain('found 2 damaged or missing objects (archives that depend on them: laptop-2026-11-22, laptop-2026-11-23)');
  expect(c!.detail).toContain('borgkeep verify laptop --all');
  expect(keys(t0, [repo({ verifyDamage: null })])).toEqual([]);
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

test('a repository nobody initialised is not late: it waits for borg init, once its interval has passed; sizes are written as the console writes them', () => {
  const waiting = repo({ lastBackupAt: null, createdAt: t0, expectedIntervalSeconds: 3600, initialized: false });
  expect(keys(at(3600), [waiting])).toEqual([]);
  const [c] = evaluateAlerts({ now: at(7200), repositories: [waiting] }, S);
  expect([c.key, c.rule, c.severity]).toEqual(['waiting-init:repository:1', 'waiting-init', 'warning']);
  expect(c.summary).toBe("'laptop' waits for borg init, 2 h after it was created");
  // Initialised with no backup yet: late, as before.
  expect(keys(at(7200), [{ ...waiting, initialized: true }])).toEqual(['backup-late:repository:1']);
  const [quota] = evaluateAlerts({ now: t0, repositories: [repo({ quotaBytes: 100e9, sizeBytes: 85e9 })] }, S);
  expect(quota.detail).toContain('holds 85 GB of its 100 GB quota');
});

test("a pull host whose newest job failed is one alert: a warning when it was unreachable, critical when its host key changed or the proxy refused what it sent", () => {
  const pull = { hostId: 4, hostName: 'web1', repositoryId: 1, jobId: 17, endedAt: t0, reason: 'the client host did not answer within 30 s', hostile: false };
  const [c, ...rest] = evaluateAlerts({ now: at(60), pulls: [pull] }, S);
  expect(rest).toEqual([]);
  expect(c).toMatchObject({ key: 'pull-failed:host:4', rule: 'pull-failed', severity: 'warning', repositoryId: 1 });
  expect(c!.summary).toBe("the pull backup of 'web1' failed: the client host did not answer within 30 s");
  expect(c!.detail).toContain('Pull job 17 of host');
  const refused = evaluateAlerts({ now: at(60), pulls: [{ ...pull, hostile: true, reason: 'a put whose id does not match its content' }] }, S)[0]!;
  expect(refused).toMatchObject({ key: 'pull-failed:host:4', severity: 'critical' });
  expect(refused.summary).toBe("the pull backup of 'web1' was refused: a put whose id does not match its content");
  expect(evaluateAlerts({ now: at(60), pulls: [] }, S)).toEqual([]);
});
