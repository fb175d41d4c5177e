// LDAP sign-on against a real slapd (Debian's, mdb backend, started by the test) and a real
// `borgkeep serve`: login with the group-to-role mapping (a group by DN, another by cn), the
// user listed with source ldap, a removed group refused at the next login with that user's open
// console session ended, a wrong password, an empty password (the anonymous-bind trap: this
// slapd says yes to a DN with an empty password) and filter-injection attempts refused; the bind
// password in no log and not in the database.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { BASE, SERVICE_PW, startSlapd, ldapConfigFor, type Slapd } from './ldap-fixture.js';
import { cookieFetch, writeSsoConfig } from './sso-fixtures.js';

let env: BorgkeepEnv;
let slapd: Slapd;
let url: string;
let serveLog: () => string;
const configDir = mkdtempSync(join(tmpdir(), 'bk-ldap-config-'));

beforeAll(async () => {
  slapd = await startSlapd();
  const config = writeSsoConfig({
    dir: configDir,
    publicUrl: 'http://127.0.0.1:9',
    ldap: ldapConfigFor(slapd, { [`cn=backup-admins,ou=groups,${BASE}`]: 'admin', 'backup-viewers': 'viewer' }),
  });
  env = createBorgkeepEnv('bk-ldap', 'embedded', { serveArgs: ['--config', config] });
  serveLog = (await env.frontEnd()).log;
  url = /HTTP API listening on (\S+)\/api\/v1/.exec(serveLog())![1]!;
});
afterAll(async () => {
  await env?.cleanup();
  await slapd?.close();
  rmSync(configDir, { recursive: true, force: true });
});

async function ldapLogin(name: string, password: string, jar = cookieFetch()) {
  const { response } = await jar.step(`${url}/api/v1/sso/ldap/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
  return { status: response.status, body: (await response.json()) as any, jar };
}
const session = async (jar: ReturnType<typeof cookieFetch>) => (await jar.step(`${url}/api/v1/session`)).response.status;
const WRONG = { code: 'BK_ERR_UNAUTHENTICATED', message: 'wrong user name or password' };

describe('LDAP sign-on', () => {
  it('logs in by binding as the found entry and maps groups to roles', async () => {
    const alice = await ldapLogin('alice', 'alice-password');
    expect(alice.status).toBe(200);
    expect(alice.body.user).toMatchObject({ name: 'alice', role: 'admin', source: 'ldap', hasPassword: false });
    expect(await session(alice.jar)).toBe(200);
    const bob = await ldapLogin('bob', 'bob-password');
    expect(bob.body.user).toMatchObject({ name: 'bob', role: 'viewer', source: 'ldap' });
    const users = await alice.jar.step(`${url}/api/v1/users`);
    expect(((await users.response.json()) as any).users.map((u: any) => `${u.name}:${u.source}`)).toEqual(['admin:local', 'alice:ldap', 'bob:ldap']);
    expect(await fetch(`${url}/api/v1/sso`).then((r) => r.json())).toEqual({ oidc: null, ldap: { label: 'Company directory' }, passwordLogins: 'all' });
    // A sign-on user gets no password here: it would be a way in the directory cannot take away.
    const csrf = alice.body.csrfToken as string;
    const reset = await alice.jar.step(`${url}/api/v1/users/bob/password`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: '{}' });
    expect(reset.response.status).toBe(400);
    expect(((await reset.response.json()) as any).message).toBe("'bob' signs on through the LDAP directory and has no password here");
  });

  it('refuses someone in no mapped group, in one sentence', async () => {
    expect(await ldapLogin('carol', 'carol-password')).toMatchObject({ status: 403, body: { message: 'your directory account is in no group that gives a borgkeep role; ask an admin' } });
  });

  it('refuses a wrong password and an empty one (no anonymous bind)', async () => {
    expect(await ldapLogin('bob', 'not-bobs-password')).toMatchObject({ status: 401, body: WRONG });
    expect(await ldapLogin('bob', '')).toMatchObject({ status: 401, body: WRONG });
    expect(await ldapLogin('nobody', 'whatever')).toMatchObject({ status: 401, body: WRONG });
  });

  it('refuses filter injection: the typed name is escaped', async () => {
    // Unescaped, (uid=al*) would find alice alone, and her password would log in.
    expect(await ldapLogin('al*', 'alice-password')).toMatchObject({ status: 401, body: WRONG });
    expect(await ldapLogin('*)(uid=*', 'alice-password')).toMatchObject({ status: 401, body: WRONG });
    expect(await ldapLogin('alice)(|(uid=*', 'alice-password')).toMatchObject({ status: 401, body: WRONG });
  });

  it('refuses a removed group at the next login and ends the session that was open', async () => {
    const before = await ldapLogin('alice', 'alice-password');
    expect(before.status).toBe(200);
    await slapd.modify(`dn: cn=backup-admins,ou=groups,${BASE}\nchangetype: modify\ndelete: member\nmember: uid=alice,ou=people,${BASE}\n`);
    expect(await ldapLogin('alice', 'alice-password')).toMatchObject({ status: 403 });
    expect(await session(before.jar)).toBe(401);
  });

  it('keeps the bind password out of the output, the log and the database', () => {
    expect(serveLog()).toContain(`single sign-on: LDAP with ${slapd.url}`);
    expect(serveLog()).not.toContain(SERVICE_PW);
    expect(readFileSync(join(env.dataDir, 'borgkeep.db')).includes(Buffer.from(SERVICE_PW))).toBe(false);
  });
});
