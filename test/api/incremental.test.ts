// The dashboard's data, incrementally (issue 15, point 7): GET answers carry an ETag and an
// unchanged one is a 304 without a body; GET /repository-changes gives only what changed since
// the version held; repository sizes come from the sizer's cache and are measured again behind
// the request, never on it. A real API server over a real SQLite store (api-harness.ts), real
// repository folders on disk for the sizes.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIZE_CACHE_MS } from '../../src/api/features/repository-size.js';
import { api } from '../../web/src/api.js';
import { ed25519Key } from '../support/temp-store.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
let admin: ApiClient;
let viewer: ApiClient;

beforeAll(async () => {
  h = await startApi();
  admin = await h.userClient('ada', 'admin');
  viewer = await h.userClient('vic', 'viewer');
  for (const name of ['alpha', 'bravo', 'charlie']) await h.temp.store.createRepository({ name, quotaBytes: null });
});
afterAll(() => h?.close());

/** GET with the raw body, to tell an empty 304 from a JSON one. */
async function raw(client: ApiClient, path: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${h.url}/api/v1${path}`, { headers: { cookie: client.cookie!, ...headers } });
  return { status: r.status, etag: r.headers.get('etag'), text: await r.text(), cacheControl: r.headers.get('cache-control') };
}

describe('ETag and 304 on the lists the console polls', () => {
  it.each(['/repositories', '/alerts?state=open&limit=1000', '/keys', '/sessions?limit=50'])('%s: unchanged, 304 with no body; still never stored by a cache', async (path) => {
    const first = await raw(viewer, path);
    expect(first.status).toBe(200);
    expect(first.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(first.cacheControl).toBe('no-store');
    const again = await raw(viewer, path, { 'if-none-match': first.etag! });
    expect(again.status).toBe(304);
    expect(again.text).toBe('');
    expect(again.etag).toBe(first.etag);
    // Another tag (or a weak form of this one) is compared as HTTP says.
    expect((await raw(viewer, path, { 'if-none-match': '"other"' })).status).toBe(200);
    expect((await raw(viewer, path, { 'if-none-match': `"other", W/${first.etag}` })).status).toBe(304);
  });

  it('gives a new ETag and the whole answer after a write', async () => {
    const before = await raw(viewer, '/repositories');
    expect((await admin.call('PATCH', '/api/v1/repositories/bravo', { expectedIntervalSeconds: 7200 })).status).toBe(200);
    const after = await raw(viewer, '/repositories', { 'if-none-match': before.etag! });
    expect(after.status).toBe(200);
    expect(after.etag).not.toBe(before.etag);
    expect(JSON.parse(after.text).repositories.find((r: { name: string }) => r.name === 'bravo').expectedIntervalSeconds).toBe(7200);
    expect((await raw(viewer, '/repositories', { 'if-none-match': after.etag! })).status).toBe(304);
  });

  it('never answers 304 to a refused or failed request, nor to a change', async () => {
    const r = await raw(viewer, '/repositories/nope', { 'if-none-match': '*' });
    expect(r.status).toBe(404);
    expect(JSON.parse(r.text).code).toBe('BK_ERR_NOT_FOUND');
    const denied = await fetch(`${h.url}/api/v1/repositories`, { headers: { 'if-none-match': '*' } });
    expect(denied.status).toBe(401);
  });
});

describe('GET /repository-changes', () => {
  it('gives the whole list first, then only what changed since the version held', async () => {
    const full = (await viewer.call('GET', '/api/v1/repository-changes')).body;
    expect(full.full).toBe(true);
    expect(full.names).toEqual(['alpha', 'bravo', 'charlie']);
    expect(full.repositories.map((r: { name: string }) => r.name)).toEqual(['alpha', 'bravo', 'charlie']);
    const same = (await viewer.call('GET', `/api/v1/repository-changes?since=${full.version}`)).body;
    expect(same).toEqual({ version: full.version, full: false, names: null, repositories: [] });

    // One repository changed: only it, the order unchanged.
    expect((await admin.call('PATCH', '/api/v1/repositories/charlie', { quotaBytes: 50_000_000 })).status).toBe(200);
    const one = (await viewer.call('GET', `/api/v1/repository-changes?since=${full.version}`)).body;
    expect(one.full).toBe(false);
    expect(one.names).toBeNull();
    expect(one.repositories.map((r: { name: string; quotaBytes: number }) => [r.name, r.quotaBytes])).toEqual([['charlie', 50_000_000]]);
    expect(one.version).not.toBe(full.version);

    // One added and one removed: the names in order, and the new one.
    expect((await admin.call('POST', '/api/v1/repositories', { name: 'able' })).status).toBe(201);
    expect((await admin.call('DELETE', '/api/v1/repositories/alpha')).status).toBe(200);
    const moved = (await viewer.call('GET', `/api/v1/repository-changes?since=${one.version}`)).body;
    expect(moved.names).toEqual(['able', 'bravo', 'charlie']);
    expect(moved.repositories.map((r: { name: string }) => r.name)).toEqual(['able']);
    // From the first version: both changes at once.
    const both = (await viewer.call('GET', `/api/v1/repository-changes?since=${full.version}`)).body;
    expect(both.repositories.map((r: { name: string }) => r.name)).toEqual(['able', 'charlie']);
    // What GET /repositories gives is the list a holder rebuilds.
    const list = (await viewer.call('GET', '/api/v1/repositories')).body.repositories;
    expect(list.map((r: { name: string }) => r.name)).toEqual(moved.names);
  });

  it('gives the whole list for a version it does not know (another server run, or from the future)', async () => {
    const current = (await viewer.call('GET', '/api/v1/repository-changes')).body.version as string;
    const [, n] = current.split('.');
    for (const since of [`00000000.${n}`, `${current.split('.')[0]}.${Number(n) + 5}`, 'garbage']) {
      const r = (await viewer.call('GET', `/api/v1/repository-changes?since=${since}`)).body;
      expect(r.full, since).toBe(true);
      expect(r.names).toEqual(r.repositories.map((x: { name: string }) => x.name));
    }
  });
});

describe('repository sizes off the request path', () => {
  it('answers with the size held while the walk after a backup runs behind the request, then with the new size', async () => {
    const s = h.temp.store;
    const repo = await s.createRepository({ name: 'sized', quotaBytes: null });
    const dir = s.paths.repository(repo.dirName);
    mkdirSync(join(dir, 'data', '0'), { recursive: true });
    writeFileSync(join(dir, 'config'), 'x'.repeat(1000));
    const sizeNow = async () => (await viewer.call('GET', '/api/v1/repositories/sized')).body.repository.sizeBytes as number;
    // The first look measures (nothing to give yet).
    expect(await sizeNow()).toBe(1000);

    // A backup writes 5,000 bytes and ends ok with a committed transaction: its last write moves.
    writeFileSync(join(dir, 'data', '0', '1'), 'y'.repeat(5000));
    h.temp.clock.advance(1000);
    const key = (await s.addKey({ name: 'sized-client', publicKey: ed25519Key() })).key;
    const at = h.temp.clock.now();
    const id = await s.startSession({ keyId: key.id, keyName: key.name, clientAddress: '192.0.2.7', startedAt: at, pid: null as unknown as number, host: null as unknown as string });
    await s.updateSession(id, { repositoryId: repo.id, repositoryName: repo.name, role: 'append', clientVersion: '1.2.8' });
    await s.recordTransaction({ sessionId: id, borgTransactionId: 1, objectsPut: 1, objectsOverwritten: 0, objectsDeleted: 0, objectsDeletedOlder: 0, manifestWritten: true, state: 'committed', startedAt: at, endedAt: at });
    await s.endSession(id, { endedAt: at, result: 'ok', detail: null, bytesIn: 5000, bytesOut: 10, methods: ['open', 'put', 'commit'] });

    // The request right after waits briefly for the walk the write started: the new size.
    expect(await sizeNow()).toBe(6000);
    await expect.poll(sizeNow, { timeout: 5000, interval: 20 }).toBe(6000);
    const dashboard = (await viewer.call('GET', '/api/v1/repositories')).body.repositories.find((r: { name: string }) => r.name === 'sized');
    expect(dashboard.sizeBytes).toBe(6000);

    // Changed on disk without a write through borgkeep: the held size until the periodic walk.
    writeFileSync(join(dir, 'data', '0', '2'), 'z'.repeat(500));
    h.temp.clock.advance(SIZE_CACHE_MS - 5000);
    expect(await sizeNow()).toBe(6000);
    h.temp.clock.advance(10_000);
    expect(await sizeNow()).toBe(6000);
    await expect.poll(sizeNow, { timeout: 5000, interval: 20 }).toBe(6500);
  });
});

describe("the console's fetch layer (web/src/api.ts) against the real server", () => {
  it('sends If-None-Match and reuses its copy on a 304, and keeps the repository list through its changes', async () => {
    // The console runs in a browser on the server's origin: here its relative URLs go to the test
    // server with the viewer's cookie, and every exchange is recorded.
    const seen: Array<{ path: string; ifNoneMatch: string | null; status: number; etag: string | null; body: string }> = [];
    const realFetch = globalThis.fetch;
    globalThis.fetch = (async (input: string, init: RequestInit = {}) => {
      if (!input.startsWith('/')) return realFetch(input, init); // the test's own clients
      const headers: Record<string, string> = { ...(init.headers as Record<string, string>), cookie: viewer.cookie! };
      const r = await realFetch(`${h.url}${input}`, { ...init, headers });
      const body = await r.clone().text();
      seen.push({ path: input, ifNoneMatch: headers['if-none-match'] ?? null, status: r.status, etag: r.headers.get('etag'), body });
      return r;
    }) as typeof fetch;
    try {
      const keys1 = await api<{ keys: unknown[] }>('GET', '/keys');
      const keys2 = await api<{ keys: unknown[] }>('GET', '/keys');
      expect(keys2).toEqual(keys1);
      expect(seen.at(-1)).toMatchObject({ path: '/api/v1/keys', status: 304, body: '' });
      expect(seen.at(-2)!.ifNoneMatch).toBeNull();
      expect(seen.at(-1)!.ifNoneMatch).toBe(seen.at(-2)!.etag);

      const names = async () => ((await viewer.call('GET', '/api/v1/repositories')).body.repositories as Array<{ name: string }>).map((r) => r.name);
      const first = await api<{ repositories: Array<{ name: string; quotaBytes: number | null }> }>('GET', '/repositories');
      expect(seen.at(-1)!.path).toBe('/api/v1/repository-changes');
      expect(first.repositories.map((r) => r.name)).toEqual(await names());

      // A change: only the changed repository travels, and the list the console gets is whole.
      expect((await admin.call('PATCH', '/api/v1/repositories/bravo', { quotaBytes: 70_000_000 })).status).toBe(200);
      const second = await api<{ repositories: Array<{ name: string; quotaBytes: number | null }> }>('GET', '/repositories');
      const exchange = seen.at(-1)!;
      expect(exchange.path).toMatch(/^\/api\/v1\/repository-changes\?since=/);
      expect(JSON.parse(exchange.body).repositories.map((r: { name: string }) => r.name)).toEqual(['bravo']);
      expect(second.repositories.map((r) => r.name)).toEqual(await names());
      expect(second.repositories.find((r) => r.name === 'bravo')!.quotaBytes).toBe(70_000_000);
      expect(second.repositories).toEqual((await viewer.call('GET', '/api/v1/repositories')).body.repositories);

      // Nothing changed since: an empty change list, then (the same question again) a 304; the same list.
      const third = await api<{ repositories: unknown[] }>('GET', '/repositories');
      expect(JSON.parse(seen.at(-1)!.body)).toMatchObject({ full: false, names: null, repositories: [] });
      expect(third).toEqual(second);
      const fourth = await api<{ repositories: unknown[] }>('GET', '/repositories');
      expect(seen.at(-1)).toMatchObject({ status: 304, body: '' });
      expect(fourth).toEqual(second);
    } finally {
      globalThis.fetch = realFetch;
    }
  });
});
