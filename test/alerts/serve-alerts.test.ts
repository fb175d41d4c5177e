// Monitoring in a running `borgkeep serve`, with the real borg client through the embedded
// gateway: a delete refused to an append key reaches the configured mail and webhook within five
// seconds; /metrics parses as Prometheus text and its values match the ledger after a scripted
// sequence of backups; the metrics token is asked for; the jobs are listed with their last run.

import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
// @ts-expect-error: the parser ships no types
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { startHttpSink, startMailSink, type HttpSink, type MailSink } from '../helpers/alert-receivers.js';
import { firstAdminPassword } from '../helpers/first-admin.js';

interface Metric {
  name: string;
  type: string;
  metrics: Array<{ labels?: Record<string, string>; value: string }>;
}

const METRICS_TOKEN = 'metrics-token-for-the-test-0123';
let env: BorgkeepEnv;
let mail: MailSink;
let hook: HttpSink;
let http = '';

beforeAll(async () => {
  mail = await startMailSink();
  hook = await startHttpSink();
  const configFile = join(process.env.TMPDIR ?? '/tmp', `borgkeep-alerts-${process.pid}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      metricsToken: METRICS_TOKEN,
      alerts: {
        smtp: { host: '127.0.0.1', port: mail.port, requireTls: false, from: 'borgkeep <backup@example.org>' },
        channels: [
          { name: 'ops', kind: 'email', target: 'ops@example.org' },
          { name: 'hook', kind: 'webhook', target: hook.url, secret: 'a-webhook-secret-of-some-length' },
        ],
      },
    }),
  );
  env = createBorgkeepEnv('serve-alerts', 'embedded', { serveArgs: ['--config', configFile] });
  await env.repoWithKeys('main', { admin: 'full', laptop: 'append' });
  const front = await env.frontEnd();
  http = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(front.log())?.[1] ?? '';
  expect(http).not.toBe('');
});
afterAll(async () => {
  await env?.cleanup();
  await Promise.all([mail?.close(), hook?.close()]);
});

const scrape = async (token: string | null = METRICS_TOKEN) => fetch(`${http}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
const metrics = async (): Promise<Map<string, Metric>> => {
  const r = await scrape();
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return new Map((parsePrometheusTextFormat(await r.text()) as Metric[]).map((m) => [m.name, m]));
};
const value = (m: Map<string, Metric>, name: string, labels: Record<string, string>) =>
  m.get(name)?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v))?.value;

test('a delete refused to an append key reaches the mail and the webhook within 5 seconds', async () => {
  expect((await env.borg('admin', ['init', '-e', 'repokey', env.url('main')])).code).toBe(0);
  const src = makeSourceTree(join(env.root, 'src'), 1);
  const created = await env.borg('laptop', ['create', `${env.url('main')}::monday`, src]);
  expect(created.code, created.stderr).toBe(0);

  const refused = await env.borg('laptop', ['delete', `${env.url('main')}::monday`]);
  const at = Date.now();
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain('delete');
  const mailed = await mail.waitFor((m) => m.subject.includes('refused'), 5000);
  const posted = await hook.waitFor((r) => r.body.includes('"rule":"denial"'), 5000);
  expect(mailed.at - at).toBeLessThan(5000);
  expect(posted.at - at).toBeLessThan(5000);
  expect(mailed.subject).toMatch(/^\[borgkeep [^\]]+\] ALERT: key 'laptop' was refused [a-z_]+ on 'main' from 127\.0\.0\.1/);
  expect(mailed.to).toEqual(['ops@example.org']);
  const body = JSON.parse(posted.body);
  expect(body).toMatchObject({ event: 'opened', alert: { rule: 'denial', severity: 'critical', repository: 'main' } });
  const signature = `sha256=${createHmac('sha256', 'a-webhook-secret-of-some-length').update(`${posted.headers['x-borgkeep-timestamp']}.${posted.body}`).digest('hex')}`;
  expect(posted.headers['x-borgkeep-signature']).toBe(signature);
  // The alert is listed by the API as well (through the metrics endpoint's gauge here).
  expect(value(await metrics(), 'borgkeep_alerts_open', { rule: 'denial' })).toBe('1');
});

test('/metrics asks for its token, parses as Prometheus text, and its values match the ledger', async () => {
  expect((await scrape(null)).status).toBe(401);
  expect((await scrape('wrong-token-wrong-token-wrong')).status).toBe(401);

  const src = makeSourceTree(join(env.root, 'src2'), 2);
  for (const name of ['tuesday', 'wednesday']) expect((await env.borg('laptop', ['create', `${env.url('main')}::${name}`, src])).code).toBe(0);
  expect((await env.borg('admin', ['list', env.url('main')])).code).toBe(0);

  const ledger = JSON.parse(await env.cliOk(['ledger', '--repo', 'main', '--json', '--limit', '1000'])) as {
    sessions: Array<{ result: string; endedAt: string | null; bytesIn: number; bytesOut: number; transactions: Array<{ state: string; objectsPut: number }> }>;
  };
  const m = await metrics();
  const repo = { repository: 'main' };
  const ended = ledger.sessions.filter((s) => s.result !== 'open');
  const byResult = new Map<string, number>();
  for (const s of ended) byResult.set(s.result, (byResult.get(s.result) ?? 0) + 1);
  for (const [result, n] of byResult) expect(value(m, 'borgkeep_repository_sessions_total', { ...repo, result }), result).toBe(String(n));
  expect(byResult.get('ok')).toBeGreaterThanOrEqual(5); // init, three backups, list
  expect(byResult.get('denied')).toBe(1);
  // The last backup: a session that committed new objects besides the manifest (a prune is none).
  const lastBackup = ended.filter((s) => s.result === 'ok' && s.transactions.some((t) => t.state === 'committed' && t.objectsPut > 0)).map((s) => Date.parse(s.endedAt!)).sort((a, b) => b - a)[0];
  expect(Number(value(m, 'borgkeep_repository_last_backup_timestamp_seconds', repo))).toBe(lastBackup / 1000);
  expect(Number(value(m, 'borgkeep_repository_received_bytes_total', repo))).toBe(ended.reduce((n, s) => n + s.bytesIn, 0));
  expect(Number(value(m, 'borgkeep_repository_sent_bytes_total', repo))).toBe(ended.reduce((n, s) => n + s.bytesOut, 0));
  expect(Number(value(m, 'borgkeep_repository_denials_total', repo))).toBeGreaterThanOrEqual(1);
  expect(Number(value(m, 'borgkeep_repository_size_bytes', repo))).toBeGreaterThan(0);
  expect(value(m, 'borgkeep_repository_expected_interval_seconds', repo)).toBe(String(26 * 3600));
  // The embedded gateway counted its connections and the guard its calls.
  expect(Number(value(m, 'borgkeep_gateway_connections_total', {}))).toBeGreaterThanOrEqual(ended.length);
  expect(Number(value(m, 'borgkeep_guard_frames_total', { method: 'put' }))).toBeGreaterThan(0);
  expect(Number(value(m, 'borgkeep_guard_frames_total', { method: 'negotiate' }))).toBe(ended.length);
  for (const name of m.keys()) expect(name.startsWith('borgkeep_')).toBe(true);
});

test('the jobs are listed with their last run; statistics run on demand and show in the repository stats', async () => {
  // Logged in as the first admin, with the one-time password serve wrote to its file.
  const password = firstAdminPassword(env.dataDir);
  expect(password).toBeDefined();
  const login = await fetch(`${http}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password }) });
  expect(login.status).toBe(200);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  const api = (method: string, path: string) =>
    fetch(`${http}/api/v1${path}`, { method, headers: { cookie, "x-csrf-token": csrfToken } }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const run = await api('POST', '/jobs/statistics/run');
  expect(run.status, JSON.stringify(run.body)).toBe(200);
  expect(run.body.job).toMatchObject({ name: 'statistics', lastResult: 'ok', lastDetail: 'measured 1 repository' });
  const stats = await api('GET', '/repositories/main/stats');
  expect(stats.body.stats).toHaveLength(1);
  expect(stats.body.stats[0].sizeBytes).toBeGreaterThan(0);
  expect(stats.body.stats[0].objects).toBeGreaterThan(0);
  const jobs = await api('GET', '/jobs');
  expect(jobs.body.jobs.map((j: { name: string }) => j.name).sort()).toEqual(['alerts-security', 'alerts-state', 'archive-checks', 'audits', 'pull-schedules', 'retention', 'statistics', 'verify']);
  expect(jobs.body.jobs.find((j: { name: string }) => j.name === 'alerts-security').lastResult).toBe('ok');
  const alerts = await api('GET', '/alerts?state=open');
  expect(alerts.body.alerts.map((a: { rule: string }) => a.rule)).toContain('denial');
});
