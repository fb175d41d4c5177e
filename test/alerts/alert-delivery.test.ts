// Alerts from the rules to real receivers: a real SMTP server and real HTTP webhooks, a real store
// with a clock the test moves. Each rule opens once, repeats while it lasts, and resolves with a
// notice; webhook signatures verify; a broken receiver is retried, then reported, and holds up
// nobody else.

import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';

import { createAlertEngine } from '../../src/alerts/alert-engine.js';
import { createChannelSender, type SmtpSettings } from '../../src/alerts/channels.js';
import { ALERT_SETTINGS, createMonitor } from '../../src/alerts/monitor.js';
import { createNotifier } from '../../src/alerts/notifier.js';
import { startHttpSink, startMailSink, type HttpSink, type MailSink } from '../helpers/alert-receivers.js';
import { ed25519Key, openTempStore, type TempStore } from '../support/temp-store.js';

const HOUR = 3600_000;
let temp: TempStore;
let mail: MailSink;
let hook: HttpSink;
let broken: HttpSink;
let sizes: Map<string, number | null>;
let free = { freeBytes: 50, totalBytes: 100 };
const errors: string[] = [];

function harness() {
  const { store, clock } = temp;
  const notifier = createNotifier({
    store,
    server: 'backup-1',
    now: clock.now,
    log: { error: (_f, message) => errors.push(message) },
    send: createChannelSender({ smtp: async () => (await store.getSetting<SmtpSettings>('smtp')) ?? null }),
    retryDelaysMs: [100, 200],
  });
  const engine = createAlertEngine({
    store,
    notifier,
    now: clock.now,
    repositoryName: async (id) => (await store.listRepositories()).find((r) => r.repository.id === id)?.repository.name ?? null,
  });
  const monitor = createMonitor({
    store,
    engine,
    now: clock.now,
    sizeOf: async (path) => sizes.get(path) ?? null,
    disk: async () => free,
  });
  return { notifier, monitor };
}

/** A finished backup session in the ledger, as the guard writes it; `prune`: one that only deleted archives. */
async function backup(repositoryName: string, keyName: string, kind: 'backup' | 'prune' = 'backup') {
  const { store, clock } = temp;
  const key = await store.getKey(keyName);
  const repository = await store.getRepository(repositoryName);
  const id = await store.startSession({ keyId: key.id, keyName: key.name, clientAddress: '10.0.0.5', startedAt: clock.now(), pid: process.pid, host: 'test' });
  await store.updateSession(id, { repositoryId: repository.id, repositoryName: repository.name, role: 'append' });
  const objects = kind === 'backup' ? { objectsPut: 3, objectsDeleted: 0 } : { objectsPut: 0, objectsDeleted: 40 };
  await store.recordTransaction({ sessionId: id, borgTransactionId: 7, ...objects, objectsOverwritten: 0, manifestWritten: true, state: 'committed', startedAt: clock.now(), endedAt: clock.now() });
  await store.endSession(id, { endedAt: clock.now(), result: 'ok', detail: null, bytesIn: 1000, bytesOut: 100 });
  return id;
}

beforeAll(async () => {
  mail = await startMailSink({ user: 'alerts', password: 'secret' });
  hook = await startHttpSink();
  broken = await startHttpSink();
  broken.status = 503;
});
afterAll(async () => {
  await Promise.all([mail?.close(), hook?.close(), broken?.close()]);
});

beforeEach(async () => {
  await temp?.cleanup();
  temp = await openTempStore();
  sizes = new Map();
  free = { freeBytes: 50, totalBytes: 100 };
  mail.mails.length = 0;
  hook.requests.length = 0;
  broken.requests.length = 0;
  errors.length = 0;
  const { store } = temp;
  await store.setSetting('smtp', { host: '127.0.0.1', port: mail.port, secure: false, requireTls: false, user: 'alerts', password: 'secret', from: 'borgkeep@example.org', verifyCertificate: true } satisfies SmtpSettings);
  await store.setSetting(ALERT_SETTINGS, { repeatSeconds: 4 * 3600 });
  await store.addChannel({ name: 'ops-mail', kind: 'email', target: 'ops@example.org, oncall@example.org' });
  await store.addChannel({ name: 'ops-hook', kind: 'webhook', target: hook.url, secret: 'hook-secret' });
  const laptop = await store.createRepository({ name: 'laptop', quotaBytes: 100 * 1024 ** 3, expectedIntervalSeconds: 3600 });
  // As borg init leaves it (its config): a repository nobody initialised is 'waiting-init', not late.
  mkdirSync(store.paths.repository(laptop.dirName), { recursive: true });
  writeFileSync(join(store.paths.repository(laptop.dirName), 'config'), '[repository]\n');
  await store.addKey({ name: 'laptop-key', publicKey: ed25519Key(), grant: { repositoryName: 'laptop', role: 'append', writesPerDay: null, fromCidrs: null, expiresAt: null } });
});
afterAll(() => temp?.cleanup());

describe('the stale-backup alert, in fake time', () => {
  test('fires exactly when the interval passes, repeats while it lasts, and resolves at the next backup', async () => {
    const { store, clock } = temp;
    const { monitor, notifier } = harness();
    await backup('laptop', 'laptop-key');
    clock.advance(HOUR);
    expect((await monitor.evaluate('state')).opened).toEqual([]);
    clock.advance(1000);
    const first = await monitor.evaluate('state');
    expect(first.opened.map((a) => a.key)).toEqual([`backup-late:repository:${(await store.getRepository('laptop')).id}`]);
    await notifier.idle();
    const opened = await mail.waitFor((m) => m.subject.includes('ALERT'));
    expect(opened.subject).toBe("[borgkeep backup-1] ALERT: no backup of 'laptop' for 1 h");
    expect(opened.to.sort()).toEqual(['oncall@example.org', 'ops@example.org']);
    expect(opened.raw).toContain('expects a backup every 1 h');

    // The same condition an hour later: nothing new (the repeat interval is 4 h) ...
    clock.advance(HOUR);
    const later = await monitor.evaluate('state');
    expect([later.opened, later.repeated, later.resolved].map((x) => x.length)).toEqual([0, 0, 0]);
    // ... until the repeat interval has passed since the last notice.
    clock.advance(3 * HOUR);
    expect((await monitor.evaluate('state')).repeated).toHaveLength(1);
    await notifier.idle();
    expect(mail.mails.filter((m) => m.subject.includes('STILL'))).toHaveLength(1);

    await backup('laptop', 'laptop-key');
    const resolved = await monitor.evaluate('state');
    expect(resolved.resolved).toHaveLength(1);
    await notifier.idle();
    expect((await mail.waitFor((m) => m.subject.includes('RESOLVED'))).subject).toBe("[borgkeep backup-1] RESOLVED: no backup of 'laptop' for 5 h");
    // Opened, repeated, resolved: three of each kind of message, and one row in the store.
    const events = hook.requests.map((r) => JSON.parse(r.body).event);
    expect(events).toEqual(['opened', 'repeated', 'resolved']);
    const [alert] = await store.listAlerts({});
    expect(alert).toMatchObject({ rule: 'backup-late', notifications: 2 });
    expect(alert.resolvedAt).not.toBeNull();
    expect((await store.listDeliveries({ alertId: alert.id })).map((d) => d.state)).toEqual(Array(6).fill('sent'));
  });
});

describe('a prune is no backup', () => {
  test('a prune alone neither keeps a repository on time nor resolves its late alert; the next backup does', async () => {
    const { store, clock } = temp;
    const { monitor, notifier } = harness();
    await backup('laptop', 'laptop-key');
    clock.advance(HOUR + 1000);
    expect((await monitor.evaluate('state')).opened.map((a) => a.rule)).toEqual(['backup-late']);
    await backup('laptop', 'laptop-key', 'prune');
    const afterPrune = await monitor.evaluate('state');
    expect(afterPrune.resolved).toEqual([]);
    expect((await store.openAlerts()).map((a) => a.rule)).toEqual(['backup-late']);
    const [status] = await store.listRepositoryStatuses({ denialsSince: clock.now() });
    expect(status!.lastBackupAt!.getTime()).toBe(clock.now().getTime() - HOUR - 1000);
    await backup('laptop', 'laptop-key');
    expect((await monitor.evaluate('state')).resolved.map((a) => a.rule)).toEqual(['backup-late']);
    await notifier.idle();
    expect((await mail.waitFor((m) => m.subject.includes('RESOLVED'))).subject).toContain("RESOLVED: no backup of 'laptop'");
  });
});

describe('alerts by kind', () => {
  test('refusals policy expects are warnings sent at most daily; refusals only a tampered client sends stay critical', async () => {
    const { store, clock } = temp;
    const { monitor, notifier } = harness();
    const repository = await store.getRepository('laptop');
    const key = await store.getKey('laptop-key');
    await backup('laptop', 'laptop-key');
    const session = await store.startSession({ keyId: key.id, keyName: key.name, clientAddress: '10.0.0.9', startedAt: clock.now(), pid: process.pid, host: 'test' });
    const deny = (method: string, reason: string, message: string) =>
      store.recordDenial({ sessionId: session, keyId: key.id, repositoryId: repository.id, method, reason, message, at: clock.now() });
    await deny('put', 'BK_DENY_WRITE_LIMIT', 'borgkeep refused put: the grant allows 1 backup per 24 hours and it is used up.');
    await deny('commit', 'BK_DENY_GATE', 'borgkeep refused commit: the compaction gate of this repository is closed.');
    await deny('put', 'BK_DENY_OVERWRITE', 'borgkeep refused put: the append role may not overwrite an existing object.');
    await deny('commit_nonce_reservation', 'BK_DENY_NONCE_JUMP', 'borgkeep refused commit_nonce_reservation: the nonce may not jump.');

    const opened = await monitor.evaluate('security');
    expect(opened.opened.map((a) => `${a.rule}/${a.severity}`).sort()).toEqual(['denial/critical', 'refusal/warning', 'refusal/warning']);
    await notifier.idle();
    const warning = await mail.waitFor((m) => m.subject.includes('backups per day are used up'));
    warning.raw = warning.raw.replace(/=\r?\n/g, '');
    expect(warning.subject).toBe("[borgkeep backup-1] ALERT: key 'laptop-key' was refused put on 'laptop': the grant's backups per day are used up");
    expect(warning.raw).toContain('severity: warning');
    expect(warning.raw).toContain('not a sign of a compromised machine');
    const critical = await mail.waitFor((m) => m.subject.includes('(2 refusals)'));
    critical.raw = critical.raw.replace(/=\r?\n/g, '');
    expect(critical.subject).toBe("[borgkeep backup-1] ALERT: key 'laptop-key' was refused commit_nonce_reservation on 'laptop' from 10.0.0.9 (2 refusals)");
    expect(critical.raw).toContain('severity: critical');

    // Four hours on: the hostile one's window (1 h) is over; the warnings are not sent again (daily).
    clock.advance(4 * HOUR);
    const later = await monitor.evaluate('security');
    expect(later.resolved.map((a) => a.rule)).toEqual(['denial']);
    expect(later.repeated).toEqual([]);
    // The gate refuses again the next night; a day after they opened, the gate's warning is sent once more, the limit's ends.
    clock.advance(16 * HOUR);
    await deny('commit', 'BK_DENY_GATE', 'borgkeep refused commit: the compaction gate of this repository is closed.');
    clock.advance(4 * HOUR + 1000);
    const nextDay = await monitor.evaluate('security');
    expect(nextDay.repeated.map((a) => a.key)).toEqual([`refusal:BK_DENY_GATE:key:${key.id}:repository:${repository.id}`]);
    expect(nextDay.resolved.map((a) => a.key)).toEqual([`refusal:BK_DENY_WRITE_LIMIT:key:${key.id}:repository:${repository.id}`]);
    expect((await monitor.evaluate('security')).repeated).toEqual([]);
    clock.advance(20 * HOUR);
    expect((await monitor.evaluate('security')).resolved.map((a) => a.rule)).toEqual(['refusal']);
    await notifier.idle();
    const sent = hook.requests.map((r) => JSON.parse(r.body) as { event: string; alert: { rule: string; severity: string } }).map((b) => `${b.event} ${b.alert.rule} ${b.alert.severity}`);
    expect(sent.filter((x) => x.includes('refusal')).sort()).toEqual(['opened refusal warning', 'opened refusal warning', 'repeated refusal warning', 'resolved refusal warning', 'resolved refusal warning']);
    expect(sent.filter((x) => x.includes('denial'))).toEqual(['opened denial critical', 'resolved denial critical']);
  });

  test('the quota alert rises from warning to critical as one alert, told at once, and does not add a second', async () => {
    const { store } = temp;
    const { monitor, notifier } = harness();
    const repository = await store.getRepository('laptop');
    await backup('laptop', 'laptop-key');
    const path = store.paths.repository(repository.dirName);
    sizes.set(path, 85 * 1024 ** 3);
    expect((await monitor.evaluate('state')).opened.map((a) => `${a.rule}/${a.severity}`)).toEqual(['quota/warning']);
    sizes.set(path, 97 * 1024 ** 3);
    const risen = await monitor.evaluate('state');
    expect(risen.opened).toEqual([]);
    expect(risen.repeated.map((a) => `${a.rule}/${a.severity}`)).toEqual(['quota/critical']);
    expect((await store.openAlerts()).map((a) => `${a.rule}/${a.severity}`)).toEqual(['quota/critical']);
    await notifier.idle();
    const still = await mail.waitFor((m) => m.subject.includes('STILL'));
    expect(still.raw.replace(/=\r?\n/g, '')).toContain('severity: critical');
    sizes.set(path, 10 * 1024 ** 3);
    expect((await monitor.evaluate('state')).resolved.map((a) => a.rule)).toEqual(['quota']);
    expect(await store.listAlerts({})).toHaveLength(1);
    await notifier.idle(); // nothing of this test is delivered into the next one
  });

  test("a replaced repository key is a critical alert naming who and when, for a day", async () => {
    const { store, clock } = temp;
    const { monitor, notifier } = harness();
    const repository = await store.getRepository('laptop');
    await backup('laptop', 'laptop-key');
    const event = await store.recordEvent({ repositoryId: repository.id, kind: 'key-change', throughTxn: 9, verdict: null, actor: "key 'laptop-key' (full)", detail: 'save_key' });
    const first = await monitor.evaluate('state');
    expect(first.opened.map((a) => `${a.rule}/${a.severity}`)).toEqual(['key-change/critical']);
    await notifier.idle();
    const m = await mail.waitFor((x) => x.subject.includes('was replaced'));
    expect(m.subject).toBe("[borgkeep backup-1] ALERT: the key of 'laptop' was replaced");
    expect(m.raw.replace(/=\r?\n/g, '')).toContain(`The repository key of 'laptop' was replaced by key 'laptop-key' (full) at ${event.at.toISOString()}.`);
    clock.advance(23 * HOUR);
    await backup('laptop', 'laptop-key');
    expect((await monitor.evaluate('state')).resolved).toEqual([]);
    clock.advance(HOUR);
    await backup('laptop', 'laptop-key');
    expect((await monitor.evaluate('state')).resolved.map((a) => a.rule)).toEqual(['key-change']);
    await notifier.idle();
  });

  test("a deferred compaction is a warning carrying the event's sentence until a compaction follows", async () => {
    const { store } = temp;
    const { monitor, notifier } = harness();
    const repository = await store.getRepository('laptop');
    await backup('laptop', 'laptop-key');
    const detail = "Compaction of 'laptop' was deferred: transaction 9 (a prune by key 'laptop-key') is not verified and 1.2 GiB wait to be freed; review it with borgkeep audit laptop, then borgkeep approve laptop.";
    await store.recordEvent({ repositoryId: repository.id, kind: 'compaction-deferred', throughTxn: 9, verdict: null, actor: "key 'laptop-key'", detail });
    const opened = await monitor.evaluate('state');
    expect(opened.opened.map((a) => `${a.rule}/${a.severity}`)).toEqual(['compaction-deferred/warning']);
    expect(opened.opened[0]!.detail).toBe(detail);
    await notifier.idle();
    expect((await mail.waitFor((m) => m.subject.includes('deferred'))).subject).toBe("[borgkeep backup-1] ALERT: compaction of 'laptop' was deferred");
    // An audit in between changes nothing; the compaction ends it.
    await store.recordEvent({ repositoryId: repository.id, kind: 'audit', throughTxn: 9, verdict: 'clean', actor: 'ann', detail: 'clean' });
    expect((await monitor.evaluate('state')).resolved).toEqual([]);
    await store.recordEvent({ repositoryId: repository.id, kind: 'compaction', throughTxn: 10, verdict: null, actor: "key 'laptop-key'", detail: 'compacted' });
    expect((await monitor.evaluate('state')).resolved.map((a) => a.rule)).toEqual(['compaction-deferred']);
    await notifier.idle();
  });
});

describe('every rule fires once, repeats and resolves', () => {
  test('quota, audit verdict, disk space, denials and failed logins', async () => {
    const { store, clock } = temp;
    const { monitor, notifier } = harness();
    const repository = await store.getRepository('laptop');
    const key = await store.getKey('laptop-key');
    await backup('laptop', 'laptop-key');

    sizes.set(store.paths.repository(repository.dirName), 97 * 1024 ** 3);
    free = { freeBytes: 5, totalBytes: 100 };
    await store.recordEvent({ repositoryId: repository.id, kind: 'audit', throughTxn: 7, verdict: 'suspicious', actor: 'cron', detail: 'first suspicious transaction 7' });
    const session = await store.startSession({ keyId: key.id, keyName: key.name, clientAddress: '10.0.0.9', startedAt: clock.now(), pid: process.pid, host: 'test' });
    await store.recordDenial({ sessionId: session, keyId: key.id, repositoryId: repository.id, method: 'delete', reason: 'BK_DENY_ROLE', message: 'the append role may not delete', at: clock.now() });
    for (let i = 0; i < 5; i++) await store.recordAuthFailure({ keyId: key.id, address: '192.0.2.7', reason: 'the key is revoked' });

    const state = await monitor.evaluate('state');
    const security = await monitor.evaluate('security');
    const rules = [...state.opened, ...security.opened].map((a) => `${a.rule}/${a.severity}`).sort();
    expect(rules).toEqual(['audit-suspicious/critical', 'auth-failures/warning', 'denial/critical', 'disk-space/critical', 'quota/critical']);
    // Evaluated again at once: nothing new.
    expect((await monitor.evaluate('state')).opened).toEqual([]);
    expect((await monitor.evaluate('security')).opened).toEqual([]);
    await notifier.idle();
    const denialMail = await mail.waitFor((m) => m.subject.includes('refused'));
    expect(denialMail.subject).toBe("[borgkeep backup-1] ALERT: key 'laptop-key' was refused delete on 'laptop' from 10.0.0.9");

    clock.advance(4 * HOUR);
    // The denial window (1 h) and the failed-login window (10 min) are over: those resolve; the rest repeat.
    const repeatedState = await monitor.evaluate('state');
    const resolvedSecurity = await monitor.evaluate('security');
    expect(repeatedState.repeated.map((a) => a.rule).sort()).toEqual(['audit-suspicious', 'disk-space', 'quota']);
    expect(repeatedState.opened.map((a) => a.rule)).toEqual(['backup-late']);
    expect(resolvedSecurity.resolved.map((a) => a.rule).sort()).toEqual(['auth-failures', 'denial']);

    // Fixing things resolves them: a pruned repository, space freed, the history approved, a backup.
    sizes.set(store.paths.repository(repository.dirName), 10 * 1024 ** 3);
    free = { freeBytes: 60, totalBytes: 100 };
    await store.recordEvent({ repositoryId: repository.id, kind: 'approve', throughTxn: 7, verdict: null, actor: 'ann', detail: 'reviewed' });
    await backup('laptop', 'laptop-key');
    const fixed = await monitor.evaluate('state');
    expect(fixed.resolved.map((a) => a.rule).sort()).toEqual(['audit-suspicious', 'backup-late', 'disk-space', 'quota']);
    expect(await store.openAlerts()).toEqual([]);
    await notifier.idle();
    expect(hook.requests.filter((r) => JSON.parse(r.body).event === 'resolved')).toHaveLength(6);
  });
});

describe('webhooks', () => {
  test('the JSON body is signed: the HMAC over timestamp and body verifies with the secret, and not with another', async () => {
    const { store, clock } = temp;
    const { monitor, notifier } = harness();
    clock.advance(2 * HOUR);
    await monitor.evaluate('state');
    await notifier.idle();
    const r = await hook.waitFor(() => true);
    const timestamp = r.headers['x-borgkeep-timestamp'] as string;
    expect(Number(timestamp)).toBe(Math.floor(clock.now().getTime() / 1000));
    const sign = (secret: string) => `sha256=${createHmac('sha256', secret).update(`${timestamp}.${r.body}`).digest('hex')}`;
    expect(r.headers['x-borgkeep-signature']).toBe(sign('hook-secret'));
    expect(r.headers['x-borgkeep-signature']).not.toBe(sign('other-secret'));
    const body = JSON.parse(r.body);
    expect(body).toMatchObject({ event: 'opened', server: 'backup-1', alert: { rule: 'backup-late', severity: 'warning', repository: 'laptop' } });
    expect(Object.keys(body.alert).sort()).toEqual(['detail', 'id', 'openedAt', 'repository', 'resolvedAt', 'rule', 'severity', 'summary']);
    expect(r.headers['content-type']).toBe('application/json');
    await store.removeChannel('ops-hook');
  });

  test('slack, discord and text formats carry the one line those services show', async () => {
    const { store, clock } = temp;
    const { monitor, notifier } = harness();
    await store.removeChannel('ops-hook');
    for (const format of ['slack', 'discord', 'text'] as const) await store.addChannel({ name: `chat-${format}`, kind: 'webhook', target: `${hook.url}?${format}`, format });
    clock.advance(2 * HOUR);
    await monitor.evaluate('state');
    await notifier.idle();
    const line = "[borgkeep backup-1] ALERT: 'laptop' has had no backup since it was created 2 h ago";
    const by = (q: string) => hook.requests.find((r) => r.headers['content-type']?.includes(q === 'text' ? 'text/plain' : 'json') && (q === 'text' || r.body.includes(q === 'slack' ? '"text"' : '"content"')));
    expect(JSON.parse(by('slack')!.body)).toEqual({ text: line });
    expect(JSON.parse(by('discord')!.body)).toEqual({ content: line });
    expect(by('text')!.body.split('\n')[0]).toBe(line);
    expect(by('text')!.headers.title).toBe(line);
  });

  test('a failing receiver is retried, then reported; the mail and the other webhook go out at once', async () => {
    const { store, clock } = temp;
    const { monitor, notifier } = harness();
    await store.addChannel({ name: 'broken-hook', kind: 'webhook', target: broken.url });
    clock.advance(2 * HOUR);
    const t = Date.now();
    await monitor.evaluate('state');
    // The evaluation does not wait for deliveries; the working channels do not wait for the broken one.
    expect(Date.now() - t).toBeLessThan(1000);
    await mail.waitFor(() => true, 2000);
    await hook.waitFor(() => true, 2000);
    await notifier.idle();
    expect(broken.requests).toHaveLength(3); // the first try and two retries
    const deliveries = await store.listDeliveries({});
    const failed = deliveries.find((d) => d.channelName === 'broken-hook');
    expect(failed).toMatchObject({ state: 'failed', attempts: 3, lastError: `the webhook 127.0.0.1:${new URL(broken.url).port} answered HTTP 503` });
    expect(deliveries.filter((d) => d.state === 'sent').map((d) => d.channelName).sort()).toEqual(['ops-hook', 'ops-mail']);
    expect(errors).toEqual([`alert delivery to channel 'broken-hook' failed: the webhook 127.0.0.1:${new URL(broken.url).port} answered HTTP 503`]);
  });

  test('the test action reports the error of a broken channel in one sentence, and success for a working one', async () => {
    const { store } = temp;
    const { notifier } = harness();
    await store.addChannel({ name: 'broken-hook', kind: 'webhook', target: broken.url });
    expect(await notifier.test(await store.getChannel('ops-mail'))).toBeNull();
    expect((await mail.waitFor((m) => m.subject.includes('TEST'))).subject).toBe("[borgkeep backup-1] TEST: test message to channel 'ops-mail'");
    expect(await notifier.test(await store.getChannel('broken-hook'))).toMatch(/^the webhook 127\.0\.0\.1:\d+ answered HTTP 503$/);
    await store.setSetting('smtp', { host: '127.0.0.1', port: mail.port, secure: false, requireTls: false, user: 'alerts', password: 'wrong', from: 'borgkeep@example.org', verifyCertificate: true });
    expect(await notifier.test(await store.getChannel('ops-mail'))).toMatch(/^the mail server 127\.0\.0\.1:\d+ did not take the message: /);
  });
});

describe('mail', () => {
  test('STARTTLS with a login: the message goes out encrypted; a server that cannot upgrade is refused when TLS is required', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smtp-tls-'));
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const secure = await startMailSink({ user: 'alerts', password: 'secret', tls: { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') } });
    rmSync(dir, { recursive: true, force: true });
    try {
      const { store } = temp;
      const { notifier } = harness();
      const smtp = { host: '127.0.0.1', port: secure.port, secure: false, requireTls: true, user: 'alerts', password: 'secret', from: 'borgkeep@example.org', verifyCertificate: false };
      await store.setSetting('smtp', smtp satisfies SmtpSettings);
      expect(await notifier.test(await store.getChannel('ops-mail'))).toBeNull();
      expect(secure.tlsUsed()).toBe(true);
      expect((await secure.waitFor(() => true)).subject).toContain('TEST');
      // The self-signed certificate is refused when it is checked.
      await store.setSetting('smtp', { ...smtp, verifyCertificate: true });
      expect(await notifier.test(await store.getChannel('ops-mail'))).toMatch(/did not take the message: .*certificate/i);
      // The plain server offers no STARTTLS: with requireTls the message is not sent in the clear.
      await store.setSetting('smtp', { ...smtp, port: mail.port, requireTls: true });
      expect(await notifier.test(await store.getChannel('ops-mail'))).toMatch(/did not take the message: .*STARTTLS/i);
    } finally {
      await secure.close();
    }
  });
});
