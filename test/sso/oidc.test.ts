// OpenID Connect sign-on end to end over HTTP: a real OpenID provider (oidc-provider on
// loopback) and a real `borgkeep serve` with a config file naming it; fetch follows the
// redirects and fills in the provider's login form, as a browser would. Covers the
// authorization-code flow with PKCE, state and nonce; users created at the first sign-on with
// the mapped role and the role set again at every one; no matching group: refused, with that
// user's console sessions and API tokens ended; a callback the browser did not start refused;
// a provider name equal to a local user's refused; the client secret in no log and not in the
// database; password logins turned off for all but a break-glass account.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { CLIENT_SECRET, cookieFetch, freePort, startOidcProvider, writeSsoConfig, type OidcFixture } from './sso-fixtures.js';
import { firstAdminPassword } from '../helpers/first-admin.js';

let env: BorgkeepEnv;
let idp: OidcFixture;
let url: string;
let adminPassword: string;
let serveLog: () => string;
const configDir = mkdtempSync(join(tmpdir(), 'bk-oidc-config-'));

beforeAll(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  idp = await startOidcProvider(`${url}/api/v1/sso/oidc/callback`);
  idp.accounts.set('alice-sub', { preferred_username: 'alice', groups: ['Backup-Admins', 'staff'] });
  idp.accounts.set('bob-sub', { preferred_username: 'bob', groups: ['backup-viewers'] });
  idp.accounts.set('carol-sub', { preferred_username: 'carol', groups: ['staff'] });
  idp.accounts.set('dave-sub', { preferred_username: 'admin', groups: ['backup-admins'] });
  const config = writeSsoConfig({ dir: configDir, publicUrl: url, oidc: { issuer: idp.issuer, roles: { 'backup-admins': 'admin', 'backup-viewers': 'viewer' } } });
  // After the harness's own flags: the last --http-listen wins.
  env = createBorgkeepEnv('bk-oidc', 'embedded', { serveArgs: ['--http-listen', `127.0.0.1:${port}`, '--config', config] });
  serveLog = (await env.frontEnd()).log;
  adminPassword = firstAdminPassword(env.dataDir);
});
afterAll(async () => {
  await env?.cleanup();
  await idp?.close();
  rmSync(configDir, { recursive: true, force: true });
});

/** Starts a sign-on at borgkeep, logs in at the provider as `account`, and follows the redirects back. */
async function signOn(account: string, jar = cookieFetch()) {
  const toForm = await jar.follow(`${url}/api/v1/sso/oidc/start`);
  expect(toForm.response.status).toBe(200);
  const formUrl = toForm.visited.at(-1)!;
  const action = new URL(/action="([^"]+)"/.exec(await toForm.response.text())![1]!, formUrl).href;
  const posted = await jar.step(action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ prompt: 'login', login: account, password: 'whatever' }).toString(),
  });
  const back = await jar.follow(posted.location!);
  const landed = back.visited.at(-1)!;
  const session = await api(jar, 'GET', '/api/v1/session');
  return { jar, authorizationUrl: toForm.visited[1]!, visited: [...toForm.visited, ...back.visited], landed, session };
}

async function api(jar: ReturnType<typeof cookieFetch>, method: string, path: string, body?: unknown, csrf?: string) {
  const { response } = await jar.step(`${url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(csrf && { 'x-csrf-token': csrf }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as any) : undefined };
}

const signonError = (landed: string) => new URL(landed).searchParams.get('signon_error');

describe('OpenID Connect sign-on', () => {
  it('runs the authorization-code flow with PKCE, state and nonce and creates the user with the mapped role', async () => {
    const r = await signOn('alice-sub');
    const auth = new URL(r.authorizationUrl);
    expect(auth.origin).toBe(idp.issuer);
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    expect(auth.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auth.searchParams.get('state')).toBeTruthy();
    expect(auth.searchParams.get('nonce')).toBeTruthy();
    expect(auth.searchParams.get('redirect_uri')).toBe(`${url}/api/v1/sso/oidc/callback`);
    expect(r.landed).toBe(`${url}/`);
    expect(r.session.status).toBe(200);
    expect(r.session.body.user).toMatchObject({ name: 'alice', role: 'admin', source: 'oidc', hasPassword: false });
    const users = await api(r.jar, 'GET', '/api/v1/users');
    expect(users.body.users.map((u: { name: string; source: string }) => `${u.name}:${u.source}`)).toEqual(['admin:local', 'alice:oidc']);
  });

  it('maps another group to viewer, and sets the role again at every sign-on', async () => {
    expect((await signOn('bob-sub')).session.body.user).toMatchObject({ name: 'bob', role: 'viewer', source: 'oidc' });
    idp.accounts.set('bob-sub', { preferred_username: 'bob', groups: ['backup-viewers', 'backup-admins'] });
    expect((await signOn('bob-sub')).session.body.user).toMatchObject({ name: 'bob', role: 'admin' });
    idp.accounts.set('bob-sub', { preferred_username: 'bob', groups: ['backup-viewers'] });
    expect((await signOn('bob-sub')).session.body.user).toMatchObject({ name: 'bob', role: 'viewer' });
  });

  it('refuses an account in no mapped group, in one sentence, and creates no user', async () => {
    const r = await signOn('carol-sub');
    expect(signonError(r.landed)).toBe("your account is in no group that gives a borgkeep role (the 'groups' claim matches no mapping); ask an admin");
    expect(r.session.status).toBe(401);
    expect(r.jar.cookie(url, 'bk_session')).toBeUndefined();
  });

  it('refuses a removed group at the next sign-on and ends that user\'s console sessions and API tokens', async () => {
    const first = await signOn('alice-sub');
    const csrf = first.session.body.csrfToken as string;
    const token = (await api(first.jar, 'POST', '/api/v1/tokens', { name: 'alice-cli', role: 'viewer' }, csrf)).body.token as string;
    expect((await fetch(`${url}/api/v1/session`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    idp.accounts.set('alice-sub', { preferred_username: 'alice', groups: ['staff'] });
    const refused = await signOn('alice-sub');
    expect(signonError(refused.landed)).toMatch(/^your account is in no group that gives a borgkeep role/);
    // The session that was open before is gone, and so is the token.
    expect((await api(first.jar, 'GET', '/api/v1/session')).status).toBe(401);
    expect((await fetch(`${url}/api/v1/session`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    idp.accounts.set('alice-sub', { preferred_username: 'alice', groups: ['backup-admins'] });
  });

  it('refuses a callback this browser did not start (no state cookie)', async () => {
    const jar = cookieFetch();
    const toForm = await jar.follow(`${url}/api/v1/sso/oidc/start`);
    const action = new URL(/action="([^"]+)"/.exec(await toForm.response.text())![1]!, toForm.visited.at(-1)!).href;
    const posted = await jar.step(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'prompt=login&login=alice-sub&password=x' });
    // Follow the provider's redirects up to the callback, then hand the callback to another browser.
    let next = posted.location!;
    while (!next.startsWith(`${url}/api/v1/sso/oidc/callback`)) next = (await jar.step(next)).location!;
    expect(new URL(next).searchParams.get('code')).toBeTruthy();
    const other = cookieFetch();
    const r = await other.follow(next);
    expect(signonError(r.visited.at(-1)!)).toBe('this sign-on was not started here or took longer than ten minutes; start it again');
    expect((await api(other, 'GET', '/api/v1/session')).status).toBe(401);
  });

  it("never signs a provider account on as the local user of the same name", async () => {
    const r = await signOn('dave-sub');
    expect(signonError(r.landed)).toBe("the user name 'admin' already belongs to another borgkeep user; rename that user or sign on with another name");
    expect(r.session.status).toBe(401);
  });

  it('turns password logins off for all but the break-glass account', async () => {
    const admin = cookieFetch();
    const login = await api(admin, 'POST', '/api/v1/session', { name: 'admin', password: adminPassword });
    expect(login.status).toBe(200);
    const csrf = login.body.csrfToken as string;
    expect((await api(admin, 'POST', '/api/v1/users', { name: 'localviewer', role: 'viewer', password: 'local viewer password' }, csrf)).status).toBe(201);
    const bad = await api(admin, 'PUT', '/api/v1/sso/password-logins', { onlyFor: 'localviewer' }, csrf);
    expect(bad).toMatchObject({ status: 400, body: { message: "the break-glass account must be an admin; 'localviewer' is viewer" } });
    expect((await api(admin, 'PUT', '/api/v1/sso/password-logins', { onlyFor: 'alice' }, csrf)).body.message).toBe("the break-glass account must be a local user with a password; 'alice' is not");
    const viewer = cookieFetch();
    expect((await api(viewer, 'POST', '/api/v1/session', { name: 'localviewer', password: 'local viewer password' })).status).toBe(200);
    expect(await api(admin, 'PUT', '/api/v1/sso/password-logins', { onlyFor: 'admin' }, csrf)).toMatchObject({ status: 200, body: { onlyFor: 'admin', endedSessions: 1 } });
    // The viewer's open session ended; a new password login is refused; the break-glass admin's works.
    expect((await api(viewer, 'GET', '/api/v1/session')).status).toBe(401);
    expect(await api(cookieFetch(), 'POST', '/api/v1/session', { name: 'localviewer', password: 'local viewer password' })).toMatchObject({
      status: 403,
      body: { code: 'BK_ERR_DENIED', message: 'password logins are turned off on this server; use single sign-on' },
    });
    expect((await api(admin, 'GET', '/api/v1/session')).status).toBe(200);
    expect((await api(cookieFetch(), 'POST', '/api/v1/session', { name: 'admin', password: adminPassword })).status).toBe(200);
    expect((await api(cookieFetch(), 'GET', '/api/v1/sso')).body).toEqual({ oidc: { label: 'Test IdP', startUrl: '/api/v1/sso/oidc/start' }, ldap: null, passwordLogins: 'break-glass' });
    // Sign-on still works.
    expect((await signOn('bob-sub')).session.status).toBe(200);
    expect((await api(admin, 'PUT', '/api/v1/sso/password-logins', { onlyFor: null }, csrf)).status).toBe(200);
    expect((await api(cookieFetch(), 'POST', '/api/v1/session', { name: 'localviewer', password: 'local viewer password' })).status).toBe(200);
  });

  it('keeps the client secret out of the output, the log and the database, and prints the redirect URL', async () => {
    expect(serveLog()).toContain(`single sign-on: OpenID Connect with ${idp.issuer} (redirect URL ${url}/api/v1/sso/oidc/callback)`);
    expect(serveLog()).not.toContain(CLIENT_SECRET);
    expect(readFileSync(join(env.dataDir, 'borgkeep.db')).includes(Buffer.from(CLIENT_SECRET))).toBe(false);
  });
});
