// The pure parts of single sign-on: the claim/group-to-role mapping and LDAP filter escaping.
import { describe, expect, it } from 'vitest';
import { escapeFilterValue, fillFilter } from './ldap-filter.js';
import { claimValues, mapRole, userNameFrom } from './role-mapping.js';

describe('mapRole', () => {
  const roles = { 'Backup-Admins': 'admin', 'backup-ops': 'operator', everyone: 'viewer' } as const;
  it('takes the highest role any value maps to, ignoring case', () => {
    expect(mapRole(['everyone', 'backup-admins'], roles)).toBe('admin');
    expect(mapRole(['everyone'], roles)).toBe('viewer');
    expect(mapRole(['BACKUP-OPS', 'everyone'], roles)).toBe('operator');
  });
  it('gives no role when no value is in the mapping (no default role)', () => {
    expect(mapRole([], roles)).toBeNull();
    expect(mapRole(['staff'], roles)).toBeNull();
  });
  it('reads a claim as a string or a list of strings', () => {
    expect(claimValues('a')).toEqual(['a']);
    expect(claimValues(['a', 3, 'b'])).toEqual(['a', 'b']);
    expect(claimValues(undefined)).toEqual([]);
    expect(claimValues({ a: 1 })).toEqual([]);
  });
  it('makes a user name of a sign-on name', () => {
    expect(userNameFrom('alice@example.org')).toBe('alice_example.org');
    expect(userNameFrom('.x y')).toBe('x_y');
  });
});

describe('LDAP filters', () => {
  it('escapes the characters that could change a filter (RFC 4515)', () => {
    expect(escapeFilterValue('*)(uid=*')).toBe('\\2a\\29\\28uid=\\2a');
    expect(escapeFilterValue('a\\b\u0000')).toBe('a\\5cb\\00');
    expect(escapeFilterValue('alice')).toBe('alice');
  });
  it('fills every placeholder with the escaped value', () => {
    expect(fillFilter('(&(objectClass=person)(|(uid={user})(mail={user})))', 'user', 'al*')).toBe('(&(objectClass=person)(|(uid=al\\2a)(mail=al\\2a)))');
    expect(fillFilter('(member={dn})', 'dn', 'cn=a (b),dc=x')).toBe('(member=cn=a \\28b\\29,dc=x)');
  });
});
