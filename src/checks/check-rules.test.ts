import { expect, test } from 'vitest';

import { evaluateAlerts, DEFAULT_ALERT_SETTINGS, type RepositoryFacts } from '../alerts/alert-rules.js';
import { formatBytes } from '../shared/size.js';
import { NO_RULES, archivePrefix, describeCheckRules, judgeArchive, parseCheckRules, previousOfPrefix, type ArchiveMeasure, type CheckRules } from './check-rules.js';

test("an archive's prefix is its name without the trailing date and time, else without a trailing number, else the whole name", () => {
  expect(archivePrefix('web-2026-12-06T23:00:00')).toBe('web');
  expect(archivePrefix('web-2026-12-06T23:00:00.123456')).toBe('web');
  expect(archivePrefix('db-1-2026-12-06T23:00:00')).toBe('db-1');
  expect(archivePrefix('laptop-daily-2026-12-06')).toBe('laptop-daily');
  expect(archivePrefix('host.example.org-20261206-2300')).toBe('host.example.org');
  expect(archivePrefix('home_2026-12-06_23-00')).toBe('home');
  expect(archivePrefix('2026-12-06T23:00:00')).toBe('');
  expect(archivePrefix('etc-7')).toBe('etc');
  expect(archivePrefix('web01')).toBe('web01');
  expect(archivePrefix('manual')).toBe('manual');
});

test('the previous archive of a prefix is the newest older one with the same prefix', () => {
  const all = [
    { name: 'web-2026-12-04', id: 'a', time: '2026-12-04T01:00:00' },
    { name: 'db-2026-12-05', id: 'b', time: '2026-12-05T01:00:00' },
    { name: 'web-2026-12-05', id: 'c', time: '2026-12-05T01:00:00' },
    { name: 'web-2026-12-06', id: 'd', time: '2026-12-06T01:00:00' },
  ];
  expect(previousOfPrefix(all[3]!, all)?.name).toBe('web-2026-12-05');
  expect(previousOfPrefix(all[2]!, all)?.name).toBe('web-2026-12-04');
  expect(previousOfPrefix(all[1]!, all)).toBeNull();
  expect(previousOfPrefix(all[0]!, all)).toBeNull();
});

test('rules are checked with one sentence naming the flag, as the CLI and the API say it', () => {
  expect(parseCheckRules({})).toEqual(NO_RULES);
  expect(parseCheckRules({ requiredPaths: ['etc/passwd', ' home/*/ ', 'etc/passwd'], maxChanged: '50%', maxNewData: 40, maxCountChange: '12.5' })).toEqual({
    requiredPaths: ['etc/passwd', 'home/*/'],
    maxCountChange: 12.5,
    maxSizeChange: null,
    maxChanged: 50,
    maxNewData: 40,
  });
  expect(() => parseCheckRules({ maxChanged: '150' })).toThrow("--max-changed must be a percentage from 0 to 100, not '150'");
  expect(() => parseCheckRules({ maxNewData: -1 })).toThrow("--max-new-data must be a percentage from 0 to 100, not '-1'");
  expect(() => parseCheckRules({ maxCountChange: 'lots' })).toThrow("--max-count-change must be a percentage from 0 to 100,000, not 'lots'");
  expect(() => parseCheckRules({ requiredPaths: ['etc/[abc'] })).toThrow("--require 'etc/[abc' is not a path pattern: the pattern 'etc/[abc' has a '[' without its ']'");
  expect(() => parseCheckRules({ requiredPaths: ['/'] })).toThrow("--require '/' is not a path pattern: the pattern is empty");
  expect(() => parseCheckRules({ requiredPaths: Array.from({ length: 51 }, (_, i) => `p${i}`) })).toThrow('--require may be given at most 50 times');
  expect(describeCheckRules(parseCheckRules({ requiredPaths: ['etc/passwd'], maxNewData: 40 }))).toBe("be readable; hold a path matching 'etc/passwd'; have at most 40 % new data");
});

const rules = (over: Partial<CheckRules>): CheckRules => ({ ...NO_RULES, ...over });
const measure = (over: Partial<ArchiveMeasure>): ArchiveMeasure => ({ unreadable: null, files: 100, size: 1_000_000, missingPaths: [], previous: null, ...over });
const judge = (m: ArchiveMeasure, r: CheckRules) => judgeArchive('srv', 'web-2026-12-06', m, r, formatBytes);

test('an ordinary daily archive passes; a missing path, a jump of changes or of new data, and an unreadable archive fail with a sentence each', () => {
  const strict = rules({ requiredPaths: ['etc/passwd'], maxCountChange: 20, maxSizeChange: 20, maxChanged: 30, maxNewData: 30 });
  const daily = measure({ files: 102, size: 1_010_000, previous: { name: 'web-2026-12-05', files: 100, size: 1_000_000, changedFiles: 5, newDataBytes: 20_000 } });
  const passed = judge(daily, strict);
  expect(passed).toMatchObject({ verdict: 'passed', findings: [], figures: { comparedWith: 'web-2026-12-05', countChangePercent: 2 } });
  expect(passed.figures.changedPercent).toBeCloseTo(4.9, 1);
  expect(passed.figures.newDataPercent).toBeCloseTo(1.98, 1);

  const missing = judge({ ...daily, missingPaths: ['etc/passwd'] }, strict);
  expect(missing.verdict).toBe('failed');
  expect(missing.findings).toEqual([{ rule: 'required-path', sentence: "archive 'web-2026-12-06' of 'srv' holds no path matching 'etc/passwd'." }]);

  const rewritten = judge(measure({ files: 100, size: 1_000_000, previous: { name: 'web-2026-12-05', files: 100, size: 1_000_000, changedFiles: 90, newDataBytes: 950_000 } }), strict);
  expect(rewritten.findings.map((f) => f.sentence)).toEqual([
    "archive 'web-2026-12-06' of 'srv' has 90 % of its files new or changed since 'web-2026-12-05' (90 files of 100; at most 30 % allowed).",
    "archive 'web-2026-12-06' of 'srv' has 95 % of its data in chunks 'web-2026-12-05' did not have (950 KB of 1.0 MB; at most 30 % allowed).",
  ]);

  const shrunk = judge(measure({ files: 10, size: 100_000, previous: { name: 'web-2026-12-05', files: 100, size: 1_000_000, changedFiles: 0, newDataBytes: 0 } }), strict);
  expect(shrunk.findings.map((f) => f.rule)).toEqual(['count-change', 'size-change']);
  expect(shrunk.findings[0]!.sentence).toBe("archive 'web-2026-12-06' of 'srv' has 10 files, -90 % from 100 files in 'web-2026-12-05' (at most 20 % allowed).");

  const unreadable = judge(measure({ unreadable: 'chunk 0011223344556677 of \'etc/passwd\' is missing from the repository' }), strict);
  expect(unreadable).toMatchObject({ verdict: 'failed', findings: [{ rule: 'readable', sentence: "archive 'web-2026-12-06' of 'srv' cannot be read: chunk 0011223344556677 of 'etc/passwd' is missing from the repository." }] });

  // Without an earlier archive of the prefix nothing is compared; that is a note, not a failure.
  const first = judge(measure({}), strict);
  expect(first).toMatchObject({ verdict: 'passed', notes: ["no earlier archive with the prefix 'web' to compare with"] });
  // No rules: readable is all that is asked.
  expect(judge(measure({ files: 1, previous: { name: 'web-2026-12-05', files: 100, size: 1, changedFiles: 1, newDataBytes: 1 } }), NO_RULES).verdict).toBe('passed');
});

test('a failed archive is one alert per archive, critical for the signs of damage or a rewrite, a warning for a missing path', () => {
  const t0 = new Date('2026-12-06T23:00:00Z');
  const repo = (archiveCheckFailures: RepositoryFacts['archiveCheckFailures']): RepositoryFacts => ({
    id: 3,
    name: 'srv',
    createdAt: t0,
    expectedIntervalSeconds: 86_400,
    lastBackupAt: t0,
    sizeBytes: null,
    quotaBytes: null,
    auditSuspiciousUnreviewed: false,
    lastAuditAt: null,
    archiveCheckFailures,
  });
  const missing = { archiveId: 'aa', archiveName: 'web-2026-12-06', checkedAt: t0, findings: [{ rule: 'required-path', sentence: "archive 'web-2026-12-06' of 'srv' holds no path matching 'etc/passwd'." }] };
  const rewritten = {
    archiveId: 'bb',
    archiveName: 'db-2026-12-06',
    checkedAt: t0,
    findings: [
      { rule: 'changed-files', sentence: 'many changed.' },
      { rule: 'new-data', sentence: 'much new.' },
    ],
  };
  const out = evaluateAlerts({ now: t0, repositories: [repo([missing, rewritten])] }, DEFAULT_ALERT_SETTINGS);
  expect(out.map((c) => [c.key, c.rule, c.severity, c.summary])).toEqual([
    ['archive-check:repository:3:archive:aa', 'archive-check', 'warning', "archive 'web-2026-12-06' of 'srv' failed its checks: missing paths"],
    ['archive-check:repository:3:archive:bb', 'archive-check', 'critical', "archive 'db-2026-12-06' of 'srv' failed its checks: changed files, new data"],
  ]);
  expect(out[0]!.detail).toContain("archive 'web-2026-12-06' of 'srv' holds no path matching 'etc/passwd'.");
  expect(evaluateAlerts({ now: t0, repositories: [repo([])] }, DEFAULT_ALERT_SETTINGS)).toEqual([]);
});
