// The engine with alerts being handled, on a real store with a clock the test moves: an
// acknowledged alert stops repeating and resolves normally; a silence per repository or per key
// sends nothing until it ends (then the alert still open is sent as opened); one alert per cause
// even when a cause is listed twice or two evaluations run at once.

import { afterEach, beforeEach, expect, test } from 'vitest';

import { ed25519Key, openTempStore, type TempStore } from '../../test/support/temp-store.js';
import type { AlertRecord, DeliveryEvent } from '../store/monitoring-store.js';
import { createAlertEngine } from './alert-engine.js';
import type { AlertCondition } from './alert-rules.js';

const HOUR = 3600_000;
const REPEAT = 4 * 3600;
let t: TempStore;
let sent: Array<{ event: DeliveryEvent; key: string }>;
let repositoryId: number;
let keyId: number;

const late = (): AlertCondition => ({ key: `backup-late:repository:${repositoryId}`, rule: 'backup-late', severity: 'warning', repositoryId, summary: 'late', detail: 'late' });
const refused = (): AlertCondition => ({ key: `refusal:BK_DENY_GATE:key:${keyId}:repository:none`, rule: 'refusal', severity: 'warning', repositoryId: null, keyId, summary: 'refused', detail: 'refused' });

function engine() {
  return createAlertEngine({
    store: t.store,
    notifier: { notify: (a: AlertRecord, event: DeliveryEvent) => void sent.push({ event, key: a.key }) },
    now: t.clock.now,
    repositoryName: async () => 'laptop',
  });
}

beforeEach(async () => {
  t = await openTempStore();
  sent = [];
  repositoryId = (await t.store.createRepository({ name: 'laptop', quotaBytes: null })).id;
  keyId = (await t.store.addKey({ name: 'laptop-key', publicKey: ed25519Key() })).key.id;
});
afterEach(() => t.cleanup());

test('an acknowledged alert is not sent again, resolves with its notice, and the cause coming back is a new alert', async () => {
  const e = engine();
  const [opened] = (await e.reconcile('state', [late()], REPEAT)).opened;
  const acked = await t.store.acknowledgeAlert(opened.id, 'ann');
  expect(acked.acknowledgedBy).toBe('ann');
  expect(acked.acknowledgedAt?.toISOString()).toBe(t.clock.now().toISOString());
  // A second acknowledgement keeps the first one's name and time.
  t.clock.advance(1000);
  expect((await t.store.acknowledgeAlert(opened.id, 'bob')).acknowledgedBy).toBe('ann');
  t.clock.advance(2 * REPEAT * 1000);
  const later = await e.reconcile('state', [late()], REPEAT);
  expect(later.repeated).toEqual([]);
  expect((await e.reconcile('state', [], REPEAT)).resolved.map((a) => a.id)).toEqual([opened.id]);
  await expect(t.store.acknowledgeAlert(opened.id, 'ann')).rejects.toThrow(/resolved already/);
  const again = await e.reconcile('state', [late()], REPEAT);
  expect(again.opened).toHaveLength(1);
  expect(again.opened[0].id).not.toBe(opened.id);
  expect(again.opened[0].acknowledgedAt).toBeNull();
  expect(sent.map((s) => s.event)).toEqual(['opened', 'resolved', 'opened']);
});

test('a silence of a repository sends nothing until it ends; then the alert still open is sent as opened', async () => {
  const e = engine();
  await t.store.addSilence({ repositoryId, keyId: null, until: new Date(t.clock.now().getTime() + HOUR), reason: null, createdBy: 'ann' });
  const first = await e.reconcile('state', [late()], REPEAT);
  expect(first.opened).toEqual([]);
  expect(first.silenced).toHaveLength(1);
  expect((await t.store.openAlerts())[0].notifications).toBe(0);
  t.clock.advance(HOUR - 1000);
  await e.reconcile('state', [late()], REPEAT);
  expect(sent).toEqual([]);
  t.clock.advance(1000);
  const after = await e.reconcile('state', [late()], REPEAT);
  expect(after.opened).toHaveLength(1);
  expect(sent).toEqual([{ event: 'opened', key: late().key }]);
  // ... and it repeats on the usual schedule from then on, not at once.
  t.clock.advance(1000);
  expect((await e.reconcile('state', [late()], REPEAT)).repeated).toEqual([]);
});

test('a silence of a key covers its refusals, not other alerts; a cause gone under a silence resolves without a notice', async () => {
  const e = engine();
  const silence = await t.store.addSilence({ repositoryId: null, keyId, until: new Date(t.clock.now().getTime() + HOUR), reason: 'migrating the laptop', createdBy: 'ann' });
  const r = await e.reconcile('security', [refused()], REPEAT);
  expect(r.silenced).toHaveLength(1);
  await e.reconcile('state', [late()], REPEAT);
  expect(sent).toEqual([{ event: 'opened', key: late().key }]);
  expect((await e.reconcile('security', [], REPEAT)).resolved).toEqual([]);
  expect(sent).toHaveLength(1);
  // Ending a silence early is recorded with who ended it.
  t.clock.advance(60_000);
  const ended = await t.store.endSilence(silence.id, 'bob');
  expect([ended.endedBy, ended.until.toISOString()]).toEqual(['bob', t.clock.now().toISOString()]);
  expect(await t.store.listSilences({ activeAt: t.clock.now() })).toEqual([]);
  await e.reconcile('security', [refused()], REPEAT);
  expect(sent.at(-1)).toEqual({ event: 'opened', key: refused().key });
});

test('one alert per cause: a cause listed twice, and two evaluations at once, open one alert', async () => {
  const e = engine();
  const twice = await e.reconcile('state', [late(), { ...late(), severity: 'critical' }], REPEAT);
  expect(twice.opened).toHaveLength(1);
  expect(twice.opened[0].severity).toBe('critical');
  await e.reconcile('state', [], REPEAT);
  const [a, b] = await Promise.all([e.reconcile('security', [refused()], REPEAT), e.reconcile('security', [refused()], REPEAT)]);
  expect(a.opened.length + b.opened.length).toBe(1);
  expect((await t.store.openAlerts()).filter((x) => x.key === refused().key)).toHaveLength(1);
  // The store refuses a second open alert with the same key, whoever asks.
  await expect(t.store.openAlert({ ...refused(), keyId })).rejects.toThrow();
});
