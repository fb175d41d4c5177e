// Archive checks (issue 18 point 5): the rules an admin sets per repository, the one check of
// their values shared by the CLI and the API, the prefix rule that says which earlier archive a
// new one is compared with, and the judgement of one archive's measurements against the rules.
// Pure: no I/O, no clock; archive-measure.ts reads the archives, archive-check-service.ts records.
//
// A rule left unset is not checked. "It exists and is readable" is always checked (by the
// measuring itself): an archive whose metadata, items or chunk list cannot be read fails.

import { invalidInput } from '../errors.js';
import { pathMatcher } from '../browse/browse.js';
import type { ArchiveCheckRecord } from '../store/archive-check-store.js';

/** The most required path patterns a repository may have. */
export const MAX_REQUIRED_PATHS = 50;
/** A count or size may grow by up to this many per cent before a rule can say anything more. */
export const MAX_CHANGE_PERCENT = 100_000;

export interface CheckRules {
  /** Shell-style patterns (browse.ts pathMatcher); each must match at least one path. A trailing '/' matches folders only. */
  readonly requiredPaths: readonly string[];
  /** The file count may differ from the previous archive of the same prefix by at most this many per cent. */
  readonly maxCountChange: number | null;
  /** The original size may differ from the previous archive's by at most this many per cent. */
  readonly maxSizeChange: number | null;
  /** At most this share (per cent) of the archive's files may be new or have new content. */
  readonly maxChanged: number | null;
  /** At most this share (per cent) of the archive's bytes may be in chunks the previous archive did not reference. */
  readonly maxNewData: number | null;
}

export const NO_RULES: CheckRules = { requiredPaths: [], maxCountChange: null, maxSizeChange: null, maxChanged: null, maxNewData: null };

/** Whether any rule beyond "exists and is readable" is set. */
export const hasRules = (r: CheckRules): boolean =>
  r.requiredPaths.length > 0 || r.maxCountChange !== null || r.maxSizeChange !== null || r.maxChanged !== null || r.maxNewData !== null;

/** The input as the CLI and the API give it: percentages as numbers (or text like '20' or '20%' from the CLI). */
export interface CheckRulesInput {
  requiredPaths?: readonly string[] | null;
  maxCountChange?: number | string | null;
  maxSizeChange?: number | string | null;
  maxChanged?: number | string | null;
  maxNewData?: number | string | null;
}

/** The CLI's flag of each setting, so both callers say the same sentence. */
export const RULE_FLAGS = {
  requiredPaths: '--require',
  maxCountChange: '--max-count-change',
  maxSizeChange: '--max-size-change',
  maxChanged: '--max-changed',
  maxNewData: '--max-new-data',
} as const;

function percent(value: number | string | null | undefined, flag: string, max: number): number | null {
  if (value === null || value === undefined) return null;
  const n = typeof value === 'number' ? value : /^\s*[0-9]+(\.[0-9]+)?\s*%?\s*$/.test(value) ? Number.parseFloat(value) : Number.NaN;
  if (!Number.isFinite(n) || n < 0 || n > max) throw invalidInput(`${flag} must be a percentage from 0 to ${max.toLocaleString('en')}, not '${String(value).trim()}'`);
  return Math.round(n * 100) / 100;
}

/** The rules of a valid input, or one sentence (BK_ERR_INVALID_INPUT) saying what is wrong. */
export function parseCheckRules(input: CheckRulesInput): CheckRules {
  const paths = (input.requiredPaths ?? []).map((p) => p.trim());
  if (paths.length > MAX_REQUIRED_PATHS) throw invalidInput(`${RULE_FLAGS.requiredPaths} may be given at most ${MAX_REQUIRED_PATHS} times`);
  for (const p of paths) {
    try {
      if (p.replace(/^\/+/, '').replace(/\/+$/, '') === '') throw new Error('the search pattern is empty');
      pathMatcher(p.replace(/\/+$/, ''));
    } catch (error) {
      throw invalidInput(`${RULE_FLAGS.requiredPaths} '${p}' is not a path pattern: ${(error as Error).message.replace(/^the search pattern/, 'the pattern')}`);
    }
  }
  return {
    requiredPaths: [...new Set(paths)],
    maxCountChange: percent(input.maxCountChange, RULE_FLAGS.maxCountChange, MAX_CHANGE_PERCENT),
    maxSizeChange: percent(input.maxSizeChange, RULE_FLAGS.maxSizeChange, MAX_CHANGE_PERCENT),
    maxChanged: percent(input.maxChanged, RULE_FLAGS.maxChanged, 100),
    maxNewData: percent(input.maxNewData, RULE_FLAGS.maxNewData, 100),
  };
}

/** The rules as a person reads them, after "each new archive must": "be readable; hold a path matching 'etc/passwd'; ...". */
export function describeCheckRules(r: CheckRules): string {
  const parts = ['be readable'];
  if (r.requiredPaths.length > 0) parts.push(`hold ${r.requiredPaths.length === 1 ? 'a path' : 'paths'} matching ${r.requiredPaths.map((p) => `'${p}'`).join(' and ')}`);
  if (r.maxCountChange !== null) parts.push(`keep its file count within ${r.maxCountChange} % of the previous archive's`);
  if (r.maxSizeChange !== null) parts.push(`keep its size within ${r.maxSizeChange} % of the previous archive's`);
  if (r.maxChanged !== null) parts.push(`have at most ${r.maxChanged} % of its files new or changed`);
  if (r.maxNewData !== null) parts.push(`have at most ${r.maxNewData} % new data`);
  return parts.join('; ');
}

// A date, optionally with a time and a zone, as borg's {now} and its strftime forms write them:
// 2026-12-06T23:00:00, 2026-12-06T23:00:00.123456, 2026-12-06, 20261206-2300, 2026-12-06_23-00.
const DATE_TIME = String.raw`\d{4}[-_.]?\d{2}[-_.]?\d{2}(?:[T_ .-]?\d{2}(?:[:._-]?\d{2}(?:[:._-]?\d{2}(?:[.,]\d+)?)?)?)?(?:Z|[+-]\d{2}:?\d{2})?`;
const ENDS_IN_DATE = new RegExp(`^(?:(.*)[-_.@+ ])?${DATE_TIME}$`, 's');
const ENDS_IN_NUMBER = /^(.+)[-_.@+ ]\d+$/s;

/**
 * The prefix of an archive name, which groups the archives of one backup job: the name without
 * its trailing date and time (`web-2026-12-06T23:00:00` → `web`, `db-1-2026-12-06` → `db-1`,
 * `2026-12-06` → ''); failing that, without a trailing number after a separator (`etc-7` → `etc`);
 * failing that, the whole name (it has no earlier archive to be compared with).
 */
export function archivePrefix(name: string): string {
  const dated = ENDS_IN_DATE.exec(name);
  if (dated) return dated[1] ?? '';
  const numbered = ENDS_IN_NUMBER.exec(name);
  if (numbered) return numbered[1]!;
  return name;
}

export interface ListedForPrefix {
  readonly name: string;
  readonly id: string;
  /** borg's archive time (UTC, no zone): sorts as text. */
  readonly time: string;
}

/**
 * The archive a new one is compared with: of the archives with the same prefix, the newest one
 * older than it (by the client's time; a tie by name); null when there is none.
 */
export function previousOfPrefix<T extends ListedForPrefix>(archive: ListedForPrefix, all: readonly T[]): T | null {
  const prefix = archivePrefix(archive.name);
  let best: T | null = null;
  const before = (a: ListedForPrefix, b: ListedForPrefix) => a.time < b.time || (a.time === b.time && a.name < b.name);
  for (const a of all) {
    if (a.name === archive.name || archivePrefix(a.name) !== prefix || !before(a, archive)) continue;
    if (!best || before(best, a)) best = a;
  }
  return best;
}

/** What archive-measure.ts found reading one archive (and comparing it with the previous one). */
export interface ArchiveMeasure {
  /** Why the archive cannot be read, or null when its metadata, items and chunk list all read. */
  readonly unreadable: string | null;
  /** Regular files (a later hardlink counts as a file). */
  readonly files: number;
  /** Original bytes: the content of every regular file (hardlinked content once). */
  readonly size: number;
  /** The required patterns no path matched. */
  readonly missingPaths: readonly string[];
  /** The previous archive of the same prefix, when there is one and it read. */
  readonly previous: {
    readonly name: string;
    readonly files: number;
    readonly size: number;
    /** Files of this archive that the previous did not have, or whose content (chunk ids) differs. */
    readonly changedFiles: number;
    /** Bytes of this archive in chunks the previous archive did not reference. */
    readonly newDataBytes: number;
  } | null;
  /** Why the previous archive could not be compared (it did not read), else null. */
  readonly previousUnreadable?: string | null;
}

export type FindingRule = 'readable' | 'required-path' | 'count-change' | 'size-change' | 'changed-files' | 'new-data';

export interface CheckFinding {
  readonly rule: FindingRule;
  /** One sentence naming the repository, the archive and the rule. */
  readonly sentence: string;
}

export interface CheckFigures {
  readonly files: number;
  readonly size: number;
  readonly comparedWith: string | null;
  readonly countChangePercent: number | null;
  readonly sizeChangePercent: number | null;
  readonly changedPercent: number | null;
  readonly newDataPercent: number | null;
}

export interface Judgement {
  readonly verdict: 'passed' | 'failed';
  readonly findings: readonly CheckFinding[];
  readonly figures: CheckFigures;
  /** Notes that are not failures (no previous archive to compare with, ...). */
  readonly notes: readonly string[];
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const pct = (n: number) => `${round1(n)} %`;
const change = (now: number, before: number): number | null => (before === 0 ? (now === 0 ? 0 : null) : (100 * (now - before)) / before);
const signed = (n: number) => `${n >= 0 ? '+' : ''}${round1(n)} %`;
const files = (n: number) => `${n.toLocaleString('en')} ${n === 1 ? 'file' : 'files'}`;

/** One archive's measurements against the rules. */
export function judgeArchive(repository: string, archive: string, m: ArchiveMeasure, rules: CheckRules, formatBytes: (n: number) => string): Judgement {
  const findings: CheckFinding[] = [];
  const notes: string[] = [];
  const of = `archive '${archive}' of '${repository}'`;
  const prev = m.unreadable === null ? m.previous : null;
  const figures: CheckFigures = {
    files: m.files,
    size: m.size,
    comparedWith: prev?.name ?? null,
    countChangePercent: prev ? change(m.files, prev.files) : null,
    sizeChangePercent: prev ? change(m.size, prev.size) : null,
    changedPercent: prev ? (m.files === 0 ? 0 : (100 * prev.changedFiles) / m.files) : null,
    newDataPercent: prev ? (m.size === 0 ? 0 : (100 * prev.newDataBytes) / m.size) : null,
  };
  if (m.unreadable !== null) {
    findings.push({ rule: 'readable', sentence: `${of} cannot be read: ${m.unreadable}.` });
    return { verdict: 'failed', findings, figures, notes };
  }
  for (const p of m.missingPaths) findings.push({ rule: 'required-path', sentence: `${of} holds no path matching '${p}'.` });
  const compares = rules.maxCountChange !== null || rules.maxSizeChange !== null || rules.maxChanged !== null || rules.maxNewData !== null;
  if (compares && !prev) {
    notes.push(m.previousUnreadable ? `the previous archive could not be read, so nothing was compared: ${m.previousUnreadable}` : `no earlier archive with the prefix '${archivePrefix(archive)}' to compare with`);
  }
  if (prev) {
    const count = figures.countChangePercent;
    if (rules.maxCountChange !== null && (count === null || Math.abs(count) > rules.maxCountChange)) {
      const from = count === null ? `where '${prev.name}' had none` : `${signed(count)} from ${files(prev.files)} in '${prev.name}'`;
      findings.push({ rule: 'count-change', sentence: `${of} has ${files(m.files)}, ${from} (at most ${rules.maxCountChange} % allowed).` });
    }
    const size = figures.sizeChangePercent;
    if (rules.maxSizeChange !== null && (size === null || Math.abs(size) > rules.maxSizeChange)) {
      const from = size === null ? `where '${prev.name}' held nothing` : `${signed(size)} from ${formatBytes(prev.size)} in '${prev.name}'`;
      findings.push({ rule: 'size-change', sentence: `${of} holds ${formatBytes(m.size)}, ${from} (at most ${rules.maxSizeChange} % allowed).` });
    }
    if (rules.maxChanged !== null && figures.changedPercent! > rules.maxChanged) {
      findings.push({ rule: 'changed-files', sentence: `${of} has ${pct(figures.changedPercent!)} of its files new or changed since '${prev.name}' (${files(prev.changedFiles)} of ${m.files.toLocaleString('en')}; at most ${rules.maxChanged} % allowed).` });
    }
    if (rules.maxNewData !== null && figures.newDataPercent! > rules.maxNewData) {
      findings.push({ rule: 'new-data', sentence: `${of} has ${pct(figures.newDataPercent!)} of its data in chunks '${prev.name}' did not have (${formatBytes(prev.newDataBytes)} of ${formatBytes(m.size)}; at most ${rules.maxNewData} % allowed).` });
    }
  }
  return { verdict: findings.length > 0 ? 'failed' : 'passed', findings, figures, notes };
}

/** What an archive's verdict is kept and looked up under: its id and its name (renamed, it is checked again). */
export const archiveCheckKey = (id: string, name: string): string => `${id} ${name}`;

/** An archive's verdict as `borgkeep archives --json` and the API's archive list show it; null: not checked yet. */
export function shownArchiveCheck(v: ArchiveCheckRecord | undefined) {
  if (!v) return null;
  return { verdict: v.verdict, findings: v.findings.map((f) => ({ rule: f.rule, sentence: f.sentence })), notes: [...v.notes], comparedWith: v.figures?.comparedWith ?? null, checkedAt: v.checkedAt.toISOString() };
}
