import { describe, expect, test } from 'vitest';

import { DEFAULT_SCHEDULE, isDue, parseRetentionRules, pruneArguments } from './retention-policy.js';
import { createRetentionService } from './retention-service.js';
import type { RetentionPolicy, RetentionRules } from './retention-policy.js';
import type { Repository } from '../store/types.js';

describe('retention policy', () => {
  test("borg prune's own flags, each value after its flag, the prefix as borg's --glob-archives PREFIX*", () => {
    const rules = parseRetentionRules({ keepDaily: 7, keepWeekly: 4, keepMonthly: 6, keepYearly: 2, keepLast: 3, keepHourly: 24, keepWithin: '2d', prefix: 'web-01.' });
    expect(pruneArguments(rules)).toEqual([
      '--keep-within', '2d', '--keep-last', '3', '--keep-hourly', '24', '--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '6', '--keep-yearly', '2', '--glob-archives', 'web-01.*',
    ]);
    expect(rules.schedule).toBe(DEFAULT_SCHEDULE);
  });

  test('refuses what borg could read as something else: globs, placeholders, options, no keep rule', () => {
    for (const bad of [{ keepDaily: 1, prefix: '*' }, { keepDaily: 1, prefix: '{hostname}-' }, { keepDaily: 1, prefix: '-x' }, { keepDaily: 1, prefix: 'a b' }, { keepDaily: 1, keepWithin: '-1d' }, { keepDaily: 1, keepWithin: '1d --x' }, { prefix: 'web-' }, { keepDaily: 1.5 }, { keepDaily: 1, schedule: '61 * * * *' }]) {
      expect(() => parseRetentionRules(bad), JSON.stringify(bad)).toThrow();
    }
  });

  test('due once a scheduled time has passed since the last run or change; a missed run is due at once', () => {
    const policy = { schedule: '30 3 * * *', updatedAt: new Date('2026-01-01T12:00:00'), lastRunAt: null as Date | null };
    expect(isDue(policy, new Date('2026-01-02T03:29:59'))).toBe(false);
    expect(isDue(policy, new Date('2026-01-02T03:30:00'))).toBe(true);
    // Ran at 03:30: not due again until the next day's 03:30.
    policy.lastRunAt = new Date('2026-01-02T03:30:00');
    expect(isDue(policy, new Date('2026-01-02T23:00:00'))).toBe(false);
    // The server was down for days: due at once when it comes back, and once only.
    expect(isDue(policy, new Date('2026-01-05T09:00:00'))).toBe(true);
    policy.lastRunAt = new Date('2026-01-05T09:00:00');
    expect(isDue(policy, new Date('2026-01-05T09:00:01'))).toBe(false);
  });
});

describe('retention service (fake time, fake runs)', () => {
  const repository: Repository = { id: 1, name: 'main', dirName: 'd1', quotaBytes: null, expectedIntervalSeconds: 93_600, createdAt: new Date(0) };
  function setup(held: boolean) {
    let now = new Date('2026-01-01T12:00:00');
    let policy: RetentionPolicy | null = null;
    const runs: Date[] = [];
    const service = createRetentionService({
      store: {
        getRepository: async () => repository,
        listRepositoryRecords: async () => [repository],
        getRetentionPolicy: async () => policy,
        listRetentionPolicies: async () => (policy ? [policy] : []),
        setRetentionPolicy: async (_id, rules: RetentionRules, by) => (policy = { ...rules, repositoryId: 1, updatedAt: now, updatedBy: by, lastRunAt: null, lastResult: null, lastDetail: null }),
        removeRetentionPolicy: async () => policy !== null && !(policy = null),
        recordRetentionRun: async (_id, r) => {
          policy = { ...policy!, lastRunAt: r.at, lastResult: r.result, lastDetail: r.detail };
        },
      },
      vault: { has: () => held, get: () => (held ? { passphrase: 'p', keyFile: null } : null) },
      now: () => now,
      runner: {} as never,
      run: async () => {
        runs.push(now);
        return { result: 'warning', detail: 'pruned 1 of 2 archives; compaction deferred: x', pruned: ['a'], kept: 1, compacted: false, deferred: 'x', sessions: [1, 2] };
      },
    });
    return { service, runs, at: (t: string) => (now = new Date(t)), policy: () => policy };
  }

  test('runs each policy when due, records the warning as the result, and not again before its next time', async () => {
    const s = setup(true);
    await s.service.set('main', { keepDaily: 2, schedule: '*/10 * * * * *' }, 'cli');
    expect(await s.service.runDue()).toBe('nothing due');
    s.at('2026-01-01T12:00:10');
    expect(await s.service.runDue()).toBe('main: pruned 1 of 2 archives; compaction deferred: x');
    expect(s.policy()).toMatchObject({ lastResult: 'warning' });
    s.at('2026-01-01T12:00:15');
    expect(await s.service.runDue()).toBe('nothing due');
    expect(s.runs).toHaveLength(1);
    // The same policy set again (the config file at each start) does not move its last change.
    const before = s.policy()!.updatedAt;
    s.at('2026-01-01T12:00:16');
    await s.service.set('main', { keepDaily: 2, schedule: '*/10 * * * * *' }, 'config file');
    expect(s.policy()!.updatedAt).toBe(before);
  });

  test('no policy without a held key', async () => {
    const s = setup(false);
    await expect(s.service.set('main', { keepDaily: 2 }, 'cli')).rejects.toThrow(/does not hold the key of repository 'main'/);
    expect(s.policy()).toBeNull();
  });
});
