// GET/PUT/DELETE /repositories/:name/retention over real HTTP: viewers read, admins set and turn
// off; a repository whose key borgkeep does not hold cannot get a policy; bad values are one
// sentence (400) and change nothing; responses match their documented schemas (the harness checks).

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { openVault } from '../../src/vault/vault.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
let admin: ApiClient;
let operator: ApiClient;
let viewer: ApiClient;

beforeAll(async () => {
  h = await startApi();
  admin = await h.userClient('ann', 'admin');
  operator = await h.userClient('olga', 'operator');
  viewer = await h.userClient('vic', 'viewer');
  await h.temp.store.createRepository({ name: 'held', quotaBytes: null });
  await h.temp.store.createRepository({ name: 'keyless', quotaBytes: null });
  openVault(h.temp.dataDir).put((await h.temp.store.getRepository('held')).dirName, { passphrase: 'p', keyFile: null });
});
afterAll(() => h.close());

describe('retention policy API', () => {
  test('no key held: 409 with one sentence, nothing stored', async () => {
    const r = await admin.call('PUT', '/api/v1/repositories/keyless/retention', { keepDaily: 7 });
    expect(r.status).toBe(409);
    expect(r.body.message).toMatch(/^borgkeep does not hold the key of repository 'keyless'/);
    const shown = await viewer.call('GET', '/api/v1/repositories/keyless/retention');
    expect(shown.status).toBe(200);
    expect(shown.body.retention).toEqual({ repository: 'keyless', keyHeld: false, policy: null, nextRunAt: null });
  });

  test('admins set the whole policy; viewers read it with the next run; operators may not set it', async () => {
    const denied = await operator.call('PUT', '/api/v1/repositories/held/retention', { keepDaily: 7 });
    expect(denied.status).toBe(403);
    const r = await admin.call('PUT', '/api/v1/repositories/held/retention', { keepDaily: 7, keepWeekly: 4, keepWithin: '2d', prefix: 'web-', schedule: '15 2 * * *' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.retention.policy).toMatchObject({ keepDaily: 7, keepWeekly: 4, keepMonthly: null, keepWithin: '2d', prefix: 'web-', schedule: '15 2 * * *', updatedBy: "user 'ann'", lastRunAt: null });
    const shown = await viewer.call('GET', '/api/v1/repositories/held/retention');
    expect(shown.body.retention.keyHeld).toBe(true);
    const next = new Date(shown.body.retention.nextRunAt);
    expect(next.getHours()).toBe(2);
    expect(next.getMinutes()).toBe(15);
    // PUT replaces: a rule left out is no longer a rule; the default schedule is daily at 03:30.
    const replaced = await admin.call('PUT', '/api/v1/repositories/held/retention', { keepLast: 3 });
    expect(replaced.body.retention.policy).toMatchObject({ keepLast: 3, keepDaily: null, keepWeekly: null, keepWithin: null, prefix: null, schedule: '30 3 * * *' });
  });

  test('bad values: 400, one sentence, nothing changed', async () => {
    for (const [body, message] of [
      [{}, /needs at least one of keep-last/],
      [{ keepDaily: 0 }, /keepDaily/],
      [{ keepDaily: 2, keepWithin: '2 days' }, /keepWithin/],
      [{ keepDaily: 2, prefix: '{hostname}-' }, /prefix/],
      [{ keepDaily: 2, prefix: '--glob-archives=*' }, /prefix/],
      [{ keepDaily: 2, schedule: '99 99 * * *' }, /not a cron pattern/],
      [{ keepDaily: 2, keepForever: true }, /keepForever/],
    ] as const) {
      const r = await admin.call('PUT', '/api/v1/repositories/held/retention', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.message, JSON.stringify(body)).toMatch(message);
      expect(r.body.message).not.toMatch(/\n/);
    }
    const still = await viewer.call('GET', '/api/v1/repositories/held/retention');
    expect(still.body.retention.policy).toMatchObject({ keepLast: 3, schedule: '30 3 * * *' });
  });

  test('DELETE turns it off (admins only)', async () => {
    expect((await operator.call('DELETE', '/api/v1/repositories/held/retention')).status).toBe(403);
    const r = await admin.call('DELETE', '/api/v1/repositories/held/retention');
    expect(r.body).toEqual({ repository: 'held', removed: true });
    expect((await viewer.call('GET', '/api/v1/repositories/held/retention')).body.retention.policy).toBeNull();
    expect((await admin.call('DELETE', '/api/v1/repositories/held/retention')).body.removed).toBe(false);
    expect((await viewer.call('GET', '/api/v1/repositories/nosuch/retention')).status).toBe(404);
  });
});
