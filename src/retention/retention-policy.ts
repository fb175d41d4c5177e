// A repository's retention policy as borgkeep keeps it (the store's retention_policies row), the
// one check of its values shared by the CLI, the API and the config file, and the exact `borg
// prune` arguments it stands for. borg itself decides what to prune: this file only turns the
// policy into borg's own flags, so the server's prune is what `borg prune` with those flags does.
//
// Must never put text into borg's argv that borg could read as anything but the value of the flag
// it follows (each value is checked against a narrow form first), nor compute a prune of its own.

import { Cron } from 'croner';
import { z } from 'zod';

import { invalidInput } from '../errors.js';

/** The schedule a policy gets when none is given: daily at 03:30 server time. */
export const DEFAULT_SCHEDULE = '30 3 * * *';

/** borg's --keep-within: a number and one of H (hours), d, w, m (31 days), y (365 days). */
const KEEP_WITHIN = /^[1-9][0-9]{0,5}[Hdwmy]$/;
/**
 * An archive-name prefix: borg prune's `--glob-archives PREFIX*`. No glob characters (so the
 * prefix means only itself), no `{placeholders}` (borg would fill them in with the server's host
 * name), nothing that starts like an option.
 */
const PREFIX = /^[A-Za-z0-9._:@+][A-Za-z0-9._:@+-]{0,99}$/;
const MAX_KEEP = 1_000_000;

export const KEEP_RULES = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
export type KeepRule = (typeof KEEP_RULES)[number];

/** The borg flag of each rule. */
const FLAG: Record<KeepRule, string> = {
  keepLast: '--keep-last',
  keepHourly: '--keep-hourly',
  keepDaily: '--keep-daily',
  keepWeekly: '--keep-weekly',
  keepMonthly: '--keep-monthly',
  keepYearly: '--keep-yearly',
};

export interface RetentionRules {
  readonly keepLast: number | null;
  readonly keepHourly: number | null;
  readonly keepDaily: number | null;
  readonly keepWeekly: number | null;
  readonly keepMonthly: number | null;
  readonly keepYearly: number | null;
  /** borg's duration form: 30d, 12H, 2w, 6m, 1y. */
  readonly keepWithin: string | null;
  /** Only archives whose names start with this are considered (and pruned). */
  readonly prefix: string | null;
  /** Cron pattern (croner; seconds optional), server time. */
  readonly schedule: string;
}

export type RetentionResult = 'ok' | 'warning' | 'error';

export interface RetentionPolicy extends RetentionRules {
  readonly repositoryId: number;
  readonly updatedAt: Date;
  readonly updatedBy: string;
  readonly lastRunAt: Date | null;
  readonly lastResult: RetentionResult | null;
  /** One line: what the last run removed and whether it compacted, or why not. */
  readonly lastDetail: string | null;
}

const keep = z.number().int().min(1).max(MAX_KEEP);

/** The policy as the API and the config file take it; every field optional but one keep rule. */
export const retentionInputSchema = z
  .object({
    keepLast: keep.nullable().optional().describe('keep the last N archives (borg --keep-last)'),
    keepHourly: keep.nullable().optional().describe('borg --keep-hourly'),
    keepDaily: keep.nullable().optional().describe('borg --keep-daily'),
    keepWeekly: keep.nullable().optional().describe('borg --keep-weekly'),
    keepMonthly: keep.nullable().optional().describe('borg --keep-monthly'),
    keepYearly: keep.nullable().optional().describe('borg --keep-yearly'),
    keepWithin: z.string().regex(KEEP_WITHIN, 'is not a duration like 30d, 12H, 2w, 6m or 1y').nullable().optional().describe('keep every archive younger than this (borg --keep-within): 30d, 12H, 2w, 6m, 1y'),
    prefix: z.string().regex(PREFIX, 'is not an archive-name prefix (letters, digits and . _ : @ + -, no glob characters or {placeholders})').nullable().optional().describe("only archives whose names start with this (borg --glob-archives 'PREFIX*')"),
    schedule: z.string().optional().describe(`cron pattern in server time, seconds optional; default '${DEFAULT_SCHEDULE}' (daily at 03:30)`),
  })
  .strict();

export type RetentionInput = z.input<typeof retentionInputSchema>;

/** Whether `pattern` is a cron pattern croner reads; the sentence saying why not otherwise. */
function scheduleProblem(pattern: string): string | null {
  try {
    const cron = new Cron(pattern, { paused: true });
    if (cron.nextRun() === null) return `the schedule '${pattern}' never runs`;
    return null;
  } catch {
    return `the schedule '${pattern}' is not a cron pattern like '${DEFAULT_SCHEDULE}' (minute hour day month weekday)`;
  }
}

/** The rules of a valid input, or one sentence (BK_ERR_INVALID_INPUT) saying what is wrong. */
export function parseRetentionRules(input: unknown, where = ''): RetentionRules {
  const parsed = retentionInputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.');
    const message = issue.code === 'unrecognized_keys' ? `has unknown settings: ${issue.keys.join(', ')}` : issue.message.replace(/^Invalid input: /, '');
    throw invalidInput(`${where}${field ? `${field}: ` : 'the retention policy '}${message}`);
  }
  const v = parsed.data;
  const schedule = (v.schedule ?? DEFAULT_SCHEDULE).trim();
  const problem = scheduleProblem(schedule);
  if (problem) throw invalidInput(`${where}${problem}`);
  const rules: RetentionRules = {
    keepLast: v.keepLast ?? null,
    keepHourly: v.keepHourly ?? null,
    keepDaily: v.keepDaily ?? null,
    keepWeekly: v.keepWeekly ?? null,
    keepMonthly: v.keepMonthly ?? null,
    keepYearly: v.keepYearly ?? null,
    keepWithin: v.keepWithin ?? null,
    prefix: v.prefix ?? null,
    schedule,
  };
  // borg prune refuses to run without one; a policy that keeps nothing is not a policy.
  if (KEEP_RULES.every((r) => rules[r] === null) && rules.keepWithin === null) {
    throw invalidInput(`${where}a retention policy needs at least one of keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly or keep-within`);
  }
  return rules;
}

/** borg prune's flags for the rules, in a fixed order; the repository comes after them. */
export function pruneArguments(rules: RetentionRules): string[] {
  const args: string[] = [];
  if (rules.keepWithin !== null) args.push('--keep-within', rules.keepWithin);
  for (const r of KEEP_RULES) {
    const n = rules[r];
    if (n !== null) args.push(FLAG[r], String(n));
  }
  if (rules.prefix !== null) args.push('--glob-archives', `${rules.prefix}*`);
  return args;
}

/** The rules as a person reads them: "keep-daily 7, keep-weekly 4, prefix 'web-', at '30 3 * * *'". */
export function describeRules(rules: RetentionRules): string {
  const parts: string[] = [];
  if (rules.keepWithin !== null) parts.push(`keep-within ${rules.keepWithin}`);
  for (const r of KEEP_RULES) {
    const n = rules[r];
    if (n !== null) parts.push(`${FLAG[r].slice(2)} ${n}`);
  }
  if (rules.prefix !== null) parts.push(`prefix '${rules.prefix}'`);
  return `${parts.join(', ')}; schedule '${rules.schedule}'`;
}

/** The next scheduled run after `after`, or null. */
export function nextRun(schedule: string, after: Date): Date | null {
  try {
    return new Cron(schedule, { paused: true }).nextRun(after);
  } catch {
    return null;
  }
}

/**
 * Whether a run is due at `now`: a scheduled time has passed since the later of the last run and
 * the policy's last change. A run missed while the server was down is so due at its next start.
 */
export function isDue(policy: Pick<RetentionPolicy, 'schedule' | 'lastRunAt' | 'updatedAt'>, now: Date): boolean {
  const since = policy.lastRunAt && policy.lastRunAt > policy.updatedAt ? policy.lastRunAt : policy.updatedAt;
  const next = nextRun(policy.schedule, since);
  return next !== null && next.getTime() <= now.getTime();
}
