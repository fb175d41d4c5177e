// LDAP sign-on with ldapts: bind as the service DN, find the one entry the user filter names
// (the typed name escaped per RFC 4515), prove the password by binding as that entry's DN, and
// read the person's groups (a group search under groupBase, or the entry's memberOf).
//
// Never: binds with an empty password (an LDAP server treats a DN with an empty password as an
// anonymous bind and says yes), says whether a name exists (no entry, two entries and a wrong
// password are the same sentence), logs or returns the bind password.

import { BorgkeepError } from '../../errors.js';
import { fillFilter } from './ldap-filter.js';
import type { LdapConfig } from './sso-config.js';

export interface LdapIdentity {
  dn: string;
  name: string;
  /** Group DNs and their cn values. */
  groups: string[];
}

export interface LdapLogin {
  readonly label: string;
  authenticate(name: string, password: string): Promise<LdapIdentity>;
}

const WRONG = 'wrong user name or password';
const wrong = () => new BorgkeepError('BK_ERR_UNAUTHENTICATED', WRONG);
const TIMEOUT_MS = 10_000;

const values = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));

/** The value of a DN's first RDN (cn=backup-admins,ou=groups,... -> backup-admins). */
const firstRdnValue = (dn: string): string | null => /^[^=,]+=((?:\\.|[^,\\])*)/.exec(dn)?.[1] ?? null;

export function createLdapLogin(config: LdapConfig & { bindPassword: string }): LdapLogin {
  const connect = async () => {
    const { Client } = await import('ldapts');
    const client = new Client({ url: config.url, timeout: TIMEOUT_MS, connectTimeout: TIMEOUT_MS });
    if (config.startTls) await client.startTLS({});
    return client;
  };
  const unreachable = (error: unknown) =>
    new BorgkeepError('BK_ERR_INTERNAL', `the LDAP directory ${config.url} cannot be used: ${(error as Error).message}`);

  return {
    label: config.label,
    async authenticate(name, password) {
      if (name === '' || password === '') throw wrong();
      const service = await connect().catch((e: unknown) => {
        throw unreachable(e);
      });
      try {
        try {
          await service.bind(config.bindDn, config.bindPassword);
        } catch (error) {
          throw unreachable(new Error(`the bind as ${config.bindDn} failed (${(error as Error).message})`));
        }
        const attributes = [config.nameAttribute, 'memberOf'];
        const { searchEntries } = await service.search(config.userBase, { scope: 'sub', filter: fillFilter(config.userFilter, 'user', name), attributes });
        if (searchEntries.length !== 1) throw wrong();
        const entry = searchEntries[0]!;
        const person = await connect().catch((e: unknown) => {
          throw unreachable(e);
        });
        try {
          await person.bind(entry.dn, password);
        } catch (error) {
          if ((error as Error).name === 'InvalidCredentialsError') throw wrong();
          throw unreachable(error);
        } finally {
          await person.unbind().catch(() => undefined);
        }
        let groups: string[];
        if (config.groupBase !== undefined) {
          const found = await service.search(config.groupBase, { scope: 'sub', filter: fillFilter(config.groupFilter, 'dn', entry.dn), attributes: ['cn'] });
          groups = found.searchEntries.flatMap((g) => [g.dn, ...values(g.cn)]);
        } else {
          groups = values(entry.memberOf).flatMap((dn) => [dn, ...(firstRdnValue(dn) === null ? [] : [firstRdnValue(dn)!])]);
        }
        const shown = values(entry[config.nameAttribute])[0] ?? name;
        return { dn: entry.dn, name: shown, groups };
      } finally {
        await service.unbind().catch(() => undefined);
      }
    },
  };
}
