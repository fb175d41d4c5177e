// Parsers for the command line's value syntax: sizes, times, address lists, counts. Each turns
// text into a typed value or throws BK_ERR_INVALID_INPUT with one sentence that shows the
// accepted forms. Domain checks (names, grant terms) stay in the store, which every caller uses.

import { invalidInput } from '../errors.js';

/** borg's size suffixes (parse_file_size): decimal, powers of 1000. */
const SIZE_FACTORS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };
const SIZE_SYNTAX = /^([0-9]+(?:\.[0-9]+)?)([KMGTP]?)$/i;

export function parseSize(text: string, what: string): number {
  const match = SIZE_SYNTAX.exec(text.trim());
  if (!match) {
    throw invalidInput(`${what} '${text}' is not a size; use a number with an optional K, M, G, T or P suffix, e.g. 500G`);
  }
  const bytes = Math.floor(Number(match[1]) * SIZE_FACTORS[match[2]!.toUpperCase()]!);
  if (!Number.isSafeInteger(bytes)) throw invalidInput(`${what} '${text}' is too large`);
  return bytes;
}

/** borg refuses a storage quota under 10M, so borgkeep does too, up front. */
export function parseQuota(text: string): number {
  const bytes = parseSize(text, 'the quota');
  if (bytes < 10_000_000) throw invalidInput(`the quota '${text}' is too small; borg needs at least 10M`);
  return bytes;
}

/** Seconds in each unit of a duration (30d, 26h, 90m, 45s), largest first. */
export const DURATION_UNITS: Readonly<Record<string, number>> = { d: 86_400, h: 3600, m: 60, s: 1 };

/** How often a repository expects a backup: 90m, 26h, 7d (or seconds); the store checks the range. */
export function parseInterval(text: string): number {
  const match = /^([0-9]{1,9})([smhd]?)$/.exec(text.trim());
  if (!match) throw invalidInput(`the interval '${text}' is not a duration; use minutes, hours or days, e.g. 90m, 26h or 7d`);
  return Number(match[1]) * DURATION_UNITS[match[2] || 's']!;
}

/**
 * A duration with its unit for option `name`: 30d, 12h, 90m or 45s (a bare number is refused:
 * borg's own --keep-within reads 'm' as months, so the unit is never guessed).
 */
export function parseDuration(text: string, name: string): number {
  const match = /^([0-9]{1,9})([dhms])$/.exec(text.trim());
  if (!match || Number(match[1]) === 0) throw invalidInput(`${name} '${text}' is not a duration; use a whole number of days, hours, minutes or seconds, e.g. 30d, 12h or 90m`);
  return Number(match[1]) * DURATION_UNITS[match[2]!]!;
}

/** A whole number ≥ 1 (≤ max) for option `name`. */
export function parseCount(text: string, name: string, max = 1_000_000): number {
  const value = /^[0-9]+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw invalidInput(`${name} must be a whole number from 1 to ${max}, not '${text}'`);
  }
  return value;
}

const TIME_FORMS = 'an ISO-8601 date (2030-12-31), a date-time with a zone (2030-12-31T18:00Z) or a time from now (30d, 12h, 90m)';

/**
 * An expiry: a date (midnight UTC at its start), a date-time with an explicit zone, or a
 * duration from now. A date-time without a zone is refused: a server's local time is a guess.
 */
export function parseTime(text: string, now: Date): Date {
  const value = text.trim();
  const relative = /^([0-9]{1,6})([dhm])$/.exec(value);
  if (relative) return new Date(now.getTime() + Number(relative[1]) * DURATION_UNITS[relative[2]!]! * 1000);

  const match =
    /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$/i.exec(
      value,
    );
  if (!match) throw invalidInput(`'${text}' is not a time; use ${TIME_FORMS}`);
  const [, year, month, day, hour, minute, second, zone] = match;
  if (hour !== undefined && zone === undefined) {
    throw invalidInput(`'${text}' has no time zone; end it with Z for UTC or an offset such as +02:00`);
  }
  const calendar = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
  const validDate =
    calendar.getUTCFullYear() === Number(year) &&
    calendar.getUTCMonth() === Number(month) - 1 &&
    calendar.getUTCDate() === Number(day);
  const validClock = hour === undefined || (Number(hour) < 24 && Number(minute) < 60 && Number(second ?? 0) < 60);
  if (!validDate || !validClock) throw invalidInput(`'${text}' is not a valid date or time`);
  if (hour === undefined) return calendar;
  return new Date(value.replace(/z$/, 'Z'));
}

/** "CIDR,CIDR,..." into its entries; the store checks and normalizes each. */
export function parseCidrList(text: string): string[] {
  const entries = text.split(',').map((entry) => entry.trim());
  if (entries.some((entry) => entry === '')) {
    throw invalidInput(`the address list '${text}' has an empty entry; separate ranges with single commas`);
  }
  return entries;
}
