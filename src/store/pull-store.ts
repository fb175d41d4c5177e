// Pull backups in the store (migration 0021): client hosts, their jobs, each job's log. The
// settings are checked by src/pull/host-input.ts before they get here; this file checks what
// only the database knows (the name is free, the repository exists, no job is running).
//
// Claiming a job is one UPDATE ... WHERE state = 'queued', so two processes (`borgkeep serve`
// and a `borgkeep pull run` beside it) can never both start the same job. A job's state only
// moves forward: once done or failed, a late write of the runner cannot bring it back.

import { hostname } from 'node:os';
import { sql, type Selectable } from 'kysely';

import { conflict, invalidInput, notFound } from '../errors.js';
import type { PullHost, PullJob, PullJobRecorder, PullJobState, PullProgress } from '../pull/types.js';
import type { PullHostSettings } from '../pull/host-input.js';
import { checkName } from './names.js';
import type { PullHostsTable, PullJobsTable } from './schema.js';
import { isUniqueViolation, type StoreDeps } from './store-deps.js';

/** Lines kept per job log; older lines are dropped as new ones come. */
export const PULL_LOG_LINES = 10_000;
/** Longest log line kept (a path can be long; borg's messages are short). */
const LOG_LINE_MAX = 4000;
const REASON_MAX = 2000;

export const ACTIVE_PULL_STATES = ['connecting', 'running', 'committing'] as const satisfies readonly PullJobState[];
const ENDED: readonly PullJobState[] = ['done', 'failed'];

/** A job as the store has it: the shared shape, plus the path borg last reported. */
export interface StoredPullJob extends PullJob {
  readonly currentPath: string | null;
  /** A retry does not start before this; null: as soon as there is room. */
  readonly notBefore: Date | null;
}

export interface PullLogLine {
  readonly seq: number;
  readonly at: Date;
  readonly line: string;
}

/** Which process runs a job (so one left behind by a process that died can be told apart). */
export interface PullRunnerId {
  readonly kind: 'serve' | 'cli';
  readonly pid: number;
  readonly host: string;
}

export const thisPullRunner = (kind: PullRunnerId['kind']): PullRunnerId => ({ kind, pid: process.pid, host: hostname() });

export interface PullStore {
  addPullHost(name: string, settings: PullHostSettings): Promise<PullHost>;
  listPullHosts(): Promise<PullHost[]>;
  /** Throws BK_ERR_NOT_FOUND with one sentence when there is no such host. */
  getPullHost(name: string): Promise<PullHost>;
  getPullHostById(id: number): Promise<PullHost | undefined>;
  /**
   * Removes a host. Refused while one of its jobs runs; its queued jobs are failed ("the host was
   * removed"); the history of its jobs and their logs stay. Returns how many queued jobs ended.
   */
  removePullHost(name: string): Promise<{ host: PullHost; cancelled: number }>;
  /** Pins (or re-pins) the SSH host key the client must present; forgets the offered one. */
  pinPullHostKey(name: string, fingerprint: string): Promise<PullHost>;
  /**
   * Notes the host key a host offered that is not the pinned one (none pinned yet, or a
   * mismatch), so `host show` can show it for the admin to compare. It is never trusted by itself.
   */
  notePullHostKeyOffered(hostId: number, fingerprint: string): Promise<void>;
  /** The key a host offered last that is not accepted, and when; null when none. */
  offeredPullHostKey(name: string): Promise<{ fingerprint: string; at: Date } | null>;
  /**
   * Every host with a schedule and the time from which it is next due (moved when a scheduled job
   * is queued), in one read: the scheduler looks every second.
   */
  listPullSchedules(): Promise<Array<{ hostId: number; hostName: string; schedule: string; scheduleFrom: Date }>>;
  /**
   * Queues a job. A scheduled job (or its retry) is not queued while the host has one queued or running
   * (returns null); a manual one while one is queued returns that one (`existing`), no longer
   * waiting for its retry or back-off time.
   */
  queuePullJob(hostName: string, job: { trigger: PullJob['trigger']; attempt?: number; notBefore?: Date | null; scheduledAt?: Date }): Promise<{ job: StoredPullJob; existing: boolean } | null>;
  /**
   * Claims the oldest queued job that may start (its retry time reached, no other job of its
   * host active): state 'connecting', started now, by `runner`. Atomic across processes.
   */
  claimNextPullJob(runner: PullRunnerId, only?: { jobId?: number }, limits?: PullClaimLimits): Promise<StoredPullJob | null>;
  getPullJob(id: number): Promise<StoredPullJob | undefined>;
  /** Newest first; by host name when given. */
  listPullJobs(filter?: { hostName?: string; limit?: number }): Promise<StoredPullJob[]>;
  /** Moves a job on; ignored for a job that already ended. Returns whether it moved. */
  setPullJobState(jobId: number, state: PullJobState, fields?: { archiveName?: string; reason?: string | null; hostile?: boolean }): Promise<boolean>;
  /** How many of the host's newest ended jobs failed in a row, and when the newest of them ended. */
  pullFailureStreak(hostId: number): Promise<{ failures: number; lastEndedAt: Date | null }>;
  /** Each host whose newest finished job failed: that job (for the pull-failed alert). */
  failedPullHosts(): Promise<Array<{ job: StoredPullJob; repositoryId: number }>>;
  setPullJobProgress(jobId: number, progress: PullProgress): Promise<void>;
  appendPullJobLog(jobId: number, line: string): Promise<void>;
  /** The kept lines, oldest first, and how many earlier lines were dropped. */
  readPullJobLog(jobId: number, options?: { afterSeq?: number }): Promise<{ lines: PullLogLine[]; dropped: number }>;
  /** Active jobs whose process is gone (isAlive says so): failed with `reason`. Returns their ids. */
  failOrphanedPullJobs(isAlive: (runner: PullRunnerId, jobId: number) => boolean, reason: (runner: PullRunnerId) => string): Promise<number[]>;
  /** `borgkeep serve`'s pull service says it runs (every few seconds), so the CLI leaves jobs to it. */
  beatPullServer(runner: PullRunnerId): Promise<void>;
  /** The server stopped: the CLI runs jobs itself again. Only the runner that beat clears it. */
  clearPullServer(runner: PullRunnerId): Promise<void>;
  /** The last beat of a server's pull service, if any. */
  pullServer(): Promise<{ runner: PullRunnerId; at: Date } | null>;
}

/**
 * How many jobs may be active at once, counted in the store (so across every process that runs
 * jobs): in all, and into one repository (borg takes one writer per repository at a time, so a
 * second job into a repository would only hold its client's connection while it waits).
 */
export interface PullClaimLimits {
  readonly total?: number;
  readonly perRepository?: number;
}

const PULL_SERVER_SETTING = 'pull.server';
/** Failures in a row counted at most (the back-off stops growing long before). */
const STREAK_LOOKBACK = 20;

const date = (t: string | null): Date | null => (t === null ? null : new Date(t));

function toHost(row: Selectable<PullHostsTable>): PullHost {
  return {
    id: row.id,
    name: row.name,
    address: row.address,
    port: row.port,
    user: row.user_name,
    repositoryId: row.repository_id,
    paths: JSON.parse(row.paths) as string[],
    excludes: JSON.parse(row.excludes) as string[],
    compression: row.compression,
    archiveTemplate: row.archive_template,
    schedule: row.schedule,
    timeoutSeconds: row.timeout_seconds,
    retries: row.retries,
    hostKeyFingerprint: row.host_key_fingerprint,
    sendChunkIndex: row.send_chunk_index !== 0,
    keepFilesCache: row.keep_files_cache !== 0,
    createdAt: new Date(row.created_at),
  };
}

/** A job row as the store hands it out (also pull-read-store.ts). */
export function toJob(row: Selectable<PullJobsTable>): StoredPullJob {
  return {
    id: row.id,
    hostId: row.host_id,
    hostName: row.host_name,
    trigger: row.trigger as PullJob['trigger'],
    state: row.state as PullJobState,
    archiveName: row.archive_name,
    queuedAt: new Date(row.queued_at),
    startedAt: date(row.started_at),
    endedAt: date(row.ended_at),
    bytes: Number(row.bytes),
    files: Number(row.files),
    reason: row.reason,
    attempt: row.attempt,
    hostile: row.hostile === 1,
    currentPath: row.current_path,
    notBefore: date(row.not_before),
  };
}

export function createPullStore({ db, now }: StoreDeps): PullStore {
  const iso = () => now().toISOString();

  async function readPullServer(): Promise<{ runner: PullRunnerId; at: Date } | null> {
    const row = await db.selectFrom('settings').select('value').where('name', '=', PULL_SERVER_SETTING).executeTakeFirst();
    if (!row) return null;
    try {
      const v = JSON.parse(row.value) as { runner: PullRunnerId; at: string };
      return { runner: v.runner, at: new Date(v.at) };
    } catch {
      return null;
    }
  }

  async function requireHost(name: string) {
    const row = await db.selectFrom('pull_hosts').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw notFound(`there is no host named '${name}' ('borgkeep host list' shows them)`);
    return row;
  }

  return {
    async addPullHost(name, s) {
      checkName('host', name);
      return db.transaction().execute(async (trx) => {
        const repository = await trx.selectFrom('repositories').select('id').where('name', '=', s.repository).executeTakeFirst();
        if (!repository) throw notFound(`there is no repository named '${s.repository}'`);
        const at = iso();
        try {
          const row = await trx
            .insertInto('pull_hosts')
            .values({
              name,
              address: s.address,
              port: s.port,
              user_name: s.user,
              repository_id: repository.id,
              paths: JSON.stringify(s.paths),
              excludes: JSON.stringify(s.excludes),
              compression: s.compression,
              archive_template: s.archiveTemplate,
              schedule: s.schedule,
              schedule_from: at,
              timeout_seconds: s.timeoutSeconds,
              retries: s.retries,
              host_key_fingerprint: s.hostKeyFingerprint,
              created_at: at,
              ...(s.sendChunkIndex === false && { send_chunk_index: 0 }),
              ...(s.keepFilesCache === true && { keep_files_cache: 1 }),
            })
            .returningAll()
            .executeTakeFirstOrThrow();
          return toHost(row);
        } catch (error) {
          if (isUniqueViolation(error)) throw conflict(`a host named '${name}' already exists`);
          throw error;
        }
      });
    },

    async listPullHosts() {
      return (await db.selectFrom('pull_hosts').selectAll().orderBy('name').execute()).map(toHost);
    },

    async getPullHost(name) {
      return toHost(await requireHost(name));
    },

    async getPullHostById(id) {
      const row = await db.selectFrom('pull_hosts').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toHost(row) : undefined;
    },

    async removePullHost(name) {
      return db.transaction().execute(async (trx) => {
        const row = await trx.selectFrom('pull_hosts').selectAll().where('name', '=', name).executeTakeFirst();
        if (!row) throw notFound(`there is no host named '${name}' ('borgkeep host list' shows them)`);
        const active = await trx.selectFrom('pull_jobs').select('id').where('host_id', '=', row.id).where('state', 'in', ACTIVE_PULL_STATES).orderBy('id').executeTakeFirst();
        if (active) throw conflict(`host '${name}' has job ${active.id} running; remove the host when it has ended`);
        const cancelled = await trx
          .updateTable('pull_jobs')
          .set({ state: 'failed', ended_at: iso(), reason: 'the host was removed before the job started' })
          .where('host_id', '=', row.id)
          .where('state', '=', 'queued')
          .executeTakeFirst();
        await trx.deleteFrom('pull_hosts').where('id', '=', row.id).execute();
        return { host: toHost(row), cancelled: Number(cancelled.numUpdatedRows) };
      });
    },

    async pinPullHostKey(name, fingerprint) {
      const row = await db.updateTable('pull_hosts').set({ host_key_fingerprint: fingerprint, offered_host_key: null, offered_host_key_at: null }).where('name', '=', name).returningAll().executeTakeFirst();
      if (!row) throw notFound(`there is no host named '${name}' ('borgkeep host list' shows them)`);
      return toHost(row);
    },

    async notePullHostKeyOffered(hostId, fingerprint) {
      await db.updateTable('pull_hosts').set({ offered_host_key: fingerprint, offered_host_key_at: iso() }).where('id', '=', hostId).execute();
    },

    async offeredPullHostKey(name) {
      const row = await requireHost(name);
      if (row.offered_host_key === null || row.offered_host_key === row.host_key_fingerprint) return null;
      return { fingerprint: row.offered_host_key, at: new Date(row.offered_host_key_at ?? row.created_at) };
    },

    async listPullSchedules() {
      const rows = await db.selectFrom('pull_hosts').select(['id', 'name', 'schedule', 'schedule_from']).where('schedule', 'is not', null).orderBy('name').execute();
      return rows.map((r) => ({ hostId: r.id, hostName: r.name, schedule: r.schedule!, scheduleFrom: new Date(r.schedule_from) }));
    },

    async queuePullJob(hostName, job) {
      return db.transaction().execute(async (trx) => {
        const host = await trx.selectFrom('pull_hosts').selectAll().where('name', '=', hostName).executeTakeFirst();
        if (!host) throw notFound(`there is no host named '${hostName}' ('borgkeep host list' shows them)`);
        const pending = await trx
          .selectFrom('pull_jobs')
          .selectAll()
          .where('host_id', '=', host.id)
          .where('state', 'in', job.trigger === 'schedule' ? ['queued', ...ACTIVE_PULL_STATES] : ['queued'])
          .orderBy('id')
          .executeTakeFirst();
        // The schedule moves on either way: a run skipped because one is under way is not owed.
        if (job.scheduledAt) await trx.updateTable('pull_hosts').set({ schedule_from: job.scheduledAt.toISOString() }).where('id', '=', host.id).execute();
        if (pending && job.trigger === 'schedule') return null;
        if (pending && job.trigger === 'manual') {
          // "Run now" while a retry or a backed-off run waits: that one starts now.
          if (pending.not_before !== null) await trx.updateTable('pull_jobs').set({ not_before: null }).where('id', '=', pending.id).execute();
          return { job: toJob({ ...pending, not_before: null }), existing: true };
        }
        const row = await trx
          .insertInto('pull_jobs')
          .values({
            host_id: host.id,
            host_name: host.name,
            trigger: job.trigger,
            state: 'queued',
            queued_at: iso(),
            not_before: job.notBefore ? job.notBefore.toISOString() : null,
            attempt: job.attempt ?? 0,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        return { job: toJob(row), existing: false };
      });
    },

    async claimNextPullJob(runner, only = {}, limits = {}) {
      const at = iso();
      // One statement, run under the store's write lock on SQLite and on PostgreSQL alike
      // (postgres-dialect.ts): a second claimer sees the first's claim and takes the next job.
      const row = await db
        .updateTable('pull_jobs')
        .set({ state: 'connecting', started_at: at, runner_kind: runner.kind, runner_pid: runner.pid, runner_host: runner.host })
        .where('state', '=', 'queued')
        .where('id', '=', (eb) => {
          let next = eb
            .selectFrom('pull_jobs as q')
            .select('q.id')
            .where('q.state', '=', 'queued')
            .where((w) => w.or([w('q.not_before', 'is', null), w('q.not_before', '<=', at)]))
            .where(({ not, exists, selectFrom }) =>
              not(exists(selectFrom('pull_jobs as a').select('a.id').whereRef('a.host_id', '=', 'q.host_id').where('a.state', 'in', ACTIVE_PULL_STATES))),
            );
          if (limits.total !== undefined) {
            const total = limits.total;
            next = next.where((w) => w(w.selectFrom('pull_jobs as t').select((c) => c.fn.countAll<number>().as('n')).where('t.state', 'in', ACTIVE_PULL_STATES), '<', total));
          }
          if (limits.perRepository !== undefined) {
            const perRepository = limits.perRepository;
            next = next.where((w) =>
              w(
                w
                  .selectFrom('pull_jobs as r')
                  .innerJoin('pull_hosts as rh', 'rh.id', 'r.host_id')
                  .select((c) => c.fn.countAll<number>().as('n'))
                  .where('r.state', 'in', ACTIVE_PULL_STATES)
                  .where('rh.repository_id', '=', (sub) => sub.selectFrom('pull_hosts as qh').select('qh.repository_id').whereRef('qh.id', '=', 'q.host_id')),
                '<',
                perRepository,
              ),
            );
          }
          if (only.jobId !== undefined) next = next.where('q.id', '=', only.jobId);
          return next.orderBy('q.id').limit(1);
        })
        .returningAll()
        .executeTakeFirst();
      return row ? toJob(row) : null;
    },

    async getPullJob(id) {
      const row = await db.selectFrom('pull_jobs').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toJob(row) : undefined;
    },

    async listPullJobs(filter = {}) {
      let q = db.selectFrom('pull_jobs').selectAll();
      if (filter.hostName !== undefined) {
        // The current host's jobs: a removed host's history stays under its old id.
        const host = await requireHost(filter.hostName);
        q = q.where('host_id', '=', host.id);
      }
      return (await q.orderBy('id', 'desc').limit(filter.limit ?? 1000).execute()).map(toJob);
    },

    async pullFailureStreak(hostId) {
      const rows = await db
        .selectFrom('pull_jobs')
        .select(['state', 'ended_at'])
        .where('host_id', '=', hostId)
        .where('state', 'in', ['done', 'failed'])
        .orderBy('id', 'desc')
        .limit(STREAK_LOOKBACK)
        .execute();
      let failures = 0;
      while (failures < rows.length && rows[failures]!.state === 'failed') failures++;
      return { failures, lastEndedAt: failures > 0 ? date(rows[0]!.ended_at) : null };
    },

    async failedPullHosts() {
      // The newest ended job of each registered host; only hosts whose newest is a failure.
      const rows = await db
        .selectFrom('pull_jobs as j')
        .innerJoin('pull_hosts as h', 'h.id', 'j.host_id')
        .selectAll('j')
        .select('h.repository_id as repository_id_of_host')
        .where('j.state', 'in', ['done', 'failed'])
        .where((eb) =>
          eb('j.id', '=', eb.selectFrom('pull_jobs as k').select((k) => k.fn.max('k.id').as('m')).whereRef('k.host_id', '=', 'j.host_id').where('k.state', 'in', ['done', 'failed'])),
        )
        .where('j.state', '=', 'failed')
        .execute();
      return rows.map((r) => ({ job: toJob(r), repositoryId: r.repository_id_of_host }));
    },

    async setPullJobState(jobId, state, fields = {}) {
      const at = iso();
      const r = await db
        .updateTable('pull_jobs')
        .set({
          state,
          ...(fields.archiveName !== undefined && { archive_name: fields.archiveName }),
          ...(fields.reason !== undefined && { reason: fields.reason === null ? null : fields.reason.slice(0, REASON_MAX) }),
          ...(fields.hostile !== undefined && { hostile: fields.hostile ? 1 : 0 }),
          ...(state !== 'queued' && { started_at: sql<string>`coalesce(started_at, ${at})` }),
          ...(ENDED.includes(state) && { ended_at: at, current_path: null }),
        })
        .where('id', '=', jobId)
        .where('state', 'not in', ENDED)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) > 0;
    },

    async setPullJobProgress(jobId, progress) {
      await db
        .updateTable('pull_jobs')
        .set({ bytes: progress.bytes, files: progress.files, current_path: progress.path === null ? null : progress.path.slice(0, LOG_LINE_MAX) })
        .where('id', '=', jobId)
        .where('state', 'not in', ENDED)
        .execute();
    },

    async appendPullJobLog(jobId, line) {
      await db.transaction().execute(async (trx) => {
        const last = await trx.selectFrom('pull_job_log').select((eb) => eb.fn.max('seq').as('seq')).where('job_id', '=', jobId).executeTakeFirst();
        const seq = Number(last?.seq ?? 0) + 1;
        await trx.insertInto('pull_job_log').values({ job_id: jobId, seq, at: iso(), line: line.slice(0, LOG_LINE_MAX) }).execute();
        if (seq > PULL_LOG_LINES) await trx.deleteFrom('pull_job_log').where('job_id', '=', jobId).where('seq', '<=', seq - PULL_LOG_LINES).execute();
      });
    },

    async readPullJobLog(jobId, options = {}) {
      const rows = await db
        .selectFrom('pull_job_log')
        .select(['seq', 'at', 'line'])
        .where('job_id', '=', jobId)
        .where('seq', '>', options.afterSeq ?? 0)
        .orderBy('seq')
        .execute();
      const first = await db.selectFrom('pull_job_log').select((eb) => eb.fn.min('seq').as('seq')).where('job_id', '=', jobId).executeTakeFirst();
      const dropped = first?.seq == null ? 0 : Number(first.seq) - 1;
      return { lines: rows.map((r) => ({ seq: r.seq, at: new Date(r.at), line: r.line })), dropped };
    },

    async failOrphanedPullJobs(isAlive, reason) {
      const active = await db.selectFrom('pull_jobs').select(['id', 'runner_kind', 'runner_pid', 'runner_host']).where('state', 'in', ACTIVE_PULL_STATES).orderBy('id').execute();
      const failed: number[] = [];
      for (const j of active) {
        const runner: PullRunnerId = { kind: j.runner_kind === 'serve' ? 'serve' : 'cli', pid: j.runner_pid ?? -1, host: j.runner_host ?? '' };
        if (j.runner_pid !== null && isAlive(runner, j.id)) continue;
        const r = await db
          .updateTable('pull_jobs')
          .set({ state: 'failed', ended_at: iso(), current_path: null, reason: reason(runner) })
          .where('id', '=', j.id)
          .where('state', 'in', ACTIVE_PULL_STATES)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) > 0) failed.push(j.id);
      }
      return failed;
    },

    async beatPullServer(runner) {
      const at = iso();
      const value = JSON.stringify({ runner, at });
      await db
        .insertInto('settings')
        .values({ name: PULL_SERVER_SETTING, value, updated_at: at })
        .onConflict((oc) => oc.column('name').doUpdateSet({ value, updated_at: at }))
        .execute();
    },

    async clearPullServer(runner) {
      const current = await readPullServer();
      if (current && current.runner.pid === runner.pid && current.runner.host === runner.host) {
        await db.deleteFrom('settings').where('name', '=', PULL_SERVER_SETTING).execute();
      }
    },

    pullServer: readPullServer,
  };
}

/**
 * The recorder a runner writes a job through. Progress comes many times a second from borg; it is
 * written at most once per `progressEveryMs` (the last value is never lost: it is written when
 * the wait is over, or before the job's next state).
 */
export function createPullJobRecorder(store: Pick<PullStore, 'setPullJobState' | 'setPullJobProgress' | 'appendPullJobLog'>, options: { progressEveryMs?: number } = {}): PullJobRecorder & { flush(): Promise<void> } {
  const every = options.progressEveryMs ?? 1000;
  const pending = new Map<number, PullProgress>();
  const lastWrite = new Map<number, number>();
  const timers = new Map<number, NodeJS.Timeout>();
  let writes: Promise<unknown> = Promise.resolve();

  const write = (jobId: number) => {
    const p = pending.get(jobId);
    pending.delete(jobId);
    clearTimeout(timers.get(jobId));
    timers.delete(jobId);
    if (!p) return writes;
    lastWrite.set(jobId, Date.now());
    writes = writes.then(() => store.setPullJobProgress(jobId, p)).catch(() => undefined);
    return writes;
  };

  return {
    async state(jobId, state, fields) {
      await write(jobId);
      await store.setPullJobState(jobId, state, fields);
      if (state === 'done' || state === 'failed') lastWrite.delete(jobId);
    },
    async progress(jobId, progress) {
      pending.set(jobId, progress);
      const since = Date.now() - (lastWrite.get(jobId) ?? 0);
      if (since >= every) {
        await write(jobId);
        return;
      }
      if (!timers.has(jobId)) {
        const t = setTimeout(() => void write(jobId), every - since);
        t.unref();
        timers.set(jobId, t);
      }
    },
    async log(jobId, line) {
      await store.appendPullJobLog(jobId, line);
    },
    async flush() {
      await Promise.all([...pending.keys()].map((id) => write(id)));
      await writes;
    },
  };
}
