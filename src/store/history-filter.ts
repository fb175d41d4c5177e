// The history's filters as text (the CLI's `ledger` options, the API's query parameters, the
// console's form) into typed values, with the same one-sentence refusals everywhere. Pure: the
// clock comes in; names of repositories and keys are resolved by the caller's store.

import { invalidInput } from '../errors.js';
import { RUN_KINDS, type RunKind } from './run-kind.js';
import { SESSION_RESULTS, type SessionResult } from './types.js';

export interface HistoryFilterText {
  result?: string | undefined;
  kind?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
}

export interface HistoryFilterValues {
  result?: SessionResult;
  runKind?: RunKind;
  /** Inclusive. */
  since?: Date;
  /** Exclusive. */
  until?: Date;
}

const TIME_FORMS = 'an ISO-8601 date (2030-12-31), a date-time with a zone (2030-12-31T18:00Z) or a time ago (7d, 12h, 90m)';
const UNIT_SECONDS: Readonly<Record<string, number>> = { d: 86_400, h: 3600, m: 60 };

/** A point in the past: a date (midnight UTC), a date-time with a zone, or a duration ago. */
export function parsePastTime(text: string, now: Date): Date {
  const value = text.trim();
  const ago = /^([0-9]{1,6})([dhm])$/.exec(value);
  if (ago) return new Date(now.getTime() - Number(ago[1]) * UNIT_SECONDS[ago[2]!]! * 1000);
  const m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$/i.exec(value);
  if (!m) throw invalidInput(`'${text}' is not a time; use ${TIME_FORMS}`);
  if (m[4] !== undefined && m[7] === undefined) throw invalidInput(`'${text}' has no time zone; end it with Z for UTC or an offset such as +02:00`);
  const day = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  const validDay = day.getUTCFullYear() === Number(m[1]) && day.getUTCMonth() === Number(m[2]) - 1 && day.getUTCDate() === Number(m[3]);
  const validClock = m[4] === undefined || (Number(m[4]) < 24 && Number(m[5]) < 60 && Number(m[6] ?? 0) < 60);
  if (!validDay || !validClock) throw invalidInput(`'${text}' is not a valid date or time`);
  return m[4] === undefined ? day : new Date(value.replace(/z$/, 'Z'));
}

export function parseHistoryFilter(text: HistoryFilterText, now: Date): HistoryFilterValues {
  const out: HistoryFilterValues = {};
  if (text.result !== undefined) {
    if (!(SESSION_RESULTS as readonly string[]).includes(text.result)) {
      throw invalidInput(`'${text.result}' is not a session result; use ${listOf(SESSION_RESULTS)}`);
    }
    out.result = text.result as SessionResult;
  }
  if (text.kind !== undefined) {
    if (!(RUN_KINDS as readonly string[]).includes(text.kind)) throw invalidInput(`'${text.kind}' is not a kind of run; use ${listOf(RUN_KINDS)}`);
    out.runKind = text.kind as RunKind;
  }
  if (text.since !== undefined) out.since = parsePastTime(text.since, now);
  if (text.until !== undefined) out.until = parsePastTime(text.until, now);
  if (out.since && out.until && out.since.getTime() >= out.until.getTime()) throw invalidInput('the start of the time range (since) must be before its end (until)');
  return out;
}

function listOf(values: readonly string[]): string {
  return `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
}
