// The pull job service: queues jobs (a person's "run now", the hosts' schedules), starts queued
// jobs within a concurrency limit, decides each job's archive name, keeps its state, enforces its
// time-out, retries failed scheduled jobs, and fails the jobs a process that died left behind.
// It runs inside `borgkeep serve` (polling the store, so a job queued by the CLI or the API in
// another process is picked up), and inside `borgkeep pull run` when no server is running.
//
// What one job does on the client is not here: `runJob` (src/pull/pull-runner.ts, wired in by
// src/pull/pull-runtime.ts) is given the host, the job, a recorder and the archive name, and says
// how the job ended. This file must never touch SSH, borg or keys itself.

import { Cron } from 'croner';

import { createHash } from 'node:crypto';

import type { PullStore, PullRunnerId, StoredPullJob } from '../store/pull-store.js';
import { createPullJobRecorder } from '../store/pull-store.js';
import { archiveName } from './archive-name.js';
import type { PullHost, PullJobRecorder } from './types.js';

export interface PullJobOutcome {
  readonly state: 'done' | 'failed';
  /** For a failed job: one sentence (never a server path, never a secret). */
  readonly reason: string | null;
  /** The failure is what only a changed or taken-over client causes (a host key mismatch, a refused object): a critical alert. */
  readonly hostile?: boolean;
}

/** Runs one claimed job to its end (the runner). Throwing counts as failing with the error's message. */
export type RunPullJob = (host: PullHost, job: StoredPullJob, recorder: PullJobRecorder, options: { archiveName: string; stop: AbortSignal }) => Promise<PullJobOutcome>;

export interface PullServiceLog {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface PullServiceDeps {
  store: Pick<PullStore, 'listPullSchedules' | 'getPullHostById' | 'queuePullJob' | 'claimNextPullJob' | 'getPullJob' | 'setPullJobState' | 'setPullJobProgress' | 'appendPullJobLog' | 'failOrphanedPullJobs' | 'pullFailureStreak'>;
  runJob: RunPullJob;
  /** This process, as it is recorded on the jobs it claims. */
  runner: PullRunnerId;
  /** Whether the process that claimed a job still runs (cli-context.ts isLocalProcessAlive). */
  isAlive: (runner: PullRunnerId) => boolean;
  now?: () => Date;
  /** Jobs active at once, counted in the store across processes (default 2); this process runs no more either. */
  concurrency?: number;
  /** Jobs active at once into one repository (default 1). */
  perRepository?: number;
  /** The largest delay a host's scheduled runs get after their time (default 5 min; see scheduleJitterMs). */
  jitterMaxMs?: number;
  log?: PullServiceLog;
  /** Progress is written at most this often per job (default 1 s; tests shorten it). */
  progressEveryMs?: number;
}

export const DEFAULT_PULL_CONCURRENCY = 2;
/** borg takes one writer per repository; a second job into it would hold its client's connection while it waits for the lock. */
export const DEFAULT_PULL_PER_REPOSITORY = 1;
export const DEFAULT_PULL_JITTER_MS = 300_000;
/** Failed jobs in a row after which a host's scheduled runs back off. */
export const BACKOFF_AFTER_FAILURES = 3;
/** How often a polling service looks for active jobs whose process is gone. */
const ORPHAN_CHECK_MS = 30_000;

/** Why a job a dead process left behind failed. */
export const orphanReason = (runner: PullRunnerId): string =>
  runner.kind === 'serve' ? 'the server stopped during the job' : `the borgkeep process that ran the job (pid ${runner.pid}) stopped during it`;

/** The wait before retry `attempt` (1, 2, ...) of a failed scheduled job: a minute, then 5, 25, then hourly. */
export function retryDelayMs(attempt: number): number {
  return Math.min(60_000 * 5 ** Math.max(0, attempt - 1), 3_600_000);
}

/**
 * How long after its scheduled time a host's run is queued: the same for a host every time (a
 * hash of its name), spread over up to `maxMs`, and never more than a tenth of the time between
 * two runs of its schedule. Fifty hosts on "0 2 * * *" so do not all connect in the same second.
 */
export function scheduleJitterMs(hostName: string, schedule: string, due: Date, maxMs: number): number {
  if (maxMs <= 0) return 0;
  const after = nextScheduledRun(schedule, due);
  const interval = after ? after.getTime() - due.getTime() : maxMs * 10;
  const span = Math.min(maxMs, Math.floor(interval / 10));
  const h = createHash('sha256').update(hostName).digest().readUInt32BE(0);
  return Math.floor((h / 0x100000000) * span);
}

/**
 * How long a host that failed `failures` jobs in a row waits, from its last failure, before its
 * next scheduled run: nothing below BACKOFF_AFTER_FAILURES, then 1 h, doubling to a day at most.
 * Retries of one run count as failures; a run started by hand is never held back.
 */
export function backoffMs(failures: number): number {
  if (failures < BACKOFF_AFTER_FAILURES) return 0;
  return Math.min(3_600_000 * 2 ** (failures - BACKOFF_AFTER_FAILURES), 86_400_000);
}

/** The next scheduled run of a host after `after`, or null (no schedule). */
export function nextScheduledRun(schedule: string | null, after: Date): Date | null {
  if (schedule === null) return null;
  try {
    return new Cron(schedule, { paused: true }).nextRun(after);
  } catch {
    return null;
  }
}

export function createPullService(deps: PullServiceDeps) {
  const { store } = deps;
  const now = deps.now ?? (() => new Date());
  const limit = deps.concurrency ?? DEFAULT_PULL_CONCURRENCY;
  const limits = { total: limit, perRepository: deps.perRepository ?? DEFAULT_PULL_PER_REPOSITORY };
  const jitterMaxMs = deps.jitterMaxMs ?? DEFAULT_PULL_JITTER_MS;
  const log = deps.log ?? { info: () => undefined, error: () => undefined };
  const recorder = createPullJobRecorder(store, { progressEveryMs: deps.progressEveryMs ?? 1000 });
  const running = new Map<number, { stop: AbortController; done: Promise<void> }>();
  let timer: NodeJS.Timeout | null = null;
  let stopping = false;
  let polling: Promise<void> | null = null;
  /** Next due time per host, schedule and schedule start (queueDue). */
  const nextDue = new Map<string, Date | null>();

  async function execute(job: StoredPullJob, stop: AbortController): Promise<void> {
    const host = await store.getPullHostById(job.hostId);
    if (!host) {
      await store.setPullJobState(job.id, 'failed', { reason: 'the host was removed before the job started' });
      return;
    }
    let name: string;
    try {
      name = archiveName(host.archiveTemplate, host.name, now());
    } catch (error) {
      await store.setPullJobState(job.id, 'failed', { reason: (error as Error).message });
      return;
    }
    await store.setPullJobState(job.id, 'connecting', { archiveName: name });
    await recorder.log(job.id, `job ${job.id} of host ${host.name} started (${job.trigger}${job.attempt > 0 ? `, retry ${job.attempt} of ${host.retries}` : ''}); archive ${name}`);
    const hours = host.timeoutSeconds % 3600 === 0 ? `${host.timeoutSeconds / 3600} h` : `${Math.round(host.timeoutSeconds / 60)} min`;
    const timeoutReason = `the job ran longer than its time-out of ${hours}`;
    const timeout = setTimeout(() => stop.abort(new Error(timeoutReason)), host.timeoutSeconds * 1000);
    timeout.unref();
    let outcome: PullJobOutcome;
    try {
      // Stopped before it got this far (the server is stopping): the runner is not started at all.
      outcome = stop.signal.aborted ? { state: 'failed', reason: null } : await deps.runJob(host, { ...job, archiveName: name }, recorder, { archiveName: name, stop: stop.signal });
    } catch (error) {
      outcome = { state: 'failed', reason: error instanceof Error ? error.message : String(error) };
    } finally {
      clearTimeout(timeout);
    }
    // A job stopped (time-out, shutdown) fails with why it was stopped, whatever the runner saw.
    if (outcome.state === 'failed' && stop.signal.aborted) outcome = { state: 'failed', reason: (stop.signal.reason as Error | undefined)?.message ?? 'the job was stopped' };
    const reason = outcome.state === 'failed' ? (outcome.reason ?? 'the job failed without saying why') : null;
    await recorder.log(job.id, outcome.state === 'done' ? `job ${job.id} done: archive ${name}` : `job ${job.id} failed: ${reason}`);
    await recorder.state(job.id, outcome.state, { reason, ...(outcome.state === 'failed' && outcome.hostile ? { hostile: true } : {}) });
    await recorder.flush();
    log.info({ event: 'pull-job', job: job.id, host: host.name, state: outcome.state, reason }, `pull job ${job.id} of ${host.name} ${outcome.state}${reason ? `: ${reason}` : ''}`);
    if (outcome.state === 'failed' && job.trigger === 'schedule' && job.attempt < host.retries && !stopping) {
      const attempt = job.attempt + 1;
      const retry = await store.queuePullJob(host.name, { trigger: 'schedule', attempt, notBefore: new Date(now().getTime() + retryDelayMs(attempt)) }).catch(() => null);
      if (retry) await recorder.log(job.id, `retry ${attempt} of ${host.retries} queued as job ${retry.job.id}, from ${retry.job.notBefore?.toISOString() ?? 'now'}`);
    }
  }

  /** Starts a claimed job; its promise never rejects (a failure of the store is logged). */
  function launch(job: StoredPullJob): Promise<void> {
    const stop = new AbortController();
    const done = execute(job, stop)
      .catch(async (error: unknown) => {
        log.error({ job: job.id, error: (error as Error).message }, `pull job ${job.id} could not be run: ${(error as Error).message}`);
        await store.setPullJobState(job.id, 'failed', { reason: `borgkeep could not run the job: ${(error as Error).message}` }).catch(() => undefined);
      })
      .finally(() => running.delete(job.id));
    running.set(job.id, { stop, done });
    return done;
  }

  const service = {
    /**
     * Fails the active jobs of processes that died. A job recorded under this process's own pid
     * and host that this process does not run is a dead predecessor's (a container's serve is
     * pid 1 at every start), so it fails too.
     */
    async recoverOrphans(): Promise<number[]> {
      const isOwn = (r: PullRunnerId) => r.pid === deps.runner.pid && r.host === deps.runner.host;
      const failed = await store.failOrphanedPullJobs((r, jobId) => (isOwn(r) ? running.has(jobId) : deps.isAlive(r)), orphanReason);
      if (failed.length > 0) log.info({ event: 'pull-orphans', jobs: failed }, `failed ${failed.length} pull ${failed.length === 1 ? 'job' : 'jobs'} left running by a process that stopped`);
      // A scheduled job whose process died is retried as configured, like any failed scheduled
      // job (found by test/pull/pull-restart.test.ts: it was failed, never retried). Due at once:
      // the server, not the client, failed, so there is nothing to wait out. Only the process
      // whose update failed the job gets its id, so one retry is queued however many look.
      for (const id of failed) {
        const job = await store.getPullJob(id).catch(() => undefined);
        if (!job || job.trigger !== 'schedule') continue;
        const host = await store.getPullHostById(job.hostId).catch(() => undefined);
        if (!host || job.attempt >= host.retries) continue;
        const attempt = job.attempt + 1;
        const retry = await store.queuePullJob(host.name, { trigger: 'schedule', attempt, notBefore: now() }).catch(() => null);
        if (retry) await recorder.log(job.id, `retry ${attempt} of ${host.retries} queued as job ${retry.job.id}`);
      }
      return failed;
    },

    /** Claims and starts queued jobs while there is room; returns the jobs started. */
    async startQueued(): Promise<StoredPullJob[]> {
      const started: StoredPullJob[] = [];
      while (!stopping && running.size < limit) {
        const job = await store.claimNextPullJob(deps.runner, {}, limits);
        if (!job) break;
        void launch(job);
        started.push(job);
      }
      return started;
    },

    /**
     * Runs one queued job here and now (`borgkeep pull run` without a server), waiting while
     * another job of its host runs. Resolves with the job as it ended; null if another process
     * claimed it first (the caller follows it in the store).
     */
    async runQueuedJob(jobId: number, poll: { everyMs?: number; signal?: AbortSignal } = {}): Promise<StoredPullJob | null> {
      for (;;) {
        const claimed = await store.claimNextPullJob(deps.runner, { jobId }, limits);
        if (claimed) {
          await launch(claimed);
          return (await store.getPullJob(jobId)) ?? null;
        }
        const job = await store.getPullJob(jobId);
        if (!job || job.state !== 'queued') return null;
        if (poll.signal?.aborted) return null;
        await new Promise((r) => setTimeout(r, poll.everyMs ?? 1000));
      }
    },

    /** Queues a job for each host whose schedule is due (the scheduler's job, every second); one line saying what it did. */
    async queueDue(): Promise<string> {
      const at = now();
      const queued: string[] = [];
      const schedules = await store.listPullSchedules();
      for (const h of schedules) {
        // The next due time changes only with the schedule or its start: computed once for both.
        const key = `${h.hostId}|${h.schedule}|${h.scheduleFrom.getTime()}`;
        let next = nextDue.get(key);
        if (next === undefined) {
          next = nextScheduledRun(h.schedule, h.scheduleFrom);
          if (next) next = new Date(next.getTime() + scheduleJitterMs(h.hostName, h.schedule, next, jitterMaxMs));
          for (const k of nextDue.keys()) if (k.startsWith(`${h.hostId}|`)) nextDue.delete(k);
          nextDue.set(key, next);
        }
        if (next === null || next.getTime() > at.getTime()) continue;
        // A host that keeps failing: the run is queued, but waits out its back-off.
        const streak = await store.pullFailureStreak(h.hostId);
        const wait = backoffMs(streak.failures);
        const until = wait > 0 && streak.lastEndedAt ? new Date(streak.lastEndedAt.getTime() + wait) : null;
        const held = until !== null && until.getTime() > at.getTime();
        const r = await store.queuePullJob(h.hostName, { trigger: 'schedule', scheduledAt: at, ...(held && { notBefore: until }) });
        if (!r) continue;
        queued.push(`${h.hostName} (job ${r.job.id})`);
        if (held) {
          await recorder.log(r.job.id, `${h.hostName} failed its last ${streak.failures} jobs in a row: this scheduled run waits until ${until.toISOString()}`);
        }
      }
      if (schedules.length === 0) return 'no scheduled hosts';
      return queued.length > 0 ? `queued ${queued.join(', ')}` : 'nothing due';
    },

    /** Polls the store for queued jobs every `everyMs` (serve), and now and then for jobs a dead process left. */
    start(everyMs = 2000): void {
      let lastRecovery = Date.now();
      const tick = () => {
        if (stopping || polling) return;
        // A `borgkeep pull run` killed while it ran a job: its job fails within half a minute.
        const recover = Date.now() - lastRecovery >= ORPHAN_CHECK_MS;
        if (recover) lastRecovery = Date.now();
        polling = (recover ? service.recoverOrphans() : Promise.resolve([]))
          .then(() => service.startQueued())
          .then(() => undefined)
          .catch((error: unknown) => log.error({ error: (error as Error).message }, `could not start pull jobs: ${(error as Error).message}`))
          .finally(() => {
            polling = null;
          });
      };
      timer = setInterval(tick, everyMs);
      timer.unref();
      tick();
    },

    /** The jobs this process runs now. */
    runningJobs(): number[] {
      return [...running.keys()];
    },

    /** Waits until this process runs no job. */
    async idle(): Promise<void> {
      while (running.size > 0 || polling) await Promise.all([...[...running.values()].map((r) => r.done), polling]);
    },

    /** Stops polling, stops the running jobs (they fail: "the server stopped during the job") and waits for them. */
    async stop(reason = 'the server stopped during the job'): Promise<void> {
      stopping = true;
      if (timer) clearInterval(timer);
      await polling;
      for (const r of running.values()) r.stop.abort(new Error(reason));
      await Promise.all([...running.values()].map((r) => r.done));
    },
  };
  return service;
}

export type PullService = ReturnType<typeof createPullService>;
