// GET /api/v1/events over real HTTP against a real SQLite store: the stream's authentication
// (cookie, token, none), the events a session's ledger rows produce as another process would
// write them (started, progress, ended, denial; a session that begins and ends between two looks),
// the repository filter, a stream ending with its console session, and shutdown not waiting on
// open streams. The real borg client through the gateway is in test/e2e/console.test.ts.

import { afterEach, describe, expect, it } from 'vitest';
import { createApiServer, type ApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { openTempStore, ed25519Key, type TempStore } from '../support/temp-store.js';
import { sseReader } from '../helpers/sse-reader.js';
import { PASSWORD, TEST_ARGON2 } from './api-harness.js';

describe('GET /api/v1/events (server-sent events)', () => {
  let temp: TempStore;
  let server: ApiServer;
  let url: string;
  const cleanups: Array<() => Promise<unknown> | unknown> = [];

  async function start() {
    temp = await openTempStore();
    temp.clock.set(new Date());
    const passwords = await createPasswordHasher(TEST_ARGON2);
    await temp.store.addUser({ name: 'watcher', role: 'viewer', passwordHash: await passwords.hash(PASSWORD) });
    server = createApiServer({ store: temp.store, passwords, now: temp.clock.now, live: { pollMs: 50, heartbeatMs: 200 } });
    ({ url } = await server.listen('127.0.0.1', 0));
    cleanups.push(() => server.close(), () => temp.cleanup());
    const login = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'watcher', password: PASSWORD }) });
    expect(login.status).toBe(200);
    const cookie = /^bk_session=[^;]+/.exec(login.headers.get('set-cookie')!)![0];
    return { cookie, csrf: ((await login.json()) as { csrfToken: string }).csrfToken };
  }

  const open = async (headers: Record<string, string>, query = '') => {
    const response = await fetch(`${url}/api/v1/events${query}`, { headers });
    const reader = response.status === 200 ? sseReader(response) : null;
    if (reader) cleanups.push(reader.cancel);
    return { response, reader };
  };

  /** A session as a guard in another process writes it. */
  async function session(keyName: string) {
    const key = (await temp.store.addKey({ name: keyName, publicKey: ed25519Key() })).key;
    const id = await temp.store.startSession({ keyId: key.id, keyName, clientAddress: '192.0.2.7', startedAt: new Date(), pid: process.pid, host: 'test' });
    return { id, key };
  }

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('needs credentials; a viewer session gets a snapshot, then started, progress, ended and denials as the ledger changes', async () => {
    const { cookie } = await start();
    const anonymous = await fetch(`${url}/api/v1/events`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { code: string }).code).toBe('BK_ERR_UNAUTHENTICATED');

    const repo = await temp.store.createRepository({ name: 'web', quotaBytes: null });
    const before = await session('old-laptop'); // open before anyone watched: in the snapshot
    const { response, reader } = await open({ cookie });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const snapshot = await reader!.next((m) => m.event === 'snapshot', 'snapshot');
    expect(snapshot.data.open.map((s: { id: number }) => s.id)).toEqual([before.id]);
    expect(snapshot.data.open[0]).not.toHaveProperty('pid');

    const s = await session('laptop');
    const started = await reader!.next((m) => m.event === 'session.started' && m.data.session.id === s.id, 'session.started');
    expect(started.data.session).toMatchObject({ keyName: 'laptop', result: 'open', bytesIn: 0, clientAddress: '192.0.2.7' });
    expect(started.data.session).not.toHaveProperty('host');

    await temp.store.updateSession(s.id, { repositoryId: repo.id, repositoryName: 'web', role: 'append' });
    await temp.store.updateSession(s.id, { bytesIn: 123_456, bytesOut: 789 });
    const progress = await reader!.next((m) => m.event === 'session.progress' && m.data.session.bytesIn === 123_456, 'session.progress');
    expect(progress.data.session).toMatchObject({ repositoryName: 'web', role: 'append', bytesOut: 789 });

    await temp.store.recordDenial({ sessionId: s.id, keyId: s.key.id, repositoryId: repo.id, method: 'delete', reason: 'BK_DENY_DELETE', message: 'no', at: new Date() });
    const denial = await reader!.next((m) => m.event === 'denial', 'denial');
    expect(denial.data.denial).toMatchObject({ method: 'delete', keyName: 'laptop', repositoryName: 'web', sessionId: s.id });

    await temp.store.endSession(s.id, { endedAt: new Date(), result: 'ok', detail: null, bytesIn: 200_000, bytesOut: 1000 });
    const ended = await reader!.next((m) => m.event === 'session.ended' && m.data.session.id === s.id, 'session.ended');
    expect(ended.data.session).toMatchObject({ result: 'ok', bytesIn: 200_000 });
    expect(ended.data.session.endedAt).toEqual(expect.any(String));
    // The session open before the stream began ends too.
    await temp.store.endSession(before.id, { endedAt: new Date(), result: 'aborted', detail: 'x', bytesIn: 0, bytesOut: 0 });
    await reader!.next((m) => m.event === 'session.ended' && m.data.session.id === before.id, 'session.ended of the older session');
    // Each change was announced once.
    expect(reader!.seen.filter((m) => m.event === 'session.ended' && m.data.session.id === s.id)).toHaveLength(1);
    expect(reader!.seen.filter((m) => m.event === 'denial')).toHaveLength(1);
  });

  it('announces a session that begins and ends between two looks; an API token may watch; ?repository= narrows the stream', async () => {
    await start();
    const admin = await temp.store.addUser({ name: 'boss', role: 'admin', passwordHash: null });
    const token = 'bk_' + 'x'.repeat(43);
    const { sha256Hex } = await import('../../src/api/auth/authenticator.js');
    await temp.store.createApiToken({ userId: admin.id, name: 'ci', tokenHash: sha256Hex(token), prefix: token.slice(0, 10), role: 'viewer', expiresAt: null });
    const web = await temp.store.createRepository({ name: 'web', quotaBytes: null });
    const db = await temp.store.createRepository({ name: 'db', quotaBytes: null });

    const all = await open({ authorization: `Bearer ${token}` });
    const onlyWeb = await open({ authorization: `Bearer ${token}` }, '?repository=web');
    expect(all.response.status).toBe(200);
    expect(onlyWeb.response.status).toBe(200);
    expect((await fetch(`${url}/api/v1/events?repository=nope`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    await all.reader!.next((m) => m.event === 'snapshot', 'snapshot');
    await onlyWeb.reader!.next((m) => m.event === 'snapshot', 'snapshot');

    for (const [name, repo] of [['a', web], ['b', db]] as const) {
      const s = await session(name);
      await temp.store.updateSession(s.id, { repositoryId: repo.id, repositoryName: repo.name, role: 'full' });
      await temp.store.endSession(s.id, { endedAt: new Date(), result: 'ok', detail: null, bytesIn: 10, bytesOut: 10 });
    }
    await all.reader!.next((m) => m.event === 'session.ended' && m.data.session.keyName === 'b', 'session.ended of b');
    await onlyWeb.reader!.next((m) => m.event === 'session.ended' && m.data.session.keyName === 'a', 'session.ended of a');
    expect(all.reader!.seen.map((m) => `${m.event}:${m.data.session?.keyName ?? ''}`)).toEqual(['snapshot:', 'session.started:a', 'session.ended:a', 'session.started:b', 'session.ended:b']);
    // Give the filtered stream the time it would need to (wrongly) show b.
    await new Promise((r) => setTimeout(r, 200));
    expect(onlyWeb.reader!.seen.map((m) => `${m.event}:${m.data.session?.keyName ?? ''}`)).toEqual(['snapshot:', 'session.started:a', 'session.ended:a']);
  });

  it('sends heartbeats, ends a stream whose console session logged out, and shutdown does not wait on open streams', async () => {
    const { cookie, csrf } = await start();
    const first = await open({ cookie });
    const second = await open({ cookie });
    await first.reader!.next((m) => m.event === 'snapshot', 'snapshot');
    await new Promise((r) => setTimeout(r, 500));
    expect(first.reader!.comments()).toBeGreaterThanOrEqual(1);

    const logout = await fetch(`${url}/api/v1/session`, { method: 'DELETE', headers: { cookie, 'x-csrf-token': csrf } });
    expect(logout.status).toBe(204);
    const end = await first.reader!.next((m) => m.event === 'end', 'end');
    expect(end.data.reason).toMatch(/log in/);
    await first.reader!.pump;
    expect(first.reader!.ended()).toBe(true);

    // A fresh stream (new login), then shutdown: it gets `end` and the server closes at once.
    const again = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'watcher', password: PASSWORD }) });
    const third = await open({ cookie: /^bk_session=[^;]+/.exec(again.headers.get('set-cookie')!)![0] });
    await third.reader!.next((m) => m.event === 'snapshot', 'snapshot');
    const t0 = Date.now();
    await server.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    const bye = await third.reader!.next((m) => m.event === 'end', 'end at shutdown');
    expect(bye.data.reason).toMatch(/shutting down/);
    await third.reader!.pump;
    expect(third.reader!.ended()).toBe(true);
    void second;
  });

  it('is in the OpenAPI document as text/event-stream', async () => {
    await start();
    const doc = (await (await fetch(`${url}/api/v1/openapi.json`)).json()) as any;
    const op = doc.paths['/api/v1/events'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['text/event-stream']);
    expect(op.parameters.map((p: { name: string }) => p.name)).toEqual(['repository']);
    expect(JSON.stringify(doc.components.schemas.LiveEvent)).toContain('session.progress');
  });
});
