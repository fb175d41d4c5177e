// Handling alerts over real HTTP: acknowledging records who and when and refuses a resolved
// alert; a silence names one repository or one key for a time, says who set it, lists as active
// until it ends (by time, or ended early by someone), and marks the open alerts it covers;
// bad input is one sentence in the API's error shape, with nothing written.

import { afterAll, beforeAll, expect, test } from 'vitest';
import { ed25519Key } from '../support/temp-store.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
let admin: ApiClient;
let operator: ApiClient;
let repositoryId: number;

beforeAll(async () => {
  h = await startApi();
  admin = await h.userClient('ann', 'admin');
  operator = await h.userClient('olga', 'operator');
  repositoryId = (await h.temp.store.createRepository({ name: 'laptop', quotaBytes: null })).id;
  await h.temp.store.addKey({ name: 'laptop-key', publicKey: ed25519Key() });
});
afterAll(() => h?.close());

test('acknowledging an open alert records who and when; a resolved one cannot be', async () => {
  const a = await h.temp.store.openAlert({ key: `backup-late:repository:${repositoryId}`, rule: 'backup-late', severity: 'warning', repositoryId, summary: 'late', detail: 'late' });
  const r = await operator.call('POST', `/api/v1/alerts/${a.id}/acknowledge`);
  expect(r.status).toBe(200);
  expect(r.body.alert).toMatchObject({ id: a.id, repository: 'laptop', acknowledgedBy: 'olga', acknowledgedAt: h.temp.clock.now().toISOString(), silenced: false });
  const listed = await admin.call('GET', '/api/v1/alerts?state=open');
  expect(listed.body.alerts.find((x: { id: number }) => x.id === a.id).acknowledgedBy).toBe('olga');
  await h.temp.store.resolveAlert(a.id);
  const again = await operator.call('POST', `/api/v1/alerts/${a.id}/acknowledge`);
  expect(again.status).toBe(400);
  expect(again.body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: `alert ${a.id} is resolved already; only an open alert can be acknowledged` });
  const missing = await operator.call('POST', '/api/v1/alerts/999999/acknowledge');
  expect([missing.status, missing.body.message]).toEqual([404, 'there is no alert 999999']);
});

test('a silence of a repository or a key: who set it, until when, the alerts it covers, and ending it early', async () => {
  const start = h.temp.clock.now().getTime();
  const a = await h.temp.store.openAlert({ key: 'quota:repository:x', rule: 'quota', severity: 'warning', repositoryId, summary: 'q', detail: 'q' });
  const made = await admin.call('POST', '/api/v1/alert-silences', { repository: 'laptop', seconds: 3600, reason: 'moving disks' });
  expect(made.status).toBe(201);
  expect(made.body.silence).toMatchObject({ repository: 'laptop', key: null, until: new Date(start + 3600_000).toISOString(), reason: 'moving disks', createdBy: 'ann', endedBy: null, active: true });
  const byKey = await operator.call('POST', '/api/v1/alert-silences', { key: 'laptop-key', seconds: 600 });
  expect(byKey.body.silence).toMatchObject({ repository: null, key: 'laptop-key', createdBy: 'olga', active: true });
  const open = await admin.call('GET', '/api/v1/alerts?state=open');
  expect(open.body.alerts.find((x: { id: number }) => x.id === a.id).silenced).toBe(true);
  expect((await admin.call('GET', '/api/v1/alert-silences')).body.silences.map((s: { id: number }) => s.id)).toEqual([byKey.body.silence.id, made.body.silence.id]);

  // The key's silence ends by itself after ten minutes; the repository's is ended early.
  h.temp.clock.advance(601_000);
  expect((await admin.call('GET', '/api/v1/alert-silences')).body.silences.map((s: { id: number }) => s.id)).toEqual([made.body.silence.id]);
  const ended = await operator.call('DELETE', `/api/v1/alert-silences/${made.body.silence.id}`);
  expect(ended.status).toBe(200);
  expect(ended.body.silence).toMatchObject({ endedBy: 'olga', until: h.temp.clock.now().toISOString(), active: false });
  expect((await admin.call('GET', '/api/v1/alert-silences')).body.silences).toEqual([]);
  expect((await admin.call('GET', '/api/v1/alert-silences?state=all')).body.silences).toHaveLength(2);
  expect((await admin.call('GET', '/api/v1/alerts?state=open')).body.alerts.find((x: { id: number }) => x.id === a.id).silenced).toBe(false);
});

test('a silence names exactly one repository or key that exists; nothing is written otherwise', async () => {
  const before = (await h.temp.store.listSilences({})).length;
  const both = await admin.call('POST', '/api/v1/alert-silences', { repository: 'laptop', key: 'laptop-key', seconds: 3600 });
  expect([both.status, both.body]).toEqual([400, { code: 'BK_ERR_INVALID_INPUT', message: 'name a repository or a key to silence, one of the two' }]);
  const neither = await admin.call('POST', '/api/v1/alert-silences', { seconds: 3600 });
  expect(neither.status).toBe(400);
  const unknown = await admin.call('POST', '/api/v1/alert-silences', { repository: 'nope', seconds: 3600 });
  expect([unknown.status, unknown.body.message]).toEqual([404, "no repository named 'nope'"]);
  const tooLong = await admin.call('POST', '/api/v1/alert-silences', { repository: 'laptop', seconds: 31 * 86_400 });
  expect([tooLong.status, tooLong.body.message]).toEqual([400, 'a silence lasts from a minute to 30 days (60 to 2592000 seconds), not 2678400 seconds']);
  expect((await h.temp.store.listSilences({})).length).toBe(before);
});
