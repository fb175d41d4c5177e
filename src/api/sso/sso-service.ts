// What single sign-on decides once a source (OpenID provider, LDAP directory) has vouched for a
// person: their role from the mapping, the borgkeep user (created at the first sign-on, its role
// set again at every one), and a refusal when no mapping entry matches — which also ends that
// user's console sessions and revokes their API tokens, so someone removed from the group keeps
// nothing. Also the admin setting that turns password logins off for all but one break-glass
// account. Sessions of a user removed from the group end at their next sign-on attempt, or when
// the session's own time runs out (12 h, or 30 min idle): the server does not ask the provider
// at every request.
//
// Never: signs a person on as a local user (users are found by source and identity, not by name).

import { BorgkeepError, invalidInput } from '../../errors.js';
import type { Store } from '../../store/database.js';
import type { SsoSource } from '../../store/sso-user-store.js';
import type { User, UserRole } from '../../store/user-store.js';
import type { LdapLogin } from './ldap-login.js';
import type { OidcLogin } from './oidc-login.js';
import { mapRole, userNameFrom } from './role-mapping.js';

export const PASSWORD_LOGINS_SETTING = 'passwordLogins';

export interface SsoRuntime {
  oidc: { login: OidcLogin; roles: Record<string, UserRole>; claim: string } | null;
  ldap: { login: LdapLogin; roles: Record<string, UserRole> } | null;
}

type SsoStore = Pick<Store, 'signOnUser' | 'findSsoUser' | 'endUserAccess' | 'endLocalSessionsExcept' | 'getSetting' | 'setSetting' | 'getUserCredentialsById' | 'findUserCredentials'>;

export interface SsoService {
  readonly runtime: SsoRuntime;
  /** The user a source vouched for, with the role its values map to; refuses (and ends their access) when none maps. */
  signOn(input: { source: SsoSource; externalId: string; name: string; values: string[] }): Promise<User>;
  /** The break-glass user while password logins are off; null while they are on. */
  passwordLoginsOnlyFor(): Promise<string | null>;
  /** Turns password logins off for all but `onlyFor` (null: on for all); returns the console sessions it ended. */
  setPasswordLogins(onlyFor: string | null): Promise<number>;
}

export function createSsoService(store: SsoStore, runtime: SsoRuntime): SsoService {
  return {
    runtime,
    async signOn({ source, externalId, name, values }) {
      const mapping = source === 'oidc' ? runtime.oidc : runtime.ldap;
      if (!mapping) throw new BorgkeepError('BK_ERR_NOT_FOUND', `${source === 'oidc' ? 'OpenID Connect' : 'LDAP'} sign-on is not set up on this server`);
      const role = mapRole(values, mapping.roles);
      if (role === null) {
        const known = await store.findSsoUser(source, externalId);
        if (known) await store.endUserAccess(known.id);
        throw new BorgkeepError(
          'BK_ERR_DENIED',
          source === 'oidc'
            ? `your account is in no group that gives a borgkeep role (the '${runtime.oidc!.claim}' claim matches no mapping); ask an admin`
            : 'your directory account is in no group that gives a borgkeep role; ask an admin',
        );
      }
      return store.signOnUser({ source, externalId, name: userNameFrom(name), role });
    },

    async passwordLoginsOnlyFor() {
      const setting = await store.getSetting<{ onlyFor: string | null }>(PASSWORD_LOGINS_SETTING);
      return setting?.onlyFor ?? null;
    },

    async setPasswordLogins(onlyFor) {
      if (onlyFor === null) {
        await store.setSetting(PASSWORD_LOGINS_SETTING, { onlyFor: null });
        return 0;
      }
      const found = await store.findUserCredentials(onlyFor);
      if (!found) throw invalidInput(`there is no user named '${onlyFor}' to keep as the break-glass account`);
      if (found.user.source !== 'local' || found.passwordHash === null) {
        throw invalidInput(`the break-glass account must be a local user with a password; '${onlyFor}' is not`);
      }
      if (found.user.role !== 'admin') throw invalidInput(`the break-glass account must be an admin; '${onlyFor}' is ${found.user.role}`);
      await store.setSetting(PASSWORD_LOGINS_SETTING, { onlyFor });
      return store.endLocalSessionsExcept(onlyFor);
    },
  };
}
