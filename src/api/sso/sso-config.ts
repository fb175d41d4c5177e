// The single sign-on part of the serve config file (`sso`): the OpenID provider and the LDAP
// directory, each with its role mapping. Addresses live in the config, never in the database;
// the client secret and the bind password are read from files (clientSecretFile,
// bindPasswordFile), so they never appear in argv, the environment, the config file or a log.
//
// Never: accepts plain http to a provider or plain ldap to a directory that is not on this
// machine (a password or a code would cross the network in clear), or a mapping to no role.

import { z } from 'zod';
import { USER_ROLES } from '../../store/user-store.js';

const role = z.enum(USER_ROLES, { error: 'is not a role (admin, operator or viewer)' });
const roles = z
  .record(z.string().min(1, 'needs a value to match'), role)
  .refine((r) => Object.keys(r).length > 0, 'needs at least one value -> role entry; without one nobody could sign on');
const filePath = z.string().min(1, 'needs a file name');
const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

const urlWith = (schemes: string[], clearText: string, what: string) =>
  z.string().refine(
    (text) => {
      try {
        const u = new URL(text);
        return schemes.includes(u.protocol) && (u.protocol !== clearText || LOOPBACK.has(u.hostname));
      } catch {
        return false;
      }
    },
    { message: what },
  );

export const oidcConfigSchema = z
  .object({
    issuer: urlWith(['https:', 'http:'], 'http:', 'is not an https:// issuer URL (plain http only on this machine, for tests)').describe(
      "the provider's issuer URL; its /.well-known/openid-configuration is read at the first sign-on",
    ),
    clientId: z.string().min(1, 'needs the client id the provider gave borgkeep'),
    clientSecretFile: filePath.describe('file holding the client secret (read at start; never logged)'),
    label: z.string().min(1).max(60).describe('the sign-on button says "Sign in with LABEL"').default('single sign-on'),
    scopes: z.string().describe('scopes asked for; add the one that brings the role claim (often groups)').default('openid profile email groups'),
    claim: z.string().min(1).describe('the claim whose value(s) map to a role, from the ID token or the userinfo').default('groups'),
    nameClaim: z.string().min(1).describe("the claim that names the user in borgkeep (created at the first sign-on)").default('preferred_username'),
    roles: roles.describe('claim value -> role (admin, operator, viewer); the highest wins; no matching value: no login'),
  })
  .strict();

export const ldapConfigSchema = z
  .object({
    url: urlWith(['ldaps:', 'ldap:'], '', 'is not an ldaps:// (or ldap://) URL').describe('the directory, e.g. ldaps://ldap.example.org'),
    startTls: z.boolean().describe('upgrade an ldap:// connection with StartTLS first').default(false),
    bindDn: z.string().min(1, 'needs the DN borgkeep searches as'),
    bindPasswordFile: filePath.describe("file holding bindDn's password (read at start; never logged)"),
    userBase: z.string().min(1, 'needs the base DN users are searched under'),
    userFilter: z
      .string()
      .refine((f) => f.includes('{user}'), 'needs {user} where the typed user name goes (it is escaped)')
      .describe('search filter with {user}, e.g. (&(objectClass=inetOrgPerson)(uid={user}))')
      .default('(uid={user})'),
    nameAttribute: z.string().min(1).describe("the entry's attribute that names the user in borgkeep").default('uid'),
    groupBase: z.string().min(1).describe('search groups under this DN with groupFilter; left out: the entry\'s memberOf').optional(),
    groupFilter: z
      .string()
      .refine((f) => f.includes('{dn}'), "needs {dn} where the user's DN goes")
      .describe("group search filter with {dn}, e.g. (member={dn})")
      .default('(|(member={dn})(uniqueMember={dn}))'),
    label: z.string().min(1).max(60).describe('what the login page calls the directory').default('directory'),
    roles: roles.describe('group DN or group cn -> role; the highest wins; no matching group: no login'),
  })
  .strict()
  .refine((c) => !c.url.startsWith('ldap:') || c.startTls || LOOPBACK.has(new URL(c.url).hostname), {
    message: 'plain ldap:// to another machine sends passwords in clear: use ldaps:// or startTls',
    path: ['url'],
  });

export const ssoConfigSchema = z
  .object({
    oidc: oidcConfigSchema.optional(),
    ldap: ldapConfigSchema.optional(),
  })
  .strict();

export type OidcConfig = z.output<typeof oidcConfigSchema>;
export type LdapConfig = z.output<typeof ldapConfigSchema>;
export type SsoConfig = z.output<typeof ssoConfigSchema>;

/** The console's public address must be a plain origin: the OpenID redirect URL is made from it. */
export const publicUrlSchema = z
  .string()
  .refine((text) => {
    try {
      const u = new URL(text);
      return (u.protocol === 'https:' || u.protocol === 'http:') && u.search === '' && u.hash === '';
    } catch {
      return false;
    }
  }, 'is not the console\'s address, like https://backup.example.org')
  .transform((text) => text.replace(/\/+$/, ''));
