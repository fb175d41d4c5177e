// From what a sign-on source says about a person (an OpenID claim's values, the LDAP groups they
// are in) to a borgkeep role, through the mapping in the serve config. Several matching values:
// the highest role wins. No matching value: no role, so no login (the caller says so in one
// sentence). Pure, so the rules are tested without a provider.
//
// Never: gives a role to someone no mapping entry names (there is no default role).

import type { UserRole } from '../../store/user-store.js';

const RANK: Record<UserRole, number> = { viewer: 1, operator: 2, admin: 3 };

/** Values compare without regard to case (LDAP DNs and group names are case-insensitive; so are most IdPs' group names). */
const norm = (value: string) => value.trim().toLowerCase();

/** The role the values map to, or null when none of them is in the mapping. */
export function mapRole(values: readonly string[], roles: Readonly<Record<string, UserRole>>): UserRole | null {
  const table = new Map(Object.entries(roles).map(([value, role]) => [norm(value), role]));
  let best: UserRole | null = null;
  for (const value of values) {
    const role = table.get(norm(value));
    if (role && (best === null || RANK[role] > RANK[best])) best = role;
  }
  return best;
}

/** A claim's value as a list of strings: a string, a list of strings, or absent (ignored: numbers, objects). */
export function claimValues(claim: unknown): string[] {
  if (typeof claim === 'string') return [claim];
  if (Array.isArray(claim)) return claim.filter((v): v is string => typeof v === 'string');
  return [];
}

/**
 * A sign-on name as a borgkeep user name: an e-mail's local part is not taken (two domains could
 * share it); characters outside the naming rule become '_'. The result still goes through
 * checkName when the user is created.
 */
export function userNameFrom(raw: string): string {
  return raw.trim().replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]+/, '').slice(0, 64);
}
