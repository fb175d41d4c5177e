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

describe('the sso part of the serve config', async () => {
  const { parseServeConfig } = await import('../../gateway/serve-config.js');
  const oidc = { issuer: 'https://id.example.org', clientId: 'borgkeep', clientSecretFile: '/etc/borgkeep/oidc-secret', roles: { admins: 'admin' } };
  const ldap = { url: 'ldaps://ldap.example.org', bindDn: 'cn=borgkeep,dc=example,dc=org', bindPasswordFile: '/etc/borgkeep/ldap', userBase: 'ou=people,dc=example,dc=org', roles: { admins: 'admin' } };
  const parse = (file: Record<string, unknown>) => parseServeConfig({}, {}, file);
  it('takes a full config and fills in the defaults', () => {
    const c = parse({ publicUrl: 'https://backup.example.org/', sso: { oidc, ldap } });
    expect(c.publicUrl).toBe('https://backup.example.org');
    expect(c.sso?.oidc).toMatchObject({ claim: 'groups', nameClaim: 'preferred_username', label: 'single sign-on' });
    expect(c.sso?.ldap).toMatchObject({ userFilter: '(uid={user})', nameAttribute: 'uid', startTls: false });
  });
  it('says what is wrong in one sentence', () => {
    expect(() => parse({ sso: { oidc } })).toThrow("config file: OpenID Connect sign-on needs publicUrl, the console's address, to make its redirect URL");
    expect(() => parse({ publicUrl: 'https://b.example.org', sso: { oidc: { ...oidc, issuer: 'http://id.example.org' } } })).toThrow(
      'config file, sso.oidc.issuer: is not an https:// issuer URL (plain http only on this machine, for tests)',
    );
    expect(() => parse({ publicUrl: 'https://b.example.org', sso: { oidc: { ...oidc, roles: {} } } })).toThrow(
      'config file, sso.oidc.roles: needs at least one value -> role entry; without one nobody could sign on',
    );
    expect(() => parse({ publicUrl: 'https://b.example.org', sso: { oidc: { ...oidc, roles: { admins: 'root' } } } })).toThrow(
      'config file, sso.oidc.roles.admins: is not a role (admin, operator or viewer)',
    );
    expect(() => parse({ sso: { ldap: { ...ldap, url: 'ldap://ldap.example.org' } } })).toThrow(
      'config file, sso.ldap.url: plain ldap:// to another machine sends passwords in clear: use ldaps:// or startTls',
    );
    expect(() => parse({ sso: { ldap: { ...ldap, userFilter: '(uid=x)' } } })).toThrow('config file, sso.ldap.userFilter: needs {user} where the typed user name goes (it is escaped)');
    const { bindDn: _omitted, ...noBindDn } = ldap;
    expect(() => parse({ sso: { ldap: noBindDn } })).toThrow('config file, sso.ldap.bindDn: is missing');
    expect(() => parse({ sso: { ldap: { ...ldap, bindPassword: 'inline' } } })).toThrow(/unknown settings|bindPassword/);
  });
});
