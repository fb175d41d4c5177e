// A real OpenLDAP server for the LDAP sign-on tests: Debian's slapd with the mdb backend in a
// temporary directory, on a loopback port, loaded with slapadd from an LDIF of people, groups
// (groupOfNames) and a service account borgkeep searches as. `allow bind_anon_dn` makes it
// answer a DN with an empty password as an anonymous bind that succeeds, as some directories do:
// the trap borgkeep must not fall into.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../helpers/borgkeep-env.js';
import { freePort } from './sso-fixtures.js';

export const BASE = 'dc=example,dc=org';
export const ROOT_DN = `cn=admin,${BASE}`;
const ROOT_PW = 'root-password-for-tests';
export const SERVICE_DN = `cn=borgkeep,ou=services,${BASE}`;
export const SERVICE_PW = 'service-bind-password-never-logged';

const person = (uid: string, password: string) => `dn: uid=${uid},ou=people,${BASE}
objectClass: inetOrgPerson
uid: ${uid}
cn: ${uid}
sn: ${uid}
userPassword: ${password}
`;

/** The `sso.ldap` config for this directory: the service bind, people and groups, `roles` as given. */
export function ldapConfigFor(slapd: Slapd, roles: Record<string, string>) {
  return {
    url: slapd.url,
    bindDn: SERVICE_DN,
    bindPassword: SERVICE_PW,
    userBase: `ou=people,${BASE}`,
    userFilter: '(&(objectClass=inetOrgPerson)(uid={user}))',
    groupBase: `ou=groups,${BASE}`,
    roles,
  };
}

export interface Slapd {
  url: string;
  /** Runs ldapmodify as the directory's root with this LDIF. */
  modify(ldif: string): Promise<void>;
  close(): Promise<void>;
}

export async function startSlapd(): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'bk-slapd-'));
  mkdirSync(join(dir, 'db'));
  const conf = join(dir, 'slapd.conf');
  writeFileSync(
    conf,
    `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
allow bind_anon_dn
database mdb
maxsize 10485760
suffix "${BASE}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PW}
directory ${dir}/db
access to attrs=userPassword by anonymous auth by self write by * none
access to * by users read by * none
`,
  );
  const ldif = `dn: ${BASE}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,${BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,${BASE}
objectClass: organizationalUnit
ou: groups

dn: ou=services,${BASE}
objectClass: organizationalUnit
ou: services

dn: ${SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: borgkeep
userPassword: ${SERVICE_PW}

${person('alice', 'alice-password')}
${person('bob', 'bob-password')}
${person('carol', 'carol-password')}
dn: cn=backup-admins,ou=groups,${BASE}
objectClass: groupOfNames
cn: backup-admins
member: uid=alice,ou=people,${BASE}
member: cn=borgkeep,ou=services,${BASE}

dn: cn=backup-viewers,ou=groups,${BASE}
objectClass: groupOfNames
cn: backup-viewers
member: uid=bob,ou=people,${BASE}

dn: cn=staff,ou=groups,${BASE}
objectClass: groupOfNames
cn: staff
member: uid=carol,ou=people,${BASE}
member: uid=alice,ou=people,${BASE}
`;
  writeFileSync(join(dir, 'data.ldif'), ldif);
  const added = await run('slapadd', ['-f', conf, '-l', join(dir, 'data.ldif')]);
  if (added.code !== 0) throw new Error(`slapadd failed: ${added.stderr}`);
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  // -d keeps slapd in the foreground, so it is this test's child and ends with it.
  const child: ChildProcess = spawn('/usr/sbin/slapd', ['-h', `${url}/`, '-f', conf, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    const probe = await run('ldapsearch', ['-x', '-H', url, '-D', ROOT_DN, '-w', ROOT_PW, '-b', BASE, '-s', 'base', '(objectClass=*)', 'dn']);
    if (probe.code === 0) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`slapd did not start: ${err}${probe.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async modify(text) {
      const r = await run('ldapmodify', ['-x', '-H', url, '-D', ROOT_DN, '-w', ROOT_PW], { input: text });
      if (r.code !== 0) throw new Error(`ldapmodify failed: ${r.stderr}`);
    },
    async close() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
