// What monitoring keeps: alert channels, alerts and their deliveries, the scheduler's jobs,
// daily repository statistics, failed logins of known keys, and named settings; plus the two
// reads the alert rules need from the ledger (recent denials, recent failed logins), grouped in
// the database so they stay cheap however long the ledger grows.

import { conflict, invalidInput, notFound } from '../errors.js';
import { checkName } from './names.js';
import { iso } from './rows.js';
import { isUniqueViolation, type StoreDeps } from './store-deps.js';

export type ChannelKind = 'email' | 'webhook';
export const WEBHOOK_FORMATS = ['json', 'slack', 'discord', 'text'] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

export interface AlertChannel {
  id: number;
  name: string;
  kind: ChannelKind;
  /** Mail: comma-separated addresses. Webhook: the URL. */
  target: string;
  format: WebhookFormat | null;
  /** Webhook signing secret; never shown by the API after it is set. */
  secret: string | null;
  enabled: boolean;
  createdAt: Date;
}

export interface AlertRecord {
  id: number;
  key: string;
  rule: string;
  severity: string;
  repositoryId: number | null;
  summary: string;
  detail: string;
  openedAt: Date;
  lastNotifiedAt: Date;
  notifications: number;
  resolvedAt: Date | null;
  /** The SSH key the alert is about (refusals, failed logins), for silences per key. */
  keyId: number | null;
  /** Acknowledged: someone is on it; it is not sent again, and still resolves by itself. */
  acknowledgedAt: Date | null;
  acknowledgedBy: string | null;
}

/** No mail or webhook for alerts of a repository or a key until `until`. */
export interface AlertSilence {
  id: number;
  repositoryId: number | null;
  keyId: number | null;
  until: Date;
  reason: string | null;
  createdBy: string;
  createdAt: Date;
  /** Who ended it before its time (`until` is then when). */
  endedBy: string | null;
}

export type DeliveryEvent = 'opened' | 'repeated' | 'resolved' | 'test';
export type DeliveryState = 'pending' | 'sent' | 'failed';

export interface Delivery {
  id: number;
  alertId: number | null;
  channelId: number | null;
  channelName: string;
  event: DeliveryEvent;
  state: DeliveryState;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface JobRecord {
  name: string;
  lastStartedAt: Date | null;
  lastFinishedAt: Date | null;
  lastResult: 'ok' | 'error' | null;
  lastDetail: string | null;
}

export interface RepositoryStat {
  repositoryId: number;
  at: Date;
  sizeBytes: number;
  objects: number | null;
  reclaimableBytes: number | null;
  storageUsedBytes: number | null;
}

export interface DenialGroup {
  reason: string;
  keyId: number | null;
  keyName: string | null;
  repositoryId: number | null;
  repositoryName: string | null;
  count: number;
  lastAt: Date;
  method: string;
  message: string;
  address: string | null;
}

export interface AuthFailureGroup {
  keyId: number;
  keyName: string;
  count: number;
  lastAt: Date;
  addresses: string[];
  reason: string;
}

export interface ChannelInput {
  name: string;
  kind: ChannelKind;
  target: string;
  format?: WebhookFormat | null;
  secret?: string | null;
  enabled?: boolean;
}

export interface MonitoringStore {
  listChannels(): Promise<AlertChannel[]>;
  getChannel(name: string): Promise<AlertChannel>;
  addChannel(input: ChannelInput): Promise<AlertChannel>;
  updateChannel(name: string, change: Partial<Omit<ChannelInput, 'name' | 'kind'>>): Promise<AlertChannel>;
  removeChannel(name: string): Promise<void>;

  /** Alerts not resolved yet. */
  openAlerts(): Promise<AlertRecord[]>;
  listAlerts(filter: { open?: boolean; limit?: number }): Promise<AlertRecord[]>;
  /** `notified: false` (a silenced cause): opened without a message, notifications 0. */
  openAlert(a: { key: string; rule: string; severity: string; repositoryId: number | null; keyId?: number | null; summary: string; detail: string; notified?: boolean }): Promise<AlertRecord>;
  getAlert(id: number): Promise<AlertRecord>;
  /** Marks an open alert acknowledged (once: the first who did stays); refuses a resolved one. */
  acknowledgeAlert(id: number, by: string): Promise<AlertRecord>;
  addSilence(s: { repositoryId: number | null; keyId: number | null; until: Date; reason: string | null; createdBy: string }): Promise<AlertSilence>;
  /** Silences whose end is after `at` (active ones), or every one from the last `limit`. */
  listSilences(filter: { activeAt?: Date; limit?: number }): Promise<AlertSilence[]>;
  /** Ends a silence now. */
  endSilence(id: number, by: string): Promise<AlertSilence>;
  /** New text for an open alert; `notified` also counts a repeat notification. */
  updateAlert(id: number, change: { summary: string; detail: string; severity: string; notified: boolean }): Promise<void>;
  resolveAlert(id: number): Promise<AlertRecord>;

  addDelivery(d: { alertId: number | null; channelId: number | null; channelName: string; event: DeliveryEvent }): Promise<number>;
  updateDelivery(id: number, d: { state: DeliveryState; attempts: number; lastError: string | null }): Promise<void>;
  listDeliveries(filter: { alertId?: number; limit?: number }): Promise<Delivery[]>;

  jobStarted(name: string): Promise<void>;
  jobFinished(name: string, result: 'ok' | 'error', detail: string): Promise<void>;
  listJobs(): Promise<JobRecord[]>;

  addRepositoryStat(stat: Omit<RepositoryStat, 'at'>): Promise<void>;
  listRepositoryStats(repositoryId: number, since: Date): Promise<RepositoryStat[]>;

  recordAuthFailure(f: { keyId: number; address: string | null; reason: string }): Promise<void>;
  /** Failed logins of known keys since `since`, per key. */
  authFailuresSince(since: Date): Promise<AuthFailureGroup[]>;
  /** Guard denials since `since`, per (key, repository, reason), with the newest one's method, message and address. */
  denialsSince(since: Date): Promise<DenialGroup[]>;

  /** Per repository and session result: sessions, bytes received and sent (for metrics). */
  sessionTotals(): Promise<Array<{ repositoryId: number; result: string; sessions: number; bytesIn: number; bytesOut: number }>>;

  getSetting<T>(name: string): Promise<T | undefined>;
  setSetting(name: string, value: unknown): Promise<void>;
}

const CHANNEL_KINDS: readonly string[] = ['email', 'webhook'];

function checkChannel(kind: string, target: string, format: string | null | undefined): void {
  if (!CHANNEL_KINDS.includes(kind)) throw invalidInput(`unknown channel kind '${kind}'; use email or webhook`);
  if (kind === 'email') {
    const addresses = target.split(',').map((a) => a.trim());
    if (addresses.length === 0 || addresses.some((a) => !/^[^\s@,<>]+@[^\s@,<>]+$/.test(a))) {
      throw invalidInput(`'${target}' is not a list of mail addresses (name@example.org, separated by commas)`);
    }
    if (format) throw invalidInput('a mail channel has no format');
  } else {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw invalidInput(`'${target}' is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalidInput(`a webhook URL must be http or https, not ${url.protocol}`);
    if (format && !(WEBHOOK_FORMATS as readonly string[]).includes(format)) throw invalidInput(`unknown webhook format '${format}'; use ${WEBHOOK_FORMATS.join(', ')}`);
  }
}

export function createMonitoringStore({ db, now }: StoreDeps): MonitoringStore {
  const toChannel = (r: { id: number; name: string; kind: string; target: string; format: string | null; secret: string | null; enabled: number; created_at: string }): AlertChannel => ({
    id: r.id,
    name: r.name,
    kind: r.kind as ChannelKind,
    target: r.target,
    format: r.format as WebhookFormat | null,
    secret: r.secret,
    enabled: r.enabled === 1,
    createdAt: new Date(r.created_at),
  });
  const toAlert = (r: {
    id: number;
    key: string;
    rule: string;
    severity: string;
    repository_id: number | null;
    summary: string;
    detail: string;
    opened_at: string;
    last_notified_at: string;
    notifications: number;
    resolved_at: string | null;
    key_id: number | null;
    acknowledged_at: string | null;
    acknowledged_by: string | null;
  }): AlertRecord => ({
    id: r.id,
    key: r.key,
    rule: r.rule,
    severity: r.severity,
    repositoryId: r.repository_id,
    summary: r.summary,
    detail: r.detail,
    openedAt: new Date(r.opened_at),
    lastNotifiedAt: new Date(r.last_notified_at),
    notifications: Number(r.notifications),
    resolvedAt: r.resolved_at ? new Date(r.resolved_at) : null,
    keyId: r.key_id,
    acknowledgedAt: r.acknowledged_at ? new Date(r.acknowledged_at) : null,
    acknowledgedBy: r.acknowledged_by,
  });
  const toSilence = (r: { id: number; repository_id: number | null; key_id: number | null; until: string; reason: string | null; created_by: string; created_at: string; ended_by: string | null }): AlertSilence => ({
    id: r.id,
    repositoryId: r.repository_id,
    keyId: r.key_id,
    until: new Date(r.until),
    reason: r.reason,
    createdBy: r.created_by,
    createdAt: new Date(r.created_at),
    endedBy: r.ended_by,
  });
  const getAlert = async (id: number) => {
    const row = await db.selectFrom('alerts').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`there is no alert ${id}`);
    return toAlert(row);
  };
  const channelNotFound = (name: string) => notFound(`no alert channel named '${name}'`);
  const getChannel = async (name: string) => {
    const row = await db.selectFrom('alert_channels').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw channelNotFound(name);
    return toChannel(row);
  };

  return {
    async listChannels() {
      return (await db.selectFrom('alert_channels').selectAll().orderBy('name').execute()).map(toChannel);
    },
    getChannel,
    async addChannel(input) {
      checkName('alert channel', input.name);
      checkChannel(input.kind, input.target, input.format);
      try {
        await db
          .insertInto('alert_channels')
          .values({
            name: input.name,
            kind: input.kind,
            target: input.target.trim(),
            format: input.kind === 'webhook' ? (input.format ?? 'json') : null,
            secret: input.kind === 'webhook' ? (input.secret ?? null) : null,
            enabled: input.enabled === false ? 0 : 1,
            created_at: iso(now()),
          })
          .execute();
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`an alert channel named '${input.name}' already exists`);
        throw error;
      }
      return getChannel(input.name);
    },
    async updateChannel(name, change) {
      const current = await getChannel(name);
      const target = change.target ?? current.target;
      const format = change.format === undefined ? current.format : change.format;
      checkChannel(current.kind, target, format);
      await db
        .updateTable('alert_channels')
        .set({
          target: target.trim(),
          format: current.kind === 'webhook' ? (format ?? 'json') : null,
          ...(change.secret !== undefined && current.kind === 'webhook' && { secret: change.secret }),
          ...(change.enabled !== undefined && { enabled: change.enabled ? 1 : 0 }),
        })
        .where('id', '=', current.id)
        .execute();
      return getChannel(name);
    },
    async removeChannel(name) {
      const r = await db.deleteFrom('alert_channels').where('name', '=', name).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) throw channelNotFound(name);
    },

    async openAlerts() {
      return (await db.selectFrom('alerts').selectAll().where('resolved_at', 'is', null).orderBy('id').execute()).map(toAlert);
    },
    async listAlerts({ open, limit = 100 }) {
      let q = db.selectFrom('alerts').selectAll();
      if (open === true) q = q.where('resolved_at', 'is', null);
      if (open === false) q = q.where('resolved_at', 'is not', null);
      return (await q.orderBy('id', 'desc').limit(limit).execute()).map(toAlert);
    },
    async openAlert(a) {
      const at = iso(now());
      const row = await db
        .insertInto('alerts')
        .values({
          key: a.key,
          rule: a.rule,
          severity: a.severity,
          repository_id: a.repositoryId,
          key_id: a.keyId ?? null,
          summary: a.summary,
          detail: a.detail,
          opened_at: at,
          last_notified_at: at,
          notifications: a.notified === false ? 0 : 1,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toAlert(row);
    },
    async updateAlert(id, change) {
      await db
        .updateTable('alerts')
        .set((eb) => ({
          summary: change.summary,
          detail: change.detail,
          severity: change.severity,
          ...(change.notified && { last_notified_at: iso(now()), notifications: eb('notifications', '+', 1) }),
        }))
        .where('id', '=', id)
        .execute();
    },
    getAlert,
    async acknowledgeAlert(id, by) {
      const current = await getAlert(id);
      if (current.resolvedAt !== null) throw invalidInput(`alert ${id} is resolved already; only an open alert can be acknowledged`);
      if (current.acknowledgedAt !== null) return current;
      await db.updateTable('alerts').set({ acknowledged_at: iso(now()), acknowledged_by: by }).where('id', '=', id).where('acknowledged_at', 'is', null).execute();
      return getAlert(id);
    },
    async addSilence(s) {
      const row = await db
        .insertInto('alert_silences')
        .values({ repository_id: s.repositoryId, key_id: s.keyId, until: iso(s.until), reason: s.reason, created_by: s.createdBy, created_at: iso(now()) })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toSilence(row);
    },
    async listSilences({ activeAt, limit = 100 }) {
      let q = db.selectFrom('alert_silences').selectAll();
      if (activeAt) q = q.where('until', '>', iso(activeAt));
      return (await q.orderBy('id', 'desc').limit(limit).execute()).map(toSilence);
    },
    async endSilence(id, by) {
      const row = await db.selectFrom('alert_silences').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw notFound(`there is no silence ${id}`);
      const at = now();
      if (new Date(row.until) <= at) return toSilence(row);
      const ended = await db.updateTable('alert_silences').set({ until: iso(at), ended_by: by }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
      return toSilence(ended);
    },
    async resolveAlert(id) {
      const row = await db.updateTable('alerts').set({ resolved_at: iso(now()) }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
      return toAlert(row);
    },

    async addDelivery(d) {
      const row = await db
        .insertInto('alert_deliveries')
        .values({ alert_id: d.alertId, channel_id: d.channelId, channel_name: d.channelName, event: d.event, state: 'pending', attempts: 0, created_at: iso(now()) })
        .returning('id')
        .executeTakeFirstOrThrow();
      return row.id;
    },
    async updateDelivery(id, d) {
      await db
        .updateTable('alert_deliveries')
        .set({ state: d.state, attempts: d.attempts, last_error: d.lastError, finished_at: d.state === 'pending' ? null : iso(now()) })
        .where('id', '=', id)
        .execute();
    },
    async listDeliveries({ alertId, limit = 100 }) {
      let q = db.selectFrom('alert_deliveries').selectAll();
      if (alertId !== undefined) q = q.where('alert_id', '=', alertId);
      const rows = await q.orderBy('id', 'desc').limit(limit).execute();
      return rows.map((r) => ({
        id: r.id,
        alertId: r.alert_id,
        channelId: r.channel_id,
        channelName: r.channel_name,
        event: r.event as DeliveryEvent,
        state: r.state as DeliveryState,
        attempts: Number(r.attempts),
        lastError: r.last_error,
        createdAt: new Date(r.created_at),
        finishedAt: r.finished_at ? new Date(r.finished_at) : null,
      }));
    },

    async jobStarted(name) {
      const at = iso(now());
      await db
        .insertInto('jobs')
        .values({ name, last_started_at: at, last_finished_at: null, last_result: null, last_detail: null })
        .onConflict((oc) => oc.column('name').doUpdateSet({ last_started_at: at }))
        .execute();
    },
    async jobFinished(name, result, detail) {
      await db.updateTable('jobs').set({ last_finished_at: iso(now()), last_result: result, last_detail: detail }).where('name', '=', name).execute();
    },
    async listJobs() {
      const rows = await db.selectFrom('jobs').selectAll().orderBy('name').execute();
      return rows.map((r) => ({
        name: r.name,
        lastStartedAt: r.last_started_at ? new Date(r.last_started_at) : null,
        lastFinishedAt: r.last_finished_at ? new Date(r.last_finished_at) : null,
        lastResult: r.last_result as JobRecord['lastResult'],
        lastDetail: r.last_detail,
      }));
    },

    async addRepositoryStat(stat) {
      await db
        .insertInto('repository_stats')
        .values({
          repository_id: stat.repositoryId,
          at: iso(now()),
          size_bytes: stat.sizeBytes,
          objects: stat.objects,
          reclaimable_bytes: stat.reclaimableBytes,
          storage_used_bytes: stat.storageUsedBytes,
        })
        .execute();
    },
    async listRepositoryStats(repositoryId, since) {
      const rows = await db.selectFrom('repository_stats').selectAll().where('repository_id', '=', repositoryId).where('at', '>=', iso(since)).orderBy('at').execute();
      return rows.map((r) => ({
        repositoryId: r.repository_id,
        at: new Date(r.at),
        sizeBytes: Number(r.size_bytes),
        objects: r.objects === null ? null : Number(r.objects),
        reclaimableBytes: r.reclaimable_bytes === null ? null : Number(r.reclaimable_bytes),
        storageUsedBytes: r.storage_used_bytes === null ? null : Number(r.storage_used_bytes),
      }));
    },

    async recordAuthFailure(f) {
      await db.insertInto('auth_failures').values({ key_id: f.keyId, address: f.address, reason: f.reason, at: iso(now()) }).execute();
    },
    async authFailuresSince(since) {
      const rows = await db
        .selectFrom('auth_failures as f')
        .innerJoin('ssh_keys as k', 'k.id', 'f.key_id')
        .select(['f.key_id', 'k.name', 'f.address', 'f.reason', 'f.at'])
        .where('f.at', '>=', iso(since))
        .orderBy('f.id')
        .execute();
      const groups = new Map<number, AuthFailureGroup>();
      for (const r of rows) {
        const g = groups.get(r.key_id as number) ?? { keyId: r.key_id as number, keyName: r.name, count: 0, lastAt: new Date(r.at), addresses: [], reason: r.reason };
        g.count++;
        g.lastAt = new Date(r.at);
        g.reason = r.reason;
        if (r.address && !g.addresses.includes(r.address)) g.addresses.push(r.address);
        groups.set(g.keyId, g);
      }
      return [...groups.values()];
    },
    async denialsSince(since) {
      const rows = await db
        .selectFrom('denials as d')
        .leftJoin('sessions as s', 's.id', 'd.session_id')
        .leftJoin('ssh_keys as k', 'k.id', 'd.key_id')
        .leftJoin('repositories as r', 'r.id', 'd.repository_id')
        .select(['d.id', 'd.key_id', 'd.repository_id', 'd.method', 'd.reason', 'd.message', 'd.at', 's.client_address', 's.key_name', 's.repository_name', 'k.name as current_key_name', 'r.name as current_repository_name'])
        .where('d.at', '>=', iso(since))
        .orderBy('d.id')
        .execute();
      const groups = new Map<string, DenialGroup>();
      for (const r of rows) {
        const key = `${r.key_id ?? r.key_name ?? ''}/${r.repository_id ?? ''}/${r.reason}`;
        const g = groups.get(key);
        const newest = {
          lastAt: new Date(r.at),
          method: r.method,
          message: r.message,
          address: r.client_address ?? null,
        };
        if (g) groups.set(key, { ...g, ...newest, count: g.count + 1 });
        else
          groups.set(key, {
            reason: r.reason,
            keyId: r.key_id,
            keyName: r.current_key_name ?? r.key_name ?? null,
            repositoryId: r.repository_id,
            repositoryName: r.current_repository_name ?? r.repository_name ?? null,
            count: 1,
            ...newest,
          });
      }
      return [...groups.values()];
    },

    async sessionTotals() {
      const rows = await db
        .selectFrom('sessions')
        .select((eb) => ['repository_id', 'result', eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('bytes_in').as('bytes_in'), eb.fn.sum<number>('bytes_out').as('bytes_out')])
        .where('repository_id', 'is not', null)
        .groupBy(['repository_id', 'result'])
        .execute();
      return rows.map((r) => ({ repositoryId: r.repository_id as number, result: r.result, sessions: Number(r.n), bytesIn: Number(r.bytes_in ?? 0), bytesOut: Number(r.bytes_out ?? 0) }));
    },

    async getSetting<T>(name: string) {
      const row = await db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst();
      return row ? (JSON.parse(row.value) as T) : undefined;
    },
    async setSetting(name, value) {
      const at = iso(now());
      const text = JSON.stringify(value);
      await db
        .insertInto('settings')
        .values({ name, value: text, updated_at: at })
        .onConflict((oc) => oc.column('name').doUpdateSet({ value: text, updated_at: at }))
        .execute();
    },
  };
}
