// The CLI's sentence for a field the API's schema refused, so the console (which shows the API's
// message) and the CLI word a bad quota, interval, name, role, backups per day, address range or
// expiry the same way, never in the schema library's words. Each sentence comes from the store's
// own check (the one the CLI meets), run on the value the request sent; when that check finds
// nothing wrong (a value of the wrong type, say) the field's own fixed sentence is used. It must
// never echo more of the input than the store's sentence does.

import { isBorgkeepError } from '../errors.js';
import { checkGrantTerms, checkRole } from '../store/grant-terms.js';
import { checkName, type NamedThing } from '../store/names.js';
import { checkInterval, checkQuota } from '../store/repository-store.js';
import { checkUserRole, USER_ROLES } from '../store/user-store.js';
import { parseQuota, parseTime } from '../cli/input.js';
import { ROLES } from '../store/types.js';

/** The store's sentence for `check(value)`, or null when it accepts the value. */
function sentenceOf(check: () => unknown): string | null {
  try {
    check();
    return null;
  } catch (error) {
    if (isBorgkeepError(error)) return error.message;
    throw error;
  }
}

const asNumber = (v: unknown): number => (typeof v === 'number' ? v : Number.NaN);
const shown = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? String(v));
const grantTerms = (more: Partial<Parameters<typeof checkGrantTerms>[0]>) => () =>
  checkGrantTerms({ role: 'append', writesPerDay: null, fromCidrs: null, expiresAt: null, ...more }, new Date());

/** What a `name` field names, from the route's URL. */
function thingOf(url: string): NamedThing | null {
  if (url.startsWith('/repositories')) return 'repository';
  if (url.startsWith('/keys')) return 'key';
  if (url.startsWith('/users')) return 'user';
  if (url.startsWith('/tokens') || url.startsWith('/account/tokens')) return 'token';
  if (url.startsWith('/alert-channels')) return 'alert channel';
  return null;
}

/**
 * The CLI's sentence for the refused field at `path` of `input` (a request's body, query or path
 * parameters) on the route `url`; null for fields without one (the caller words those itself).
 */
export function cliSentence(url: string, path: readonly PropertyKey[], input: unknown, allowed?: readonly unknown[]): string | null {
  const field = [...path].reverse().find((p): p is string => typeof p === 'string');
  if (field === undefined) return null;
  let value: unknown = input;
  for (const p of path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[p] : undefined;
  const at = path.indexOf(field);
  const whole = path.slice(0, at + 1).reduce<unknown>((v, p) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined), input);
  switch (field) {
    case 'quotaBytes':
      // A whole number of bytes: the CLI's own sentence for that text (`--quota 5000000`).
      return (Number.isSafeInteger(value) ? sentenceOf(() => parseQuota(String(value))) : null) ?? sentenceOf(() => checkQuota(asNumber(value)));
    case 'expectedIntervalSeconds':
      return sentenceOf(() => checkInterval(typeof value === 'number' ? value : (shown(value) as unknown as number)));
    case 'writesPerDay':
      return sentenceOf(grantTerms({ writesPerDay: typeof value === 'number' ? value : (shown(value) as unknown as number) }));
    case 'fromCidrs': {
      if (!Array.isArray(whole)) return 'the allowed address ranges must be a list of addresses or CIDR ranges, such as ["192.0.2.0/24"]';
      return sentenceOf(grantTerms({ fromCidrs: whole.map((c) => shown(c)) }));
    }
    case 'expiresAt': {
      // The API takes only a date-time with a zone (the CLI also takes a date or "30d"): the
      // CLI's sentence when it is one for that, else the same sentence naming the one form.
      const text = shown(value);
      const forms = `use a date-time with a zone, such as 2030-12-31T18:00Z`;
      let date: Date;
      try {
        date = parseTime(text, new Date());
      } catch (error) {
        if (isBorgkeepError(error) && /has no time zone|is not a valid date/.test(error.message)) return error.message;
        return `'${text}' is not a time; ${forms}`;
      }
      return sentenceOf(grantTerms({ expiresAt: date })) ?? `'${text}' is not a date-time with a zone; ${forms}`;
    }
    case 'role': {
      const text = shown(value);
      const same = (roles: readonly string[]) => allowed !== undefined && allowed.length === roles.length && roles.every((r) => allowed.includes(r));
      if (same(USER_ROLES)) return sentenceOf(() => checkUserRole(text));
      if (same(ROLES)) return sentenceOf(() => checkRole(text));
      return null;
    }
    case 'name':
    case 'repository': {
      const thing = field === 'repository' ? 'repository' : thingOf(url);
      if (thing === null) return null;
      return sentenceOf(() => checkName(thing, typeof value === 'string' ? value : ''));
    }
    default:
      return null;
  }
}
