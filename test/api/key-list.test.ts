// GET /keys is kept between requests (key-routes.ts): it must still show every change, whichever
// process made it. A real API server over a real SQLite store; the changes are written through a
// second connection to the same database, as the CLI or a forced command would.

import { afterAll, beforeAll, expect, it } from 'vitest';

import { openStore, type Store } from '../../src/store/database.js';
import { ed25519Key } from '../support/temp-store.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
let viewer: ApiClient;
let other: Store;

interface ListedKey {
  id: number;
  name: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
  grants: Array<{ repositoryName: string; role: string }>;
}

const terms = { writesPerDay: null, fromCidrs: null, expiresAt: null };

beforeAll(async () => {
  h = await startApi();
  viewer = await h.userClient('vic', 'viewer');
  other = await openStore({ dataDir: h.temp.dataDir });
  for (const name of ['alpha', 'bravo']) await other.createRepository({ name, quotaBytes: null });
  await other.addKey({ name: 'laptop', publicKey: ed25519Key() });
});
afterAll(async () => {
  await other?.close();
  await h?.close();
});

async function keys(): Promise<{ text: string; byName: Map<string, ListedKey> }> {
  const r = await fetch(`${h.url}/api/v1/keys`, { headers: { cookie: viewer.cookie! } });
  expect(r.status).toBe(200);
  const text = await r.text();
  return { text, byName: new Map((JSON.parse(text) as { keys: ListedKey[] }).keys.map((k) => [k.name, k])) };
}

/** A session of `key` written as the forced command writes it, started at `at`. */
async function sessionOf(key: ListedKey, at: string): Promise<void> {
  await other.startSession({ keyId: key.id, keyName: key.name, clientAddress: '192.0.2.1', startedAt: new Date(at), pid: 1, host: 'test' });
}

it('shows keys, grants and revocations written by another process at the next request', async () => {
  const first = await keys();
  expect(first.byName.get('laptop')?.grants).toEqual([]);
  expect((await keys()).text).toBe(first.text);

  await other.addKey({ name: 'server', publicKey: ed25519Key() });
  await other.setGrant('laptop', 'alpha', { role: 'append', ...terms });
  let now = await keys();
  expect([...now.byName.keys()].sort()).toEqual(['laptop', 'server']);
  expect(now.byName.get('laptop')?.grants.map((g) => [g.repositoryName, g.role])).toEqual([['alpha', 'append']]);

  await other.setGrant('laptop', 'alpha', { role: 'read', ...terms });
  now = await keys();
  expect(now.byName.get('laptop')?.grants.map((g) => g.role)).toEqual(['read']);

  await other.setGrant('server', 'bravo', { role: 'full', ...terms });
  await other.deleteRepository('bravo');
  now = await keys();
  expect(now.byName.get('server')?.grants).toEqual([]);

  await other.revokeKey('server');
  now = await keys();
  expect(now.byName.get('server')?.revokedAt).not.toBeNull();
});

it("moves a key's last use with its newer sessions only, and never back", async () => {
  const before = await keys();
  const laptop = before.byName.get('laptop')!;
  const server = before.byName.get('server')!;
  await sessionOf(laptop, '2026-03-01T10:00:00.000Z');
  let now = await keys();
  expect(now.byName.get('laptop')?.lastUsedAt).toBe('2026-03-01T10:00:00.000Z');
  expect(now.byName.get('server')?.lastUsedAt).toBe(server.lastUsedAt);

  // A session recorded later with an earlier start (a slow process) does not move it back.
  await sessionOf(laptop, '2026-02-01T10:00:00.000Z');
  await sessionOf(laptop, '2026-03-02T08:00:00.000Z');
  now = await keys();
  expect(now.byName.get('laptop')?.lastUsedAt).toBe('2026-03-02T08:00:00.000Z');
  expect((await keys()).text).toBe(now.text);
});
