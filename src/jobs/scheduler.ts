// The scheduler inside `borgkeep serve`: named jobs on cron patterns (croner). A job never runs
// twice at once (a run that is still going when the next is due skips it). Each run's start,
// end and result are kept in the store's `jobs` table, which is what survives a restart: a job
// whose last scheduled run was missed while the server was down runs once at start-up. Jobs that
// run every second record at most one run a minute, so the database is not written every second.

import { Cron } from 'croner';

import type { MonitoringStore } from '../store/monitoring-store.js';

export interface JobDefinition {
  readonly name: string;
  /** Cron pattern, seconds optional (croner): '*\/2 * * * * *', '0 3 * * *'. */
  readonly pattern: string;
  /** What people read in the job list. */
  readonly description: string;
  /** Returns one line saying what it did; throws on failure. */
  readonly run: () => Promise<string>;
  /** Run at start-up when the last scheduled run was missed (daily jobs). */
  readonly catchUp?: boolean;
}

export interface JobStatus {
  readonly name: string;
  readonly description: string;
  readonly pattern: string;
  readonly running: boolean;
  readonly nextRunAt: Date | null;
  readonly lastStartedAt: Date | null;
  readonly lastFinishedAt: Date | null;
  readonly lastResult: 'ok' | 'error' | null;
  readonly lastDetail: string | null;
}

export interface SchedulerLog {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface SchedulerDeps {
  store: Pick<MonitoringStore, 'jobStarted' | 'jobFinished' | 'listJobs'>;
  now: () => Date;
  log: SchedulerLog;
  /**
   * Gateways sharing one database (issue 19): whether this one runs the scheduled jobs now (it
   * holds, or has just taken, the jobs' lease). Asked before every timer and catch-up run; runs
   * asked for by hand ("run now") go ahead anyway. Left out: this server runs them all.
   */
  holdsJobs?: () => Promise<boolean>;
}

/** Timer runs closer together than this are recorded at most once per this interval, unless what they say changes. */
const RECORD_EVERY_MS = 60_000;

export function createScheduler(deps: SchedulerDeps) {
  const jobs = new Map<string, { def: JobDefinition; cron: Cron | null; running: Promise<void> | null; lastRecorded: number; lastResult: 'ok' | 'error' | null; lastDetail: string | null }>();

  /**
   * Starts a run, or returns the one under way: never two at once. `throttled` (timer runs):
   * recorded at most once per RECORD_EVERY_MS unless the result changes; other runs always.
   */
  function runJob(name: string, throttled = false): Promise<void> {
    const job = jobs.get(name);
    if (!job) return Promise.resolve();
    if (job.running) return job.running;
    const started = deps.now().getTime();
    const record = !throttled || started - job.lastRecorded >= RECORD_EVERY_MS;
    const go = async () => {
      if (record) await deps.store.jobStarted(name);
      let result: 'ok' | 'error' = 'ok';
      let detail: string;
      try {
        detail = await job.def.run();
      } catch (error) {
        result = 'error';
        detail = (error as Error).message;
        deps.log.error({ job: name, error: detail }, `job ${name} failed: ${detail}`);
      }
      // A new result or detail (a failure, alerts opened) is always recorded; the same again not.
      if (record || result !== job.lastResult || detail !== job.lastDetail) {
        if (!record) await deps.store.jobStarted(name);
        await deps.store.jobFinished(name, result, detail);
        job.lastRecorded = started;
      }
      job.lastResult = result;
      job.lastDetail = detail;
    };
    job.running = go()
      .catch((error: unknown) => deps.log.error({ job: name, error: (error as Error).message }, `job ${name} could not be recorded`))
      .finally(() => {
        job.running = null;
      });
    return job.running;
  }

  /** A timer's or a catch-up's run: only by the gateway that holds the jobs (SchedulerDeps.holdsJobs). */
  async function runScheduled(name: string, throttled: boolean): Promise<void> {
    if (deps.holdsJobs) {
      const holds = await deps.holdsJobs().catch((error: unknown) => {
        deps.log.error({ job: name, error: (error as Error).message }, `job ${name} skipped: whether this server runs the jobs could not be read`);
        return false;
      });
      if (!holds) return;
    }
    await runJob(name, throttled);
  }

  return {
    add(def: JobDefinition): void {
      if (jobs.has(def.name)) throw new Error(`job ${def.name} is defined twice`);
      jobs.set(def.name, { def, cron: null, running: null, lastRecorded: 0, lastResult: null, lastDetail: null });
    },

    /** Starts every job's timer, and runs at once the jobs that missed a run while the server was down. */
    async start(): Promise<void> {
      const history = new Map((await deps.store.listJobs()).map((j) => [j.name, j]));
      for (const [name, job] of jobs) {
        job.cron = new Cron(job.def.pattern, { protect: true, catch: true }, () => void runScheduled(name, true));
        const last = history.get(name);
        if (job.def.catchUp) {
          // The scheduled time before now that the last finished run does not cover.
          const due = new Cron(job.def.pattern, { paused: true }).previousRuns(1, deps.now())[0] ?? null;
          const lastRun = last?.lastFinishedAt ?? null;
          if (due && (!lastRun || lastRun < due)) {
            // A job that never ran (a new installation) runs once now, without a word.
            if (last) deps.log.info({ job: name }, `job ${name} missed its run at ${due.toISOString()}; running it now`);
            void runScheduled(name, false);
          }
        }
      }
    },

    /** Runs a job now (the API's "run now"); resolves when it is done. `asTimer`: recorded as a timer run is (tests). */
    runNow(name: string, asTimer = false): Promise<void> {
      if (!jobs.has(name)) throw new Error(`no job named ${name}`);
      return runJob(name, asTimer);
    },

    async list(): Promise<JobStatus[]> {
      const history = new Map((await deps.store.listJobs()).map((j) => [j.name, j]));
      return [...jobs.values()].map(({ def, cron, running }) => {
        const h = history.get(def.name);
        return {
          name: def.name,
          description: def.description,
          pattern: def.pattern,
          running: running !== null,
          nextRunAt: cron?.nextRun() ?? null,
          lastStartedAt: h?.lastStartedAt ?? null,
          lastFinishedAt: h?.lastFinishedAt ?? null,
          lastResult: h?.lastResult ?? null,
          lastDetail: h?.lastDetail ?? null,
        };
      });
    },

    /** Stops the timers and waits for running jobs to end. */
    async stop(): Promise<void> {
      for (const job of jobs.values()) job.cron?.stop();
      await Promise.all([...jobs.values()].map((j) => j.running));
    },
  };
}

export type Scheduler = ReturnType<typeof createScheduler>;
