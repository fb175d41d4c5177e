// Every resource endpoint over real HTTP against a real store: repositories, keys, grants,
// sessions and denials, audits (on a repository the real borg client initialised), users, and
// the OpenAPI document. Responses are checked against their documented schemas by the harness.
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ed25519Line } from '../support/temp-store.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
let admin: ApiClient;
beforeEach(async () => {
  h = await startApi();
  admin = await h.userClient('ann', 'admin');
});
afterEach(() => h.close());

const V1 = '/api/v1';

describe('repositories', () => {
  it('creates, lists with status, shows, changes and deletes; never shows a server path', async () => {
    const created = await admin.call('POST', `${V1}/repositories`, { name: 'web', quotaBytes: 50_000_000 });
    expect(created.status).toBe(201);
    expect(created.body.repository).toMatchObject({ name: 'web', quotaBytes: 50_000_000, expectedIntervalSeconds: 93_600, backup: 'never', initialized: false, sizeBytes: null, gate: { open: true, waitingTxn: null } });
    expect((await admin.call('POST', `${V1}/repositories`, { name: 'web' })).body).toEqual({ code: 'BK_ERR_CONFLICT', message: "a repository named 'web' already exists" });
    expect((await admin.call('POST', `${V1}/repositories`, { name: 'x', quotaBytes: 5 })).body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: "the quota '5' is too small; borg needs at least 10M" });
    expect((await admin.call('POST', `${V1}/repositories`, { name: '../etc' })).body.message).toBe("the repository name '../etc' may only contain letters, digits, '.', '_' and '-'");

    const changed = await admin.call('PATCH', `${V1}/repositories/web`, { quotaBytes: null, expectedIntervalSeconds: 7200 });
    expect(changed.body.repository).toMatchObject({ quotaBytes: null, expectedIntervalSeconds: 7200 });
    const listed = await admin.call('GET', `${V1}/repositories`);
    expect(listed.body.repositories.map((r: { name: string }) => r.name)).toEqual(['web']);
    // The list follows every change, though it keeps what is unchanged between requests.
    await admin.call('PATCH', `${V1}/repositories/web`, { expectedIntervalSeconds: 7260 });
    await admin.call('POST', `${V1}/repositories`, { name: 'app' });
    expect((await admin.call('GET', `${V1}/repositories`)).body.repositories.map((r: { name: string; expectedIntervalSeconds: number }) => [r.name, r.expectedIntervalSeconds])).toEqual([
      ['app', 93_600],
      ['web', 7260],
    ]);
    await admin.call('DELETE', `${V1}/repositories/app`);
    const shown = await admin.call('GET', `${V1}/repositories/web`);
    expect(shown.body).toMatchObject({ repository: { name: 'web' }, grants: [] });
    const everything = JSON.stringify([created.body, listed.body, shown.body]);
    expect(everything).not.toContain(h.temp.root);
    expect(everything).not.toContain((await h.temp.store.getRepository('web')).dirName);

    expect((await admin.call('DELETE', `${V1}/repositories/web`)).body).toEqual({ name: 'web', grantsRemoved: 0, filesMovedToTrash: false });
    expect((await admin.call('GET', `${V1}/repositories/web`)).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "no repository named 'web'" });
  });

  it('reports size on disk, the last backup against the expected interval, and denials of the last 24 h', async () => {
    await admin.call('POST', `${V1}/repositories`, { name: 'web', expectedIntervalSeconds: 3600 });
    const repo = await h.temp.store.getRepository('web');
    execFileSync('borg', ['init', '--encryption=none', h.temp.store.paths.repository(repo.dirName)], { env: { ...process.env, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' }, stdio: 'pipe' });
    const key = (await h.temp.store.addKey({ name: 'laptop', publicKey: (await import('../support/temp-store.js')).ed25519Key() })).key;
    const at = h.temp.clock.now();
    const session = await h.temp.store.startSession({ keyId: key.id, keyName: 'laptop', clientAddress: '192.0.2.1', startedAt: at, pid: 1, host: 'h' });
    await h.temp.store.updateSession(session, { repositoryId: repo.id, repositoryName: 'web', role: 'append' });
    await h.temp.store.recordTransaction({ sessionId: session, borgTransactionId: 3, objectsPut: 1, objectsOverwritten: 0, objectsDeleted: 0, manifestWritten: true, state: 'committed', startedAt: at, endedAt: at });
    await h.temp.store.recordDenial({ sessionId: session, keyId: key.id, repositoryId: repo.id, method: 'delete', reason: 'BK_DENY_DELETE', message: 'no', at });
    await h.temp.store.endSession(session, { endedAt: at, result: 'ok', detail: null, bytesIn: 10, bytesOut: 5 });

    const fresh = (await admin.call('GET', `${V1}/repositories/web`)).body.repository;
    expect(fresh).toMatchObject({ initialized: true, backup: 'ok', denialsLast24h: 1, lastWriteAt: at.toISOString() });
    expect(fresh.sizeBytes).toBeGreaterThan(1000);
    // A token, since the console session would end while the clock moves a day.
    const bot = h.client({ bearer: (await admin.call('POST', `${V1}/tokens`, { name: 'bot' })).body.token });
    h.temp.clock.advance(3601_000);
    expect((await bot.call('GET', `${V1}/repositories`)).body.repositories[0]).toMatchObject({ backup: 'late', denialsLast24h: 1 });
    h.temp.clock.advance(86_400_000);
    expect((await bot.call('GET', `${V1}/repositories`)).body.repositories[0].denialsLast24h).toBe(0);

    const deleted = await bot.call('DELETE', `${V1}/repositories/web`);
    expect(deleted.body).toEqual({ name: 'web', grantsRemoved: 0, filesMovedToTrash: true });
  });
});

describe('keys and grants', () => {
  it('adds a key from a public key line with a first grant, lists, shows, revokes', async () => {
    await admin.call('POST', `${V1}/repositories`, { name: 'web' });
    const line = ed25519Line('laptop@home');
    const added = await admin.call('POST', `${V1}/keys`, { name: 'laptop', publicKey: line, grant: { repository: 'web', role: 'append', writesPerDay: 2, fromCidrs: ['192.0.2.0/24'] } });
    expect(added.status).toBe(201);
    expect(added.body.key).toMatchObject({ name: 'laptop', type: 'ssh-ed25519', bits: 256, comment: 'laptop@home', revoked: false });
    expect(added.body.grant).toMatchObject({ keyName: 'laptop', repositoryName: 'web', role: 'append', writesPerDay: 2, fromCidrs: ['192.0.2.0/24'] });
    expect((await admin.call('POST', `${V1}/keys`, { name: 'again', publicKey: line })).body).toEqual({ code: 'BK_ERR_CONFLICT', message: `this key is already registered as 'laptop' (id ${added.body.key.id})` });
    expect((await admin.call('POST', `${V1}/keys`, { name: 'bad', publicKey: 'ssh-ed25519 nonsense' })).body.code).toBe('BK_ERR_INVALID_INPUT');
    expect((await admin.call('GET', `${V1}/keys`)).body.keys).toHaveLength(1);
    expect((await admin.call('GET', `${V1}/keys/laptop`)).body.grants).toHaveLength(1);
    expect((await admin.call('GET', `${V1}/keys/${added.body.key.id}`)).body.key.name).toBe('laptop');

    const revoked = await admin.call('DELETE', `${V1}/keys/laptop`);
    expect(revoked.body).toMatchObject({ key: { revoked: true }, alreadyRevoked: false, grantsRemoved: 1 });
    expect((await admin.call('DELETE', `${V1}/keys/laptop`)).body.alreadyRevoked).toBe(true);
    expect((await admin.call('GET', `${V1}/keys/nope`)).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "no key named 'nope'" });
  });

  it('creates a grant, refuses a second, changes some terms keeping others, removes it', async () => {
    await admin.call('POST', `${V1}/repositories`, { name: 'web' });
    await admin.call('POST', `${V1}/keys`, { name: 'laptop', publicKey: ed25519Line() });
    const expiresAt = new Date(h.temp.clock.now().getTime() + 86_400_000).toISOString();
    const created = await admin.call('POST', `${V1}/grants`, { key: 'laptop', repository: 'web', role: 'read', writesPerDay: 3, expiresAt });
    expect(created.status).toBe(201);
    expect(created.body.grant).toMatchObject({ role: 'read', writesPerDay: 3, fromCidrs: null, expiresAt });
    expect((await admin.call('POST', `${V1}/grants`, { key: 'laptop', repository: 'web', role: 'full' })).body.code).toBe('BK_ERR_CONFLICT');
    const changed = await admin.call('PATCH', `${V1}/grants/laptop/web`, { role: 'append', fromCidrs: ['2001:db8::/32'], writesPerDay: null });
    expect(changed.body.grant).toMatchObject({ role: 'append', writesPerDay: null, fromCidrs: ['2001:db8::/32'], expiresAt });
    expect((await admin.call('PATCH', `${V1}/grants/laptop/web`, { fromCidrs: ['10.0.0.1/8'] })).body.message).toBe("'10.0.0.1/8' has address bits set past its /8 prefix; did you mean 10.0.0.0/8?");
    expect((await admin.call('PATCH', `${V1}/grants/laptop/web`, { role: 'owner' })).body.code).toBe('BK_ERR_INVALID_INPUT');
    expect((await admin.call('GET', `${V1}/grants?repository=web`)).body.grants).toHaveLength(1);
    expect((await admin.call('GET', `${V1}/grants?key=laptop`)).body.grants).toHaveLength(1);
    expect((await admin.call('GET', `${V1}/grants?color=red`)).body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: "the query has an unknown parameter 'color'" });
    expect((await admin.call('DELETE', `${V1}/grants/laptop/web`)).status).toBe(204);
    expect((await admin.call('DELETE', `${V1}/grants/laptop/web`)).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "key 'laptop' has no grant on repository 'web'" });
    expect((await admin.call('PATCH', `${V1}/grants/laptop/web`, { role: 'read' })).status).toBe(404);
  });
});

describe('sessions and denials', () => {
  it('filters by repository, key, time and result, and pages with a cursor in a stable order', async () => {
    const store = h.temp.store;
    const web = await store.createRepository({ name: 'web', quotaBytes: null });
    const mail = await store.createRepository({ name: 'mail', quotaBytes: null });
    const { ed25519Key } = await import('../support/temp-store.js');
    const laptop = (await store.addKey({ name: 'laptop', publicKey: ed25519Key() })).key;
    const desk = (await store.addKey({ name: 'desk', publicKey: ed25519Key() })).key;
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) {
      const key = i % 2 === 0 ? laptop : desk;
      const repo = i % 3 === 0 ? mail : web;
      const at = new Date(Date.UTC(2025, 0, 1, i));
      const id = await store.startSession({ keyId: key.id, keyName: key.name, clientAddress: '192.0.2.9', startedAt: at, pid: 4242, host: 'secret-host' });
      await store.updateSession(id, { repositoryId: repo.id, repositoryName: repo.name, role: 'append' });
      if (i % 4 === 0) await store.recordDenial({ sessionId: id, keyId: key.id, repositoryId: repo.id, method: 'delete', reason: 'BK_DENY_DELETE', message: `denied ${i}`, at });
      await store.endSession(id, { endedAt: at, result: i % 4 === 0 ? 'denied' : 'ok', detail: null, bytesIn: i, bytesOut: 0 });
      ids.push(id);
    }
    const all: number[] = [];
    let next: string | null = null;
    do {
      const page: { body: { sessions: { id: number }[]; next: string | null } } = await admin.call('GET', `${V1}/sessions?limit=5${next ? `&cursor=${next}` : ''}`);
      all.push(...page.body.sessions.map((s) => s.id));
      next = page.body.next;
    } while (next);
    expect(all).toEqual([...ids].reverse());

    const first = await admin.call('GET', `${V1}/sessions?limit=1`);
    expect(first.body.sessions[0]).not.toHaveProperty('pid');
    expect(JSON.stringify(first.body)).not.toContain('secret-host');
    const q = async (query: string) => (await admin.call('GET', `${V1}/sessions?${query}`)).body.sessions.map((s: { id: number }) => s.id);
    expect(await q('repository=mail')).toEqual([ids[9], ids[6], ids[3], ids[0]]);
    expect(await q('key=desk&repository=web')).toEqual([ids[11], ids[7], ids[5], ids[1]]);
    expect(await q('result=denied')).toEqual([ids[8], ids[4], ids[0]]);
    expect(await q('from=2025-01-01T02:00:00Z&to=2025-01-01T04:00:00Z')).toEqual([ids[3], ids[2]]);
    expect((await admin.call('GET', `${V1}/sessions?result=maybe`)).body.message).toBe("'maybe' is not a session result; use open, ok, denied, error or aborted");
    expect((await admin.call('GET', `${V1}/sessions?limit=0`)).body.message).toMatch(/^query parameter 'limit': /);
    expect((await admin.call('GET', `${V1}/sessions?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z`)).body.message).toBe('the start of the time range (since) must be before its end (until)');
    expect((await admin.call('GET', `${V1}/sessions?repository=nope`)).status).toBe(404);

    const denials = await admin.call('GET', `${V1}/denials?limit=2`);
    expect(denials.body.denials.map((d: { message: string }) => d.message)).toEqual(['denied 8', 'denied 4']);
    expect(denials.body.denials[0]).toMatchObject({ keyName: 'laptop', repositoryName: 'web', reason: 'BK_DENY_DELETE' });
    const rest = await admin.call('GET', `${V1}/denials?limit=2&cursor=${denials.body.next}`);
    expect(rest.body).toMatchObject({ denials: [{ message: 'denied 0' }], next: null });
    expect((await admin.call('GET', `${V1}/denials?repository=mail`)).body.denials).toHaveLength(1);
    expect((await admin.call('GET', `${V1}/denials?key=desk`)).body.denials).toHaveLength(0);
  });
});

describe('audits', () => {
  it('runs an audit of a real borg repository, keeps its report, approves it; the passphrase stays out of the store', async () => {
    await admin.call('POST', `${V1}/repositories`, { name: 'web' });
    expect((await admin.call('GET', `${V1}/repositories/web/audit`)).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "repository 'web' has not been audited yet" });
    const notYet = await admin.call('POST', `${V1}/repositories/web/audit`, {});
    expect(notYet.body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: 'the repository is not initialised yet: there is nothing to audit' });
    expect((await admin.call('POST', `${V1}/repositories/web/approve`)).body.message).toBe("repository 'web' has no history to approve yet (is it initialised?)");

    const repo = await h.temp.store.getRepository('web');
    const passphrase = 'a passphrase nobody stores';
    execFileSync('borg', ['init', '--encryption=repokey', h.temp.store.paths.repository(repo.dirName)], { env: { ...process.env, BORG_PASSPHRASE: passphrase }, stdio: 'pipe' });

    const wrong = await admin.call('POST', `${V1}/repositories/web/audit`, { passphrase: 'wrong' });
    expect(wrong.status).toBe(400);
    expect(wrong.body.message).toMatch(/^cannot unlock the repository key/);
    const audited = await admin.call('POST', `${V1}/repositories/web/audit`, { passphrase });
    expect(audited.status).toBe(200);
    // borg init's transaction was written outside borgkeep: unattributed.
    expect(audited.body.report).toMatchObject({ manifestsRead: true, verdict: 'suspicious' });
    expect(audited.body.event).toMatchObject({ kind: 'audit', actor: 'ann', verdict: 'suspicious' });
    // Suspicious, but init only added data: a compaction would destroy nothing and goes through.
    expect(audited.body.gate).toMatchObject({ open: true, waitingTxn: null });
    const last = await admin.call('GET', `${V1}/repositories/web/audit`);
    expect(last.body.report).toEqual(audited.body.report);

    const approved = await admin.call('POST', `${V1}/repositories/web/approve`);
    expect(approved.body.event).toMatchObject({ kind: 'approve', actor: 'ann', throughTxn: audited.body.event.throughTxn });
    expect(approved.body.gate.open).toBe(true);
    expect((await admin.call('GET', `${V1}/repositories/web`)).body.repository).toMatchObject({ gate: { open: true }, lastAudit: { verdict: 'suspicious' } });

    const structural = await admin.call('POST', `${V1}/repositories/web/audit`, {});
    expect(structural.body.event.verdict).toBe('suspicious');
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(h.temp.store.paths.database).includes(Buffer.from(passphrase))).toBe(false);
    expect(readFileSync(`${h.temp.store.paths.database}-wal`).includes(Buffer.from(passphrase))).toBe(false);
  });
});

describe('approve', () => {
  it('approves the transaction the audit showed, not a write made after it; refuses one past the newest on disk; the actor is the user or token owner', async () => {
    await admin.call('POST', `${V1}/repositories`, { name: 'web' });
    const repo = await h.temp.store.getRepository('web');
    const path = h.temp.store.paths.repository(repo.dirName);
    const borgEnv = { ...process.env, BORG_PASSPHRASE: 'pass', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
    execFileSync('borg', ['init', '--encryption=repokey', path], { env: borgEnv, stdio: 'pipe' });
    const audited = (await admin.call('POST', `${V1}/repositories/web/audit`, { passphrase: 'pass' })).body.event.throughTxn as number;
    // A write after the audit: the person approving has not seen it.
    const { mkdtempSync, writeFileSync, readdirSync } = await import('node:fs');
    const src = mkdtempSync(`${h.temp.root}/src-`);
    writeFileSync(`${src}/f`, 'later');
    execFileSync('borg', ['create', `${path}::later`, src], { env: borgEnv, stdio: 'pipe' });
    const newest = Math.max(...readdirSync(path).flatMap((f) => (/^index\.(\d+)$/.exec(f) ? [Number(f.slice(6))] : [])));
    expect(newest).toBeGreaterThan(audited);

    const tooNew = await admin.call('POST', `${V1}/repositories/web/approve`, { throughTxn: newest + 1 });
    expect(tooNew.status).toBe(400);
    expect(tooNew.body).toEqual({
      code: 'BK_ERR_INVALID_INPUT',
      message: `transaction ${newest + 1} is not a committed transaction of repository 'web' (the newest on disk is ${newest}): audit it again and approve what that audit shows`,
    });
    expect((await admin.call('POST', `${V1}/repositories/web/approve`, { throughTxn: -1 })).status).toBe(400);
    expect((await admin.call('POST', `${V1}/repositories/web/approve`, { throughTxn: 1.5 })).status).toBe(400);
    expect((await admin.call('POST', `${V1}/repositories/web/approve`, { throughTxn: audited, actor: 'mallory' })).status).toBe(400);
    expect((await h.temp.store.listEvents(repo.id)).filter((e) => e.kind === 'approve')).toEqual([]);

    const shown = await admin.call('POST', `${V1}/repositories/web/approve`, { throughTxn: audited });
    expect(shown.status).toBe(200);
    expect(shown.body.event).toMatchObject({ kind: 'approve', actor: 'ann', throughTxn: audited });
    // Without a body: the newest on disk, as before.
    expect((await admin.call('POST', `${V1}/repositories/web/approve`)).body.event).toMatchObject({ actor: 'ann', throughTxn: newest });
    const bot = h.client({ bearer: (await admin.call('POST', `${V1}/tokens`, { name: 'bot' })).body.token });
    expect((await bot.call('POST', `${V1}/repositories/web/approve`, { throughTxn: audited })).body.event).toMatchObject({ actor: "ann (API token 'bot')", throughTxn: audited });
    expect((await bot.call('POST', `${V1}/repositories/web/audit`, {})).body.event).toMatchObject({ kind: 'audit', actor: "ann (API token 'bot')" });

    const doc = (await h.client().call('GET', `${V1}/openapi.json`)).body;
    const body = doc.paths['/api/v1/repositories/{name}/approve'].post.requestBody;
    expect(body.required).toBe(false);
    expect(body.content['application/json'].schema.properties.throughTxn).toMatchObject({ type: 'integer', minimum: 0 });
  });
});

describe('users', () => {
  it('adds with a given or generated password, changes roles, resets, removes; keeps an admin', async () => {
    const given = await admin.call('POST', `${V1}/users`, { name: 'bob', role: 'operator', password: 'bobs long password' });
    expect(given.status).toBe(201);
    expect(given.body).toEqual({ user: expect.objectContaining({ name: 'bob', role: 'operator', hasPassword: true }) });
    const generated = await admin.call('POST', `${V1}/users`, { name: 'vic', role: 'viewer' });
    expect(generated.body.password).toMatch(/^[A-Za-z0-9_-]{20}$/);
    expect((await h.client().login('vic', generated.body.password)).status).toBe(200);
    expect((await admin.call('POST', `${V1}/users`, { name: 'eve', role: 'root' })).body.message).toBe("unknown user role 'root'; use admin, operator or viewer");
    expect((await admin.call('POST', `${V1}/users`, { name: 'eve', role: 'viewer', password: 'short' })).body.message).toBe('a password needs at least 10 characters');
    expect((await admin.call('POST', `${V1}/users`, { name: 'bob', role: 'viewer' })).body.code).toBe('BK_ERR_CONFLICT');

    expect((await admin.call('GET', `${V1}/users`)).body.users.map((u: { name: string }) => u.name)).toEqual(['ann', 'bob', 'vic']);
    expect((await admin.call('PATCH', `${V1}/users/bob`, { role: 'admin' })).body.user.role).toBe('admin');
    expect((await admin.call('POST', `${V1}/users/bob/password`, { password: 'a new password!' })).body).toEqual({ user: expect.objectContaining({ name: 'bob' }) });
    expect((await h.client().login('bob', 'a new password!')).status).toBe(200);
    expect((await admin.call('DELETE', `${V1}/users/vic`)).body.user.name).toBe('vic');
    expect((await admin.call('DELETE', `${V1}/users/vic`)).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "no user named 'vic'" });
    await admin.call('PATCH', `${V1}/users/bob`, { role: 'viewer' });
    expect((await admin.call('PATCH', `${V1}/users/ann`, { role: 'viewer' })).body).toEqual({ code: 'BK_ERR_CONFLICT', message: "'ann' is the only admin; make another user admin first" });
    expect((await admin.call('DELETE', `${V1}/users/ann`)).body.code).toBe('BK_ERR_CONFLICT');
  });
});

describe('the API itself', () => {
  it('serves an OpenAPI 3.1 document naming every route, with named schemas', async () => {
    const doc = (await h.client().call('GET', `${V1}/openapi.json`)).body;
    expect(doc.openapi).toBe('3.1.0');
    const operations = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(operations.length).toBe(h.server.routes.length);
    for (const route of h.server.routes) expect(operations).toContain(`${route.method} ${V1}${route.url.replace(/:(\w+)/g, '{$1}')}`);
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Error', 'User', 'Repository', 'Key', 'Grant', 'Session', 'Denial', 'ApiToken', 'CompactionGate']));
    expect(doc.paths['/api/v1/repositories/{name}'].patch.requestBody.content['application/json'].schema.properties.expectedIntervalSeconds).toMatchObject({ type: 'integer', minimum: 60 });
    expect(JSON.stringify(doc)).not.toContain('#/$defs/');
  });

  it('answers bad JSON, wrong content types and unknown endpoints with one sentence and no stack', async () => {
    const badJson = await fetch(`${h.url}${V1}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":' });
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: 'the request body is not valid JSON' });
    const form = await fetch(`${h.url}${V1}/session`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=ann' });
    expect(await form.json()).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: 'the request body must be JSON (Content-Type: application/json)' });
    const big = await fetch(`${h.url}${V1}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x'.repeat(300_000) }) });
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({ code: 'BK_ERR_TOO_LARGE', message: 'the request body is larger than the server accepts' });
    expect((await admin.call('GET', `${V1}/nothing`)).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: 'there is no API endpoint GET /api/v1/nothing' });
    expect((await admin.call('POST', `${V1}/repositories`)).body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: 'the request body must be a JSON object: expected object and it is missing' });
    expect((await admin.call('POST', `${V1}/repositories`, { name: 'a', extra: 1 })).body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: "the body has an unknown field 'extra'" });
  });

  it('hides internal failures behind one sentence', async () => {
    const broken = await startApi({ audit: { runAudit: async () => { throw new Error(`ENOENT: no such file ${h.temp.root}/secret`); } } });
    try {
      const c = await broken.userClient('ann', 'admin');
      await c.call('POST', `${V1}/repositories`, { name: 'web' });
      const r = await c.call('POST', `${V1}/repositories/web/audit`, {});
      expect(r.status).toBe(500);
      expect(r.body).toEqual({ code: 'BK_ERR_INTERNAL', message: 'internal error; the server log has the details' });
    } finally {
      await broken.close();
    }
  });
});
