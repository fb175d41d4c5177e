// Reads of pull hosts and jobs for the API and the console's live channel (pull-store.ts writes
// them): each host with its repository's name, when its schedule counts from and its last job;
// and the one query per live look that says which jobs are queued or under way (plus the ones
// the last look still tracked, and any newer than it had seen).
//
// Read-only: never writes a row. Every read is one query, whatever the number of hosts or jobs
// tracked, so the live channel costs the same with one console open or fifty.

import type { Selectable } from 'kysely';

import type { PullJob, PullJobState } from '../pull/types.js';
import { toJob, type StoredPullJob } from './pull-store.js';
import type { PullJobsTable } from './schema.js';
import type { StoreDeps } from './store-deps.js';

/** A job as the console sees it: the stored job with its host's repository (null: the host is gone). */
export interface PullJobView extends StoredPullJob {
  readonly repositoryName: string | null;
}

export interface PullHostOverview {
  readonly hostId: number;
  readonly repositoryName: string;
  /** The time the host's schedule is next due from (pull-service.ts scheduleDue). */
  readonly scheduleFrom: Date;
  /** The key the host offered last that is not the pinned one (pull-store.ts notePullHostKeyOffered), for the admin to compare. */
  readonly offeredHostKey: { fingerprint: string; at: Date } | null;
  readonly lastJob: PullJobView | null;
}

export interface PullReadStore {
  /** Per host id: its repository's name, its schedule's starting point and its newest job. */
  pullHostOverview(): Promise<Map<number, PullHostOverview>>;
  /** Jobs newest first (by host name when given), with their repository. */
  listPullJobViews(filter?: { hostName?: string; limit?: number }): Promise<PullJobView[]>;
  getPullJobView(id: number): Promise<PullJobView | undefined>;
  /**
   * The live channel's one look: jobs queued or under way, jobs in `tracked` (whatever their
   * state now) and jobs newer than `afterId`; plus the newest job id there is. `afterId` null:
   * the first look, which only learns what is under way and where the ids stand.
   */
  pullJobActivity(tracked: readonly number[], afterId: number | null): Promise<{ jobs: PullJobView[]; maxId: number }>;
}

const LIVE_STATES: readonly PullJobState[] = ['queued', 'connecting', 'running', 'committing'];

type JobRow = Selectable<PullJobsTable> & { repository_name: string | null };

function toView(row: JobRow): PullJobView {
  return { ...toJob(row), repositoryName: row.repository_name };
}

export function createPullReadStore({ db }: StoreDeps): PullReadStore {
  // The host and its repository by the job's host id: a removed host's jobs keep their history
  // under the old id, with no repository to name.
  const jobs = () =>
    db
      .selectFrom('pull_jobs as j')
      .leftJoin('pull_hosts as h', 'h.id', 'j.host_id')
      .leftJoin('repositories as r', 'r.id', 'h.repository_id')
      .selectAll('j')
      .select('r.name as repository_name');

  return {
    async pullHostOverview() {
      const hosts = await db
        .selectFrom('pull_hosts as h')
        .innerJoin('repositories as r', 'r.id', 'h.repository_id')
        .select(['h.id', 'h.schedule_from', 'h.host_key_fingerprint', 'h.offered_host_key', 'h.offered_host_key_at', 'h.created_at', 'r.name as repository_name'])
        .execute();
      const last = await jobs()
        .where('j.id', 'in', (eb) => eb.selectFrom('pull_jobs').select((e) => e.fn.max('id').as('id')).groupBy('host_id'))
        .execute();
      const lastByHost = new Map(last.map((row) => [row.host_id, toView(row as JobRow)]));
      return new Map(
        hosts.map((h) => [
          h.id,
          {
            hostId: h.id,
            repositoryName: h.repository_name,
            scheduleFrom: new Date(h.schedule_from),
            offeredHostKey:
              h.offered_host_key === null || h.offered_host_key === h.host_key_fingerprint ? null : { fingerprint: h.offered_host_key, at: new Date(h.offered_host_key_at ?? h.created_at) },
            lastJob: lastByHost.get(h.id) ?? null,
          },
        ]),
      );
    },

    async listPullJobViews(filter = {}) {
      let q = jobs();
      if (filter.hostName !== undefined) {
        // The current host's jobs: a removed host of the same name is another host.
        q = q.where('j.host_id', '=', (eb) => eb.selectFrom('pull_hosts').select('id').where('name', '=', filter.hostName!));
      }
      return (await q.orderBy('j.id', 'desc').limit(filter.limit ?? 100).execute()).map((r) => toView(r as JobRow));
    },

    async getPullJobView(id) {
      const row = await jobs().where('j.id', '=', id).executeTakeFirst();
      return row ? toView(row as JobRow) : undefined;
    },

    async pullJobActivity(tracked, afterId) {
      const rows = await jobs()
        .select((eb) => eb.selectFrom('pull_jobs').select((e) => e.fn.max('id').as('m')).as('max_id'))
        .where((w) =>
          w.or([w('j.state', 'in', LIVE_STATES), ...(afterId !== null ? [w('j.id', '>', afterId)] : []), ...(tracked.length > 0 ? [w('j.id', 'in', [...tracked])] : [])]),
        )
        .orderBy('j.id')
        .execute();
      // No row: nothing newer than afterId exists. Only a first look with nothing under way
      // reads the newest id on its own.
      let maxId = rows.length > 0 ? Number(rows[0]!.max_id ?? 0) : (afterId ?? 0);
      if (rows.length === 0 && afterId === null) {
        const m = await db.selectFrom('pull_jobs').select((e) => e.fn.max('id').as('m')).executeTakeFirst();
        maxId = Number(m?.m ?? 0);
      }
      return { jobs: rows.map((r) => toView(r as unknown as JobRow)), maxId };
    },
  };
}
