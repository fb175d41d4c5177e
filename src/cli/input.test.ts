import { describe, expect, it } from 'vitest';
import { parseCidrList, parseCount, parseQuota, parseSize, parseTime } from './input.js';
import { formatSize, formatTable, formatTime } from './output.js';

const NOW = new Date('2025-06-15T12:00:00.000Z');

describe('sizes', () => {
  it.each([
    ['10M', 10_000_000],
    ['10m', 10_000_000],
    ['1.5G', 1_500_000_000],
    ['2T', 2_000_000_000_000],
    ['123456789', 123_456_789],
    ['1P', 1e15],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseSize(text, 'the quota')).toBe(bytes);
  });

  it('refuses non-sizes and quotas under 10M', () => {
    expect(() => parseSize('1GB', 'the quota')).toThrow("the quota '1GB' is not a size");
    expect(() => parseSize('-5M', 'the quota')).toThrow("the quota '-5M' is not a size");
    expect(() => parseQuota('9.99M')).toThrow("the quota '9.99M' is too small; borg needs at least 10M");
    expect(parseQuota('10M')).toBe(10_000_000);
  });

  it('prints sizes in decimal units as borg does, in the console\'s style (one decimal under 10)', () => {
    expect([0, 999, 1000, 12_345, 1_500_000_000_000, 1_550_000_000_000, 100_000_000_000].map(formatSize)).toEqual([
      '0 B',
      '999 B',
      '1.0 KB',
      '12 KB',
      '1.5 TB',
      '1.6 TB',
      '100 GB',
    ]);
  });
});

describe('times', () => {
  it('reads durations from now, dates as midnight UTC, and date-times with a zone', () => {
    expect(parseTime('30d', NOW).toISOString()).toBe('2025-07-15T12:00:00.000Z');
    expect(parseTime('12h', NOW).toISOString()).toBe('2025-06-16T00:00:00.000Z');
    expect(parseTime('90m', NOW).toISOString()).toBe('2025-06-15T13:30:00.000Z');
    expect(parseTime('2026-02-28', NOW).toISOString()).toBe('2026-02-28T00:00:00.000Z');
    expect(parseTime('2026-01-01T10:00Z', NOW).toISOString()).toBe('2026-01-01T10:00:00.000Z');
    expect(parseTime('2026-01-01T10:00:30.5-05:00', NOW).toISOString()).toBe('2026-01-01T15:00:30.500Z');
  });

  it('refuses what is not a time, impossible dates and date-times without a zone', () => {
    expect(() => parseTime('next week', NOW)).toThrow("'next week' is not a time; use an ISO-8601 date");
    expect(() => parseTime('2026-02-29', NOW)).toThrow("'2026-02-29' is not a valid date or time");
    expect(() => parseTime('2026-01-01T24:00Z', NOW)).toThrow("'2026-01-01T24:00Z' is not a valid date or time");
    expect(() => parseTime('2026-01-01T10:00', NOW)).toThrow("'2026-01-01T10:00' has no time zone");
    expect(() => parseTime('30w', NOW)).toThrow("'30w' is not a time");
  });

  it('prints UTC to the second', () => {
    expect(formatTime(new Date('2025-01-02T03:04:05.678Z'))).toBe('2025-01-02T03:04:05Z');
    expect(formatTime(null, 'never')).toBe('never');
  });
});

describe('counts, address lists and tables', () => {
  it('parses counts within bounds', () => {
    expect(parseCount('3', '--limit')).toBe(3);
    expect(() => parseCount('1.5', '--limit', 10)).toThrow("--limit must be a whole number from 1 to 10, not '1.5'");
    expect(() => parseCount('11', '--limit', 10)).toThrow("--limit must be a whole number from 1 to 10, not '11'");
  });

  it('splits address lists', () => {
    expect(parseCidrList('10.0.0.0/8, ::1')).toEqual(['10.0.0.0/8', '::1']);
    expect(() => parseCidrList('10.0.0.0/8,')).toThrow('has an empty entry');
  });

  it('aligns table columns', () => {
    expect(formatTable(['A', 'LONGER'], [['xyz', '1'], ['x', '22']])).toBe('A    LONGER\nxyz  1\nx    22');
  });
});
