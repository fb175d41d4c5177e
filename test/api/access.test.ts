// Editing access over real HTTP against a real store: a grant's role, backups per day, address
// ranges and expiry changed with PATCH (refused in the CLI's sentences, nothing half-written),
// a prune grant's archive rules kept through an edit, a second grant for a key that has one, and
// the key list with each key's grants and its last use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519Key } from '../support/temp-store.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
let admin: ApiClient;
beforeAll(async () => {
  h = await startApi();
  admin = await h.userClient('ann', 'admin');
  await h.temp.store.createRepository({ name: 'web', quotaBytes: null });
  await h.temp.store.createRepository({ name: 'db', quotaBytes: null });
  await h.temp.store.addKey({ name: 'laptop', publicKey: ed25519Key() });
  await h.temp.store.addKey({ name: 'idle', publicKey: ed25519Key() });
});
afterAll(() => h.close());

const V1 = '/api/v1';
const grantOf = async (key: string, repo: string) => (await admin.call('GET', `${V1}/grants?key=${key}&repository=${repo}`)).body.grants[0];

describe('editing a grant', () => {
  it("changes role, backups per day, address ranges and expiry; refuses bad terms in the CLI's sentences and changes nothing then", async () => {
    expect((await admin.call('POST', `${V1}/grants`, { key: 'laptop', repository: 'web', role: 'append' })).status).toBe(201);
    const expiresAt = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const changed = await admin.call('PATCH', `${V1}/grants/laptop/web`, { role: 'read', writesPerDay: 3, fromCidrs: ['192.0.2.0/24', '2001:db8::1'], expiresAt });
    expect(changed.status).toBe(200);
    expect(changed.body.grant).toMatchObject({ role: 'read', writesPerDay: 3, fromCidrs: ['192.0.2.0/24', '2001:db8::1/128'], expiresAt });

    const refusals: [unknown, string][] = [
      [{ writesPerDay: 0 }, 'backups per day (writes per day) must be a whole number of at least 1, not 0'],
      [{ writesPerDay: 1.5 }, 'backups per day (writes per day) must be a whole number of at least 1, not 1.5'],
      [{ fromCidrs: ['10.0.0.1/8'] }, "'10.0.0.1/8' has address bits set past its /8 prefix; did you mean 10.0.0.0/8?"],
      [{ fromCidrs: ['nowhere'] }, "'nowhere' is not an IPv4 or IPv6 address or CIDR range"],
      [{ fromCidrs: [] }, 'the list of allowed address ranges is empty'],
      [{ expiresAt: '2001-01-01T00:00:00.000Z' }, 'the expiry time 2001-01-01T00:00:00.000Z has already passed'],
      [{ role: 'append', keepLast: 0 }, 'a keep-last count (--keep-last) is a retention rule of the prune role, not of append'],
      [{ role: 'prune', keepLast: 0 }, 'keep-last must be a whole number from 1 to 1000000, not 0'],
      [{ role: 'prune', minAgeSeconds: -1 }, 'the minimum age must be from 1 second to 100 years, not -1 seconds'],
      [{ role: 'prune', prefix: '' }, 'the prefix is empty; leave --prefix out to cover every archive'],
    ];
    for (const [body, message] of refusals) {
      const r = await admin.call('PATCH', `${V1}/grants/laptop/web`, body);
      expect([r.status, r.body], JSON.stringify(body)).toEqual([400, { code: 'BK_ERR_INVALID_INPUT', message }]);
    }
    // Nothing of the refused edits was written.
    expect(await grantOf('laptop', 'web')).toMatchObject({ role: 'read', writesPerDay: 3, fromCidrs: ['192.0.2.0/24', '2001:db8::1/128'], expiresAt });

    // null lifts a limit; fields left out keep their value.
    const lifted = await admin.call('PATCH', `${V1}/grants/laptop/web`, { writesPerDay: null, fromCidrs: null });
    expect(lifted.body.grant).toMatchObject({ role: 'read', writesPerDay: null, fromCidrs: null, expiresAt });
    // The guard reads the new role at the next session's open.
    expect((await h.temp.store.findGrant((await h.temp.store.getKey('laptop')).id, 'web'))?.grant.role).toBe('read');
  });

  it("keeps a prune grant's archive rules through an edit of its other terms", async () => {
    await admin.call('POST', `${V1}/grants`, { key: 'idle', repository: 'web', role: 'prune', keepLast: 7, prefix: 'host1-', minAgeSeconds: 86_400, maxRemovalsPerDay: 5 });
    const edited = await admin.call('PATCH', `${V1}/grants/idle/web`, { role: 'prune', writesPerDay: 2, fromCidrs: ['198.51.100.0/24'], expiresAt: null });
    expect(edited.body.grant).toMatchObject({ role: 'prune', writesPerDay: 2, keepLast: 7, prefix: 'host1-', minAgeSeconds: 86_400, maxRemovalsPerDay: 5 });
  });
});

describe('a second grant for a key that has one, and the key list', () => {
  it("adds a grant on another repository; the key list shows each key's grants and its last use", async () => {
    const before = (await admin.call('GET', `${V1}/keys`)).body.keys.find((k: { name: string }) => k.name === 'laptop');
    expect(before.lastUsedAt).toBeNull();
    expect((await admin.call('POST', `${V1}/grants`, { key: 'laptop', repository: 'db', role: 'append', writesPerDay: 0 })).body.message).toBe(
      'backups per day (writes per day) must be a whole number of at least 1, not 0',
    );
    expect((await admin.call('POST', `${V1}/grants`, { key: 'laptop', repository: 'db', role: 'append' })).status).toBe(201);

    const key = await h.temp.store.getKey('laptop');
    const db = await h.temp.store.getRepository('db');
    const startedAt = new Date(Date.now() - 60_000);
    const session = await h.temp.store.startSession({ keyId: key.id, keyName: 'laptop', clientAddress: '192.0.2.1', startedAt, pid: 1, host: 'h' });
    await h.temp.store.updateSession(session, { repositoryId: db.id, repositoryName: 'db', role: 'append' });
    await h.temp.store.endSession(session, { endedAt: startedAt, result: 'ok', detail: null, bytesIn: 1, bytesOut: 1 });

    const listed = (await admin.call('GET', `${V1}/keys`)).body.keys as { name: string; lastUsedAt: string | null; grants: { repositoryName: string; role: string; expiresAt: string | null }[] }[];
    const laptop = listed.find((k) => k.name === 'laptop')!;
    expect(laptop.lastUsedAt).toBe(startedAt.toISOString());
    expect(laptop.grants.map((g) => [g.repositoryName, g.role])).toEqual([
      ['db', 'append'],
      ['web', 'read'],
    ]);
    expect(listed.find((k) => k.name === 'idle')).toMatchObject({ lastUsedAt: null, grants: [{ repositoryName: 'web', role: 'prune' }] });
    // A viewer sees the same list.
    const viewer = await h.userClient('vic', 'viewer');
    expect((await viewer.call('GET', `${V1}/keys`)).body.keys.find((k: { name: string }) => k.name === 'laptop').grants).toHaveLength(2);
  });
});
