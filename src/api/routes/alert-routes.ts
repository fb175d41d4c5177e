// Monitoring: alerts (open and past, with their deliveries), alert channels (mail, webhooks) with
// a "send test" action, the alert settings and the mail server, the scheduler's jobs (with "run
// now"), and each repository's daily statistics for its size chart. Secrets (webhook secrets, the
// mail password) are write-only: answers say whether one is set, never what it is.

import { z } from 'zod';

import { SMTP_SETTINGS, alertSettingsSchema, channelSchema, smtpSchema } from '../../alerts/alert-config.js';
import { silencedBy } from '../../alerts/alert-engine.js';
import { DEFAULT_ALERT_SETTINGS } from '../../alerts/alert-rules.js';
import { ALERT_SETTINGS, alertSettings } from '../../alerts/monitor.js';
import type { Notifier } from '../../alerts/notifier.js';
import { invalidInput, notFound } from '../../errors.js';
import type { Scheduler } from '../../jobs/scheduler.js';
import type { AlertChannel, AlertRecord, AlertSilence, Delivery } from '../../store/monitoring-store.js';
import type { ApiContext } from '../api-server.js';
import { actorOf } from '../presenters.js';
import { defineRoute } from '../route.js';
import { idParams, name, nameParams, time } from '../schemas.js';

/** What the monitoring routes need besides the store: the running notifier and scheduler. */
export interface MonitoringApi {
  notifier: Pick<Notifier, 'test'>;
  scheduler: Pick<Scheduler, 'list' | 'runNow'>;
}

const tag = 'monitoring';
const alertSchema = z
  .object({
    id: z.number(),
    rule: z.string(),
    severity: z.enum(['warning', 'critical']),
    repository: z.string().nullable(),
    summary: z.string(),
    detail: z.string(),
    openedAt: time,
    lastNotifiedAt: time,
    notifications: z.number(),
    resolvedAt: time.nullable(),
    /** The SSH key it is about (refusals, failed logins), for a silence per key. */
    key: z.string().nullable(),
    acknowledgedAt: time.nullable(),
    acknowledgedBy: z.string().nullable(),
    /** A silence covers it now: nothing of it goes to the channels. */
    silenced: z.boolean(),
  })
  .meta({ id: 'Alert' });
const silenceSchema = z
  .object({
    id: z.number(),
    repository: z.string().nullable(),
    key: z.string().nullable(),
    until: time,
    reason: z.string().nullable(),
    createdBy: z.string(),
    createdAt: time,
    endedBy: z.string().nullable(),
    active: z.boolean(),
  })
  .meta({ id: 'AlertSilence' });
/** A silence lasts from a minute to 30 days: longer is a disabled channel, not a silence. */
const MAX_SILENCE_SECONDS = 30 * 86_400;
const deliverySchema = z
  .object({ id: z.number(), channel: z.string(), event: z.enum(['opened', 'repeated', 'resolved', 'test']), state: z.enum(['pending', 'sent', 'failed']), attempts: z.number(), lastError: z.string().nullable(), createdAt: time, finishedAt: time.nullable() })
  .meta({ id: 'AlertDelivery' });
const channelOut = z
  .object({ name: z.string(), kind: z.enum(['email', 'webhook']), target: z.string(), format: z.string().nullable(), hasSecret: z.boolean(), enabled: z.boolean(), createdAt: time })
  .meta({ id: 'AlertChannel' });
const smtpOut = smtpSchema.omit({ password: true }).extend({ hasPassword: z.boolean() });
const jobSchema = z
  .object({
    name: z.string(),
    description: z.string(),
    pattern: z.string(),
    running: z.boolean(),
    nextRunAt: time.nullable(),
    lastStartedAt: time.nullable(),
    lastFinishedAt: time.nullable(),
    lastResult: z.enum(['ok', 'error']).nullable(),
    lastDetail: z.string().nullable(),
  })
  .meta({ id: 'Job' });

const channelJson = (c: AlertChannel) => ({ name: c.name, kind: c.kind, target: c.target, format: c.format, hasSecret: c.secret !== null, enabled: c.enabled, createdAt: c.createdAt });
const deliveryJson = (d: Delivery) => ({ id: d.id, channel: d.channelName, event: d.event, state: d.state, attempts: d.attempts, lastError: d.lastError, createdAt: d.createdAt, finishedAt: d.finishedAt });

export function alertRoutes(ctx: ApiContext, monitoring: MonitoringApi | null) {
  const running = (): MonitoringApi => {
    if (!monitoring) throw notFound('monitoring does not run in this server');
    return monitoring;
  };
  const repositoryNames = async () => new Map((await ctx.store.listRepositoryRecords()).map((r) => [r.id, r.name]));
  const keyNames = async () => new Map((await ctx.store.listKeys()).map((k) => [k.id, k.name]));
  const silenceJson = (s: AlertSilence, names: Map<number, string>, keys: Map<number, string>) => ({
    id: s.id,
    repository: s.repositoryId === null ? null : (names.get(s.repositoryId) ?? null),
    key: s.keyId === null ? null : (keys.get(s.keyId) ?? null),
    until: s.until,
    reason: s.reason,
    createdBy: s.createdBy,
    createdAt: s.createdAt,
    endedBy: s.endedBy,
    active: s.until.getTime() > ctx.now().getTime(),
  });
  const alertsJson = async (alerts: AlertRecord[]) => {
    const [names, keys, silences] = await Promise.all([repositoryNames(), keyNames(), ctx.store.listSilences({ activeAt: ctx.now(), limit: 10_000 })]);
    return alerts.map((a) => ({
      ...alertJson(a, names),
      key: a.keyId === null ? null : (keys.get(a.keyId) ?? null),
      acknowledgedAt: a.acknowledgedAt,
      acknowledgedBy: a.acknowledgedBy,
      silenced: a.resolvedAt === null && silencedBy(silences, a) !== undefined,
    }));
  };
  const alertJson = (a: AlertRecord, names: Map<number, string>) => ({
    id: a.id,
    rule: a.rule,
    severity: a.severity as 'warning' | 'critical',
    repository: a.repositoryId === null ? null : (names.get(a.repositoryId) ?? null),
    summary: a.summary,
    detail: a.detail,
    openedAt: a.openedAt,
    lastNotifiedAt: a.lastNotifiedAt,
    notifications: a.notifications,
    resolvedAt: a.resolvedAt,
  });
  const storedSmtp = async () => (await ctx.store.getSetting<z.output<typeof smtpSchema> | null>(SMTP_SETTINGS)) ?? undefined;
  const smtpJson = (s: z.output<typeof smtpSchema> | undefined) => {
    if (!s) return null;
    const { password, ...rest } = s;
    return { ...rest, hasPassword: password !== null && password !== '' };
  };

  return [
    defineRoute({
      method: 'GET',
      url: '/alerts',
      tag,
      summary: 'alerts, newest first: open ones, resolved ones, or all',
      access: 'viewer',
      query: z.object({ state: z.enum(['open', 'resolved', 'all']).default('all'), limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict(),
      response: z.object({ alerts: z.array(alertSchema) }),
      async handler({ query }) {
        const alerts = await ctx.store.listAlerts({ open: query.state === 'all' ? undefined : query.state === 'open', limit: query.limit });
        return { alerts: await alertsJson(alerts) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/alerts/:id/acknowledge',
      tag,
      summary: 'acknowledge an open alert: it is not sent again (a rise to critical still is), and resolves by itself when its cause is gone',
      access: 'operator',
      params: idParams,
      response: z.object({ alert: alertSchema }),
      async handler({ params, principal }) {
        const [alert] = await alertsJson([await ctx.store.acknowledgeAlert(params.id, actorOf(principal!))]);
        return { alert };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/alert-silences',
      tag,
      summary: 'silences: the active ones, or all of the last 100 (ended ones too)',
      access: 'viewer',
      query: z.object({ state: z.enum(['active', 'all']).default('active') }).strict(),
      response: z.object({ silences: z.array(silenceSchema) }),
      async handler({ query }) {
        const silences = await ctx.store.listSilences(query.state === 'active' ? { activeAt: ctx.now() } : {});
        const [names, keys] = await Promise.all([repositoryNames(), keyNames()]);
        return { silences: silences.map((s) => silenceJson(s, names, keys)) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/alert-silences',
      tag,
      summary: "silence a repository's or a key's alerts for a time: they still open and resolve here, but no mail or webhook goes out until the silence ends",
      access: 'operator',
      status: 201,
      body: z
        .object({
          repository: name.optional(),
          key: name.optional(),
          /** From 60 (a minute) to 2592000 (30 days). */
          seconds: z.number(),
          reason: z.string().trim().max(200).optional(),
        })
        .strict(),
      response: z.object({ silence: silenceSchema }),
      async handler({ body, principal }) {
        if ((body.repository === undefined) === (body.key === undefined)) throw invalidInput('name a repository or a key to silence, one of the two');
        if (!Number.isSafeInteger(body.seconds) || body.seconds < 60 || body.seconds > MAX_SILENCE_SECONDS) {
          throw invalidInput(`a silence lasts from a minute to 30 days (60 to ${MAX_SILENCE_SECONDS} seconds), not ${body.seconds} seconds`);
        }
        const repositoryId = body.repository === undefined ? null : (await ctx.store.getRepository(body.repository)).id;
        const keyId = body.key === undefined ? null : (await ctx.store.getKey(body.key)).id;
        const silence = await ctx.store.addSilence({
          repositoryId,
          keyId,
          until: new Date(ctx.now().getTime() + body.seconds * 1000),
          reason: body.reason || null,
          createdBy: actorOf(principal!),
        });
        const [names, keys] = await Promise.all([repositoryNames(), keyNames()]);
        return { silence: silenceJson(silence, names, keys) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/alert-silences/:id',
      tag,
      summary: 'end a silence now (it stays listed, with who ended it); alerts it held back that still hold are sent',
      access: 'operator',
      params: idParams,
      response: z.object({ silence: silenceSchema }),
      async handler({ params, principal }) {
        const silence = await ctx.store.endSilence(params.id, actorOf(principal!));
        const [names, keys] = await Promise.all([repositoryNames(), keyNames()]);
        return { silence: silenceJson(silence, names, keys) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/alerts/:id/deliveries',
      tag,
      summary: "an alert's messages to each channel: sent, still being retried, or failed and why",
      access: 'viewer',
      params: idParams,
      response: z.object({ deliveries: z.array(deliverySchema) }),
      handler: async ({ params }) => ({ deliveries: (await ctx.store.listDeliveries({ alertId: params.id })).map(deliveryJson) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/alert-channels',
      tag,
      summary: 'where alerts go',
      access: 'viewer',
      response: z.object({ channels: z.array(channelOut) }),
      handler: async () => ({ channels: (await ctx.store.listChannels()).map(channelJson) }),
    }),
    defineRoute({
      method: 'POST',
      url: '/alert-channels',
      tag,
      summary: 'add a channel: mail addresses, or a webhook URL (json signed with the secret, slack, discord or text)',
      access: 'operator',
      status: 201,
      body: channelSchema,
      response: z.object({ channel: channelOut }),
      handler: async ({ body }) => ({ channel: channelJson(await ctx.store.addChannel(body)) }),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/alert-channels/:name',
      tag,
      summary: "change a channel's target, format, secret or whether it is enabled",
      access: 'operator',
      params: nameParams,
      body: channelSchema.omit({ name: true, kind: true }).partial().strict(),
      response: z.object({ channel: channelOut }),
      handler: async ({ params, body }) => ({ channel: channelJson(await ctx.store.updateChannel(params.name, body)) }),
    }),
    defineRoute({
      method: 'DELETE',
      url: '/alert-channels/:name',
      tag,
      summary: 'remove a channel',
      access: 'operator',
      params: nameParams,
      status: 204,
      async handler({ params }) {
        await ctx.store.removeChannel(params.name);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/alert-channels/:name/test',
      tag,
      summary: 'send a test message to a channel now; says whether it went out, and if not, why',
      access: 'operator',
      params: nameParams,
      response: z.object({ sent: z.boolean(), error: z.string().nullable() }),
      async handler({ params }) {
        const error = await running().notifier.test(await ctx.store.getChannel(params.name));
        return { sent: error === null, error };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/alert-settings',
      tag,
      summary: 'the thresholds of the alert rules (with their defaults filled in) and the mail server (without its password)',
      access: 'viewer',
      response: z.object({ settings: alertSettingsSchema.required(), defaults: alertSettingsSchema.required(), smtp: smtpOut.nullable() }),
      handler: async () => ({
        settings: await alertSettings(ctx.store),
        defaults: DEFAULT_ALERT_SETTINGS,
        smtp: smtpJson(await storedSmtp()),
      }),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/alert-settings',
      tag,
      summary: 'change thresholds (null puts one back to its default) or the mail server (a password left out is kept; null removes the mail server)',
      access: 'admin',
      body: z
        .object({
          settings: z.record(z.string(), z.unknown()).optional(),
          smtp: smtpSchema.extend({ password: z.string().max(1024).nullable().optional() }).nullable().optional(),
        })
        .strict(),
      response: z.object({ settings: alertSettingsSchema.required(), smtp: smtpOut.nullable() }),
      async handler({ body }) {
        if (body.settings) {
          const current = (await ctx.store.getSetting<Record<string, unknown>>(ALERT_SETTINGS)) ?? {};
          const merged: Record<string, unknown> = { ...current };
          for (const [k, v] of Object.entries(body.settings)) {
            if (v === null) delete merged[k];
            else merged[k] = v;
          }
          const checked = alertSettingsSchema.safeParse(merged);
          if (!checked.success) {
            const issue = checked.error.issues[0];
            throw invalidInput(`settings.${issue.path.join('.') || '?'}: ${issue.message.replace(/^Invalid input: /, '')}`);
          }
          await ctx.store.setSetting(ALERT_SETTINGS, checked.data);
        }
        if (body.smtp === null) await ctx.store.setSetting(SMTP_SETTINGS, null);
        else if (body.smtp) {
          const before = await storedSmtp();
          await ctx.store.setSetting(SMTP_SETTINGS, { ...body.smtp, password: body.smtp.password === undefined ? (before?.password ?? null) : body.smtp.password });
        }
        return { settings: await alertSettings(ctx.store), smtp: smtpJson(await storedSmtp()) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/jobs',
      tag,
      summary: "the scheduler's jobs: when each runs next, and its last run and result",
      access: 'viewer',
      response: z.object({ jobs: z.array(jobSchema) }),
      handler: async () => ({ jobs: await running().scheduler.list() }),
    }),
    defineRoute({
      method: 'POST',
      url: '/jobs/:name/run',
      tag,
      summary: 'run a job now and wait for it (a run under way is waited for, not doubled)',
      access: 'operator',
      params: z.object({ name: z.string().min(1).max(64) }).strict(),
      response: z.object({ job: jobSchema }),
      async handler({ params }) {
        const scheduler = running().scheduler;
        const job = (await scheduler.list()).find((j) => j.name === params.name);
        if (!job) throw notFound(`there is no job named '${params.name}'`);
        await scheduler.runNow(params.name);
        return { job: (await scheduler.list()).find((j) => j.name === params.name) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/stats',
      tag,
      summary: "a repository's daily statistics (size on disk, objects, what compaction would free, borg's own usage), oldest first",
      access: 'viewer',
      params: nameParams,
      query: z.object({ days: z.coerce.number().int().min(1).max(3660).default(90) }).strict(),
      response: z.object({
        repository: name,
        stats: z.array(z.object({ at: time, sizeBytes: z.number(), objects: z.number().nullable(), reclaimableBytes: z.number().nullable(), storageUsedBytes: z.number().nullable() })),
      }),
      async handler({ params, query }) {
        const repository = await ctx.store.getRepository(params.name);
        const since = new Date(ctx.now().getTime() - query.days * 86_400_000);
        const stats = await ctx.store.listRepositoryStats(repository.id, since);
        return { repository: repository.name, stats: stats.map(({ repositoryId: _id, ...s }) => s) };
      },
    }),
  ];
}
