// The authorisation matrix: each role (and an admin's token scoped down to viewer) against each
// state-changing endpoint, plus the admin-only listing. Every case gets fresh fixtures with
// names of its own, so an allowed call really succeeds and a refused one changed nothing.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UserRole } from '../../src/store/user-store.js';
import { ed25519Line } from '../support/temp-store.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

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

const CASES: Case[] = [
  { name: 'create a repository', needs: 'operator', ok: 201, request: async () => ({ method: 'POST', path: '/repositories', body: { name: unique('new') } }) },
  { name: 'change a repository', needs: 'operator', ok: 200, request: async () => ({ method: 'PATCH', path: `/repositories/${await newRepo()}`, body: { expectedIntervalSeconds: 3600 } }) },
  { name: 'delete a repository', needs: 'operator', ok: 200, request: async () => ({ method: 'DELETE', path: `/repositories/${await newRepo()}` }) },
  { name: 'add a key', needs: 'operator', ok: 201, request: async () => ({ method: 'POST', path: '/keys', body: { name: unique('key'), publicKey: ed25519Line() } }) },
  { name: 'revoke a key', needs: 'operator', ok: 200, request: async () => ({ method: 'DELETE', path: `/keys/${await newKey()}` }) },
  { name: 'create a grant', needs: 'operator', ok: 201, request: async () => ({ method: 'POST', path: '/grants', body: { key: await newKey(), repository: await newRepo(), role: 'append' } }) },
  { name: 'change a grant', needs: 'operator', ok: 200, request: async () => { const g = await newGrant(); return { method: 'PATCH', path: `/grants/${g.key}/${g.repo}`, body: { role: 'full' } }; } },
  { name: 'remove a grant', needs: 'operator', ok: 204, request: async () => { const g = await newGrant(); return { method: 'DELETE', path: `/grants/${g.key}/${g.repo}` }; } },
  { name: 'run an audit', needs: 'operator', ok: 200, request: async () => ({ method: 'POST', path: '/repositories/audited/audit', body: {} }) },
  { name: 'approve', needs: 'operator', ok: 200, request: async () => ({ method: 'POST', path: '/repositories/audited/approve' }) },
  { name: "forget a repository's key", needs: 'admin', ok: 200, request: async () => ({ method: 'DELETE', path: `/repositories/${await newRepo()}/key` }) },
  { name: 'list users', needs: 'admin', ok: 200, request: async () => ({ method: 'GET', path: '/users' }) },
  { name: 'add a user', needs: 'admin', ok: 201, request: async () => ({ method: 'POST', path: '/users', body: { name: unique('user'), role: 'viewer' } }) },
  { name: "change a user's role", needs: 'admin', ok: 200, request: async () => ({ method: 'PATCH', path: `/users/${await newUser()}`, body: { role: 'operator' } }) },
  { name: 'remove a user', needs: 'admin', ok: 200, request: async () => ({ method: 'DELETE', path: `/users/${await newUser()}` }) },
  { name: 'reset a password', needs: 'admin', ok: 200, request: async () => ({ method: 'POST', path: `/users/${await newUser()}/password`, body: {} }) },
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

  it('lets every role read repositories, keys, grants, sessions, denials and its own tokens', async () => {
    for (const caller of CALLERS) {
      for (const path of ['/repositories', '/repositories/audited', '/keys', '/grants', '/sessions', '/denials', '/sessions/export?format=json', '/denials/export?format=json', '/transactions', '/transactions/export?format=json', '/tokens', '/session', '/repositories/audited/audit', '/repositories/audited/archives']) {
        const r = await callers[caller].call('GET', `/api/v1${path}`);
        expect(r.status, `${caller} GET ${path}: ${JSON.stringify(r.body)}`).toBe(200);
      }
    }
  });

  it('refuses the history and its downloads without credentials', async () => {
    for (const path of ['/sessions', '/sessions/1', '/denials', '/sessions/export', '/denials/export', '/transactions', '/transactions/export']) {
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
});
