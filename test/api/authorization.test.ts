// The authorisation matrix: each role (and an admin's token scoped down to viewer) against each
// state-changing endpoint, plus the admin-only listing. Every case gets fresh fixtures with
// names of its own, so an allowed call really succeeds and a refused one changed nothing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UserRole } from '../../src/store/user-store.js';
import { ed25519Line } from '../support/temp-store.js';
import { checkPullHostInput } from '../../src/pull/host-input.js';
import { PASSWORD, startApi, type ApiClient, type ApiHarness } from './api-harness.js';

type Caller = 'viewer' | 'operator' | 'admin' | 'viewer-token';
const RANK: Record<UserRole, number> = { viewer: 1, operator: 2, admin: 3 };

let h: ApiHarness;
const callers = {} as Record<Caller, ApiClient>;
let n = 0;
const unique = (prefix: string) => `${prefix}${++n}`;

beforeAll(async () => {
  h = await startApi();
  callers.viewer = await h.userClient('vic', 'viewer');
  callers.operator = await h.userClient('olga', 'operator');
  callers.admin = await h.userClient('ann', 'admin');
  const scoped = (await callers.admin.call('POST', '/api/v1/tokens', { name: 'scoped', role: 'viewer' })).body.token;
  callers['viewer-token'] = h.client({ bearer: scoped });
  // One repository the real borg client initialised, for audits and approvals.
  await h.temp.store.createRepository({ name: 'audited', quotaBytes: null });
  const dir = h.temp.store.paths.repository((await h.temp.store.getRepository('audited')).dirName);
  execFileSync('borg', ['init', '--encryption=none', dir], { stdio: 'pipe' });
  // One unencrypted repository with an archive, for browsing (no key needed to read it).
  await h.temp.store.createRepository({ name: 'browsed', quotaBytes: null });
  const browsed = h.temp.store.paths.repository((await h.temp.store.getRepository('browsed')).dirName);
  const tree = mkdtempSync(join(tmpdir(), 'browsed-'));
  // JSON content, so the matrix's client (which parses every answer) can read its download too.
  writeFileSync(join(tree, 'file.txt'), '{"content":1}\n');
  const borgEnv = { ...process.env, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_BASE_DIR: tree };
  execFileSync('borg', ['init', '--encryption=none', browsed], { stdio: 'pipe', env: borgEnv });
  execFileSync('borg', ['create', `${browsed}::a1`, 'file.txt'], { stdio: 'pipe', env: borgEnv, cwd: tree });
  // The same, in a repository whose admin lets viewers browse its archives (names only).
  const shownRepo = await h.temp.store.createRepository({ name: 'shown', quotaBytes: null });
  const shown = h.temp.store.paths.repository(shownRepo.dirName);
  execFileSync('borg', ['init', '--encryption=none', shown], { stdio: 'pipe', env: borgEnv });
  execFileSync('borg', ['create', `${shown}::a1`, 'file.txt'], { stdio: 'pipe', env: borgEnv, cwd: tree });
  await h.temp.store.setBrowseAccess(shownRepo.id, true, 'test');
});
afterAll(() => h.close());

interface Case {
  name: string;
  needs: UserRole;
  /** Prepares what the call acts on; returns the request. */
  request(caller: Caller): Promise<{ method: string; path: string; body?: unknown }>;
  ok: number;
}

const store = () => h.temp.store;
const newRepo = async () => (await store().createRepository({ name: unique('r'), quotaBytes: null })).name;
const newKey = async () => (await store().addKey({ name: unique('k'), publicKey: (await import('../support/temp-store.js')).ed25519Key() })).key.name;
const newGrant = async () => {
  const [key, repo] = [await newKey(), await newRepo()];
  await store().setGrant(key, repo, { role: 'read', writesPerDay: null, fromCidrs: null, expiresAt: null });
  return { key, repo };
};
const newUser = async () => (await store().addUser({ name: unique('u'), role: 'viewer', passwordHash: await h.passwords.hash('some password!') })).name;

const newAlert = async () => (await store().openAlert({ key: unique('test:'), rule: 'backup-late', severity: 'warning', repositoryId: null, summary: 's', detail: 'd' })).id;
const newPullHost = async () => (await store().addPullHost(unique('h'), checkPullHostInput({ address: '192.0.2.7', user: 'backup', repository: 'audited', paths: ['/etc'] }))).name;
const newSilence = async () => (await store().addSilence({ repositoryId: (await store().getRepository(await newRepo())).id, keyId: null, until: new Date(Date.now() + 3600_000), reason: null, createdBy: 'test' })).id;

const CASES: Case[] = [
  { name: 'create a repository', needs: 'operator', ok: 201, request: async () => ({ method: 'POST', path: '/repositories', body: { name: unique('new') } }) },
  { name: 'change a repository', needs: 'operator', ok: 200, request: async () => ({ method: 'PATCH', path: `/repositories/${await newRepo()}`, body: { expectedIntervalSeconds: 3600 } }) },
  { name: 'delete a repository', needs: 'operator', ok: 200, request: async () => ({ method: 'DELETE', path: `/repositories/${await newRepo()}` }) },
  { name: 'add a key', needs: 'operator', ok: 201, request: async () => ({ method: 'POST', path: '/keys', body: { name: unique('key'), publicKey: ed25519Line() } }) },
  { name: 'revoke a key', needs: 'operator', ok: 200, request: async () => ({ method: 'DELETE', path: `/keys/${await newKey()}` }) },
  { name: 'create a grant', needs: 'operator', ok: 201, request: async () => ({ method: 'POST', path: '/grants', body: { key: await newKey(), repository: await newRepo(), role: 'append' } }) },
  { name: 'change a grant', needs: 'operator', ok: 200, request: async () => { const g = await newGrant(); return { method: 'PATCH', path: `/grants/${g.key}/${g.repo}`, body: { role: 'full' } }; } },
  { name: 'remove a grant', needs: 'operator', ok: 204, request: async () => { const g = await newGrant(); return { method: 'DELETE', path: `/grants/${g.key}/${g.repo}` }; } },
  { name: "a grant's client set-up", needs: 'viewer', ok: 200, request: async () => { const g = await newGrant(); return { method: 'GET', path: `/repositories/${g.repo}/setup?key=${g.key}` }; } },
  { name: 'run an audit', needs: 'operator', ok: 200, request: async () => ({ method: 'POST', path: '/repositories/audited/audit', body: {} }) },
  { name: 'approve', needs: 'operator', ok: 200, request: async () => ({ method: 'POST', path: '/repositories/audited/approve' }) },
  { name: 'verify a repository', needs: 'operator', ok: 200, request: async () => ({ method: 'POST', path: '/repositories/audited/verify', body: {} }) },
  { name: "forget a repository's key", needs: 'admin', ok: 200, request: async () => ({ method: 'DELETE', path: `/repositories/${await newRepo()}/key` }) },
  { name: 'list users', needs: 'admin', ok: 200, request: async () => ({ method: 'GET', path: '/users' }) },
  { name: 'add a user', needs: 'admin', ok: 201, request: async () => ({ method: 'POST', path: '/users', body: { name: unique('user'), role: 'viewer' } }) },
  { name: "change a user's role", needs: 'admin', ok: 200, request: async () => ({ method: 'PATCH', path: `/users/${await newUser()}`, body: { role: 'operator' } }) },
  { name: 'remove a user', needs: 'admin', ok: 200, request: async () => ({ method: 'DELETE', path: `/users/${await newUser()}` }) },
  { name: 'see whether password logins are on', needs: 'admin', ok: 200, request: async () => ({ method: 'GET', path: '/sso/password-logins' }) },
  { name: 'turn password logins on or off', needs: 'admin', ok: 200, request: async () => ({ method: 'PUT', path: '/sso/password-logins', body: { onlyFor: null } }) },
  { name: 'reset a password', needs: 'admin', ok: 200, request: async () => ({ method: 'POST', path: `/users/${await newUser()}/password`, body: {} }) },
  { name: 'acknowledge an alert', needs: 'operator', ok: 200, request: async () => ({ method: 'POST', path: `/alerts/${await newAlert()}/acknowledge` }) },
  { name: 'silence a repository', needs: 'operator', ok: 201, request: async () => ({ method: 'POST', path: '/alert-silences', body: { repository: await newRepo(), seconds: 3600 } }) },
  { name: 'silence a key', needs: 'operator', ok: 201, request: async () => ({ method: 'POST', path: '/alert-silences', body: { key: await newKey(), seconds: 3600 } }) },
  { name: 'end a silence', needs: 'operator', ok: 200, request: async () => ({ method: 'DELETE', path: `/alert-silences/${await newSilence()}` }) },
  { name: 'run a pull job now', needs: 'operator', ok: 202, request: async () => ({ method: 'POST', path: `/pull-hosts/${await newPullHost()}/jobs` }) },
  { name: 'add a pull host', needs: 'admin', ok: 201, request: async () => ({ method: 'POST', path: '/pull-hosts', body: { name: unique('host'), address: 'client.example.org', user: 'backup', repository: 'audited', paths: ['/home'] } }) },
  { name: "accept a pull host's key", needs: 'admin', ok: 200, request: async () => ({ method: 'POST', path: `/pull-hosts/${await newPullHost()}/accept-key`, body: { fingerprint: `SHA256:${'C'.repeat(43)}` } }) },
  { name: 'remove a pull host', needs: 'admin', ok: 200, request: async () => ({ method: 'DELETE', path: `/pull-hosts/${await newPullHost()}` }) },
  { name: 'set archive check rules', needs: 'admin', ok: 200, request: async () => ({ method: 'PUT', path: `/repositories/${await newRepo()}/archive-checks`, body: { requiredPaths: ['etc/passwd'], maxChanged: 50 } }) },
  { name: 'clear archive check rules', needs: 'admin', ok: 200, request: async () => ({ method: 'DELETE', path: `/repositories/${await newRepo()}/archive-checks` }) },
  { name: "an archive's metadata", needs: 'operator', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/browsed/archives/a1' }) },
  { name: 'list a folder of an archive', needs: 'operator', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/browsed/archives/a1/entries?path=' }) },
  { name: 'search an archive by path pattern', needs: 'operator', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/browsed/archives/a1/search?pattern=*' }) },
  { name: 'diff two archives', needs: 'operator', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/browsed/archives/a1/diff?to=a1' }) },
  { name: 'let viewers browse a repository', needs: 'admin', ok: 200, request: async () => ({ method: 'PUT', path: `/repositories/${await newRepo()}/browse-access`, body: { viewersMayBrowse: true } }) },
  { name: "an archive's metadata where viewers may browse", needs: 'viewer', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/shown/archives/a1' }) },
  { name: 'list a folder where viewers may browse', needs: 'viewer', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/shown/archives/a1/entries?path=' }) },
  { name: 'search an archive where viewers may browse', needs: 'viewer', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/shown/archives/a1/search?pattern=*' }) },
  { name: 'diff two archives where viewers may browse', needs: 'operator', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/shown/archives/a1/diff?to=a1' }) },
  { name: 'download a file where viewers may browse', needs: 'operator', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/shown/archives/a1/content?path=file.txt' }) },
  { name: 'download a file of an archive', needs: 'operator', ok: 200, request: async () => ({ method: 'GET', path: '/repositories/browsed/archives/a1/content?path=file.txt' }) },
];

const CALLERS: Caller[] = ['viewer', 'operator', 'admin', 'viewer-token'];
const roleOf = (c: Caller): UserRole => (c === 'viewer-token' ? 'viewer' : c);

describe('authorisation matrix', () => {
  const table = CASES.flatMap((c) => CALLERS.map((caller) => [c.name, caller, RANK[roleOf(caller)] >= RANK[c.needs], c] as const));
  it.each(table)('%s as %s: allowed %s', async (_name, caller, allowed, c) => {
    const { method, path, body } = await c.request(caller);
    const r = await callers[caller].call(method, `/api/v1${path}`, body);
    if (allowed) {
      expect(r.status, JSON.stringify(r.body)).toBe(c.ok);
    } else {
      expect(r.status).toBe(403);
      expect(r.body).toEqual({ code: 'BK_ERR_DENIED', message: `this needs the ${c.needs} role; ${caller === 'viewer-token' ? 'this token acts as' : 'you are'} ${roleOf(caller)}` });
    }
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s without credentials: 401', async (_name, c) => {
    const { method, path, body } = await c.request('admin');
    const r = await h.client().call(method, `/api/v1${path}`, body);
    expect(r.status).toBe(401);
    expect(r.body.code).toBe('BK_ERR_UNAUTHENTICATED');
  });

  it('lets every role read repositories, keys, grants, sessions, denials, pull hosts, jobs and the pull key, and its own tokens', async () => {
    for (const caller of CALLERS) {
      for (const path of ['/repositories', '/repositories/audited', '/keys', '/grants', '/sessions', '/denials', '/sessions/export?format=json', '/denials/export?format=json', '/transactions', '/transactions/export?format=json', '/tokens', '/session', '/repositories/audited/audit', '/repositories/audited/archives', '/repositories/audited/verification', '/repositories/audited/archive-checks', '/repositories/audited/browse-access', '/alerts', '/alert-silences', '/repository-changes', '/pull-hosts', '/pull-key', '/pull-jobs']) {
        const r = await callers[caller].call('GET', `/api/v1${path}`);
        expect(r.status, `${caller} GET ${path}: ${JSON.stringify(r.body)}`).toBe(200);
      }
    }
  });

  it('refuses the history, pull jobs and their downloads without credentials', async () => {
    for (const path of ['/sessions', '/sessions/1', '/denials', '/sessions/export', '/denials/export', '/transactions', '/transactions/export', '/pull-hosts', '/pull-key', '/pull-jobs', '/pull-jobs/1', '/pull-jobs/1/log', '/pull-jobs/1/log.txt']) {
      const r = await h.client().call('GET', `/api/v1${path}`);
      expect(r.status, path).toBe(401);
    }
  });

  it('lets every signed-in user create and revoke their own tokens and enrol a second factor, but not with a token', async () => {
    for (const caller of ['viewer', 'operator', 'admin'] as const) {
      const created = await callers[caller].call('POST', '/api/v1/tokens', { name: unique('t') });
      expect(created.status).toBe(201);
      expect((await callers[caller].call('DELETE', `/api/v1/tokens/${created.body.apiToken.id}`)).status).toBe(200);
    }
    const fresh = await h.userClient(unique('enrol'), 'viewer');
    expect((await fresh.call('POST', '/api/v1/me/totp')).status).toBe(200);
    expect((await callers['viewer-token'].call('POST', '/api/v1/me/totp')).status).toBe(403);
    expect((await callers['viewer-token'].call('DELETE', '/api/v1/session')).status).toBe(403);
  });

  it("lets every signed-in user manage their own password, recovery codes and second factor, but never with a token", async () => {
    const { totpCode } = await import('../../src/api/auth/totp.js');
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const self = await h.userClient(unique(`self-${role}-`), role);
      const secret = (await self.call('POST', '/api/v1/me/totp')).body.secret;
      expect((await self.call('POST', '/api/v1/me/totp/confirm', { code: totpCode(secret, h.temp.clock.now()) })).status).toBe(200);
      expect((await self.call('GET', '/api/v1/me/recovery-codes')).status).toBe(200);
      expect((await self.call('POST', '/api/v1/me/recovery-codes', { password: PASSWORD })).status).toBe(200);
      expect((await self.call('DELETE', '/api/v1/me/totp', { password: PASSWORD })).status).toBe(204);
      expect((await self.call('POST', '/api/v1/me/password', { currentPassword: PASSWORD, newPassword: 'another password' })).status).toBe(204);
    }
    const token = callers['viewer-token'];
    for (const [method, path, body] of [
      ['GET', '/me/recovery-codes', undefined],
      ['POST', '/me/recovery-codes', { password: PASSWORD }],
      ['DELETE', '/me/totp', { password: PASSWORD }],
      ['POST', '/me/password', { currentPassword: PASSWORD, newPassword: 'another password' }],
    ] as const) {
      const r = await token.call(method, `/api/v1${path}`, body);
      expect(r.body, `${method} ${path}`).toEqual({ code: 'BK_ERR_DENIED', message: 'an API token cannot do this; log in to the console instead' });
    }
    for (const [method, path] of [['GET', '/me/recovery-codes'], ['POST', '/me/recovery-codes'], ['DELETE', '/me/totp'], ['POST', '/me/password']] as const) {
      expect((await h.client().call(method, `/api/v1${path}`, method === 'GET' ? undefined : {})).status).toBe(401);
    }
  });
});
