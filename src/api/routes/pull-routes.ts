// Pull backups over the API (issue 16): the client hosts the server pulls from, borgkeep's pull
// key line for the clients' authorized_keys, "run now" (a queued job, which the running server's
// pull service picks up from the store), the jobs with their state and progress, and each job's
// log (JSON lines to follow, or a plain-text download).
//
// Never returns the pull identity's private key, and never runs a job in the API's request: a
// job is only queued here (src/pull/pull-service.ts runs it).

import { z } from 'zod';

import { notFound } from '../../errors.js';
import { checkFingerprint, checkPullHostInput } from '../../pull/host-input.js';
import { authorizedKeysLine, loadOrCreatePullIdentity, PULL_KEY_OPTIONS } from '../../pull/pull-identity.js';
import { nextScheduledRun } from '../../pull/pull-service.js';
import { PULL_JOB_STATES, type PullHost } from '../../pull/types.js';
import type { PullHostOverview, PullJobView } from '../../store/pull-read-store.js';
import type { ApiContext } from '../api-server.js';
import { defineRoute } from '../route.js';
import { idParams, name, nameParams, time } from '../schemas.js';

const tag = 'pull';
const timeOrNull = time.nullable();

export const pullJobSchema = z
  .object({
    id: z.number(),
    host: z.string(),
    repository: z.string().nullable().describe("the host's repository; null when the host was removed"),
    trigger: z.enum(['schedule', 'manual']),
    state: z.enum(PULL_JOB_STATES),
    archive: z.string().nullable().describe('decided when the job starts'),
    queuedAt: time,
    startedAt: timeOrNull,
    endedAt: timeOrNull,
    bytes: z.number().describe("original bytes borg read so far (borg's own figure)"),
    files: z.number(),
    currentPath: z.string().nullable().describe('the path borg reported last, while the job runs'),
    reason: z.string().nullable().describe('why a failed job failed, one sentence'),
    attempt: z.number().describe('which try of the schedule retries this is (0: the first)'),
    notBefore: timeOrNull.describe('a retry waits until then'),
  })
  .meta({ id: 'PullJob' });

export const pullHostSchema = z
  .object({
    name: z.string(),
    address: z.string(),
    port: z.number(),
    user: z.string(),
    repository: z.string(),
    paths: z.array(z.string()),
    excludes: z.array(z.string()),
    compression: z.string(),
    archiveTemplate: z.string(),
    schedule: z.string().nullable().describe('cron pattern, server time; null: manual jobs only'),
    nextRunAt: timeOrNull.describe('the next scheduled job (in the past: due now)'),
    timeoutSeconds: z.number(),
    retries: z.number(),
    hostKeyFingerprint: z.string().nullable().describe("the pinned SSH host key (OpenSSH's SHA256:...); null: not accepted yet, jobs fail until it is"),
    sendChunkIndex: z.boolean().describe("whether a job gives the client the repository's chunk index, so it uploads only chunks the repository lacks (the client learns which chunk ids exist)"),
    keepFilesCache: z.boolean().describe("whether the client keeps borg's files cache between jobs, so it reads only new and changed files"),
    offeredHostKey: z
      .object({ fingerprint: z.string(), at: time })
      .nullable()
      .describe('the key the host offered at its last contact when it was not the accepted one (none accepted yet, or a different one): compare it on the host before accepting it'),
    createdAt: time,
    lastJob: pullJobSchema.nullable(),
  })
  .meta({ id: 'PullHost' });

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

export const pullJobJson = (j: PullJobView) => ({
  id: j.id,
  host: j.hostName,
  repository: j.repositoryName,
  trigger: j.trigger,
  state: j.state,
  archive: j.archiveName,
  queuedAt: j.queuedAt.toISOString(),
  startedAt: iso(j.startedAt),
  endedAt: iso(j.endedAt),
  bytes: j.bytes,
  files: j.files,
  currentPath: j.currentPath,
  reason: j.reason,
  attempt: j.attempt,
  notBefore: iso(j.notBefore),
});

const pullHostJson = (h: PullHost, o: PullHostOverview | undefined) => ({
  name: h.name,
  address: h.address,
  port: h.port,
  user: h.user,
  repository: o?.repositoryName ?? '',
  paths: [...h.paths],
  excludes: [...h.excludes],
  compression: h.compression,
  archiveTemplate: h.archiveTemplate,
  schedule: h.schedule,
  nextRunAt: iso(nextScheduledRun(h.schedule, o?.scheduleFrom ?? h.createdAt)),
  timeoutSeconds: h.timeoutSeconds,
  retries: h.retries,
  hostKeyFingerprint: h.hostKeyFingerprint,
  sendChunkIndex: h.sendChunkIndex !== false,
  keepFilesCache: h.keepFilesCache === true,
  offeredHostKey: o?.offeredHostKey ? { fingerprint: o.offeredHostKey.fingerprint, at: o.offeredHostKey.at.toISOString() } : null,
  createdAt: h.createdAt.toISOString(),
  lastJob: o?.lastJob ? pullJobJson(o.lastJob) : null,
});

const logLine = z.object({ seq: z.number(), at: time, line: z.string() });

/** A host's settings as the API takes them; each value is checked by host-input.ts, in the CLI's sentences. */
const hostBody = z
  .object({
    name,
    address: z.string().max(300).describe("host name or IP address, with an optional port: 'client.example.org', '192.0.2.7:2222', '[2001:db8::7]:22'"),
    user: z.string().max(64),
    repository: name,
    paths: z.array(z.string().max(4096)).max(100),
    excludes: z.array(z.string().max(4096)).max(100).optional(),
    schedule: z.string().max(200).nullable().optional().describe("cron pattern like '0 2 * * *'; null or left out: manual jobs only"),
    compression: z.string().max(100).optional(),
    archiveTemplate: z.string().max(200).optional(),
    timeoutSeconds: z.number().optional(),
    retries: z.number().optional(),
    acceptHostKey: z.string().max(200).nullable().optional().describe("the client's SSH host key fingerprint (SHA256:...), pinned now"),
    sendChunkIndex: z.boolean().optional().describe('false: give the client no chunk index (it learns nothing of what the repository holds, and uploads everything); default true'),
    keepFilesCache: z.boolean().optional().describe("true: the client keeps borg's files cache between jobs (needs the chunk index); default false"),
  })
  .strict();

export function pullRoutes(ctx: ApiContext) {
  const job = async (id: number) => {
    const found = await ctx.store.getPullJobView(id);
    if (!found) throw notFound(`there is no pull job ${id} ('borgkeep pull list' shows them)`);
    return found;
  };
  const hostJson = async (h: PullHost) => pullHostJson(h, (await ctx.store.pullHostOverview()).get(h.id));

  return [
    defineRoute({
      method: 'GET',
      url: '/pull-hosts',
      tag,
      summary: 'the client hosts the server pulls backups from, each with its repository, pinned host key, schedule and next run, and last job',
      access: 'viewer',
      response: z.object({ hosts: z.array(pullHostSchema) }),
      async handler() {
        const [hosts, overview] = await Promise.all([ctx.store.listPullHosts(), ctx.store.pullHostOverview()]);
        return { hosts: hosts.map((h) => pullHostJson(h, overview.get(h.id))) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/pull-hosts/:name',
      tag,
      summary: 'one client host',
      access: 'viewer',
      params: nameParams,
      response: z.object({ host: pullHostSchema }),
      async handler({ params }) {
        return { host: await hostJson(await ctx.store.getPullHost(params.name)) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/pull-hosts',
      tag,
      summary: 'register a client host (as borgkeep host add); its host key is pinned now when acceptHostKey is given',
      access: 'admin',
      status: 201,
      body: hostBody,
      response: z.object({ host: pullHostSchema }),
      async handler({ body }) {
        const settings = checkPullHostInput({
          address: body.address,
          user: body.user,
          repository: body.repository,
          paths: body.paths,
          ...(body.excludes !== undefined && { excludes: body.excludes }),
          ...(body.schedule !== undefined && { schedule: body.schedule }),
          ...(body.compression !== undefined && { compression: body.compression }),
          ...(body.archiveTemplate !== undefined && { archiveTemplate: body.archiveTemplate }),
          ...(body.timeoutSeconds !== undefined && { timeoutSeconds: body.timeoutSeconds }),
          ...(body.retries !== undefined && { retries: body.retries }),
          ...(body.acceptHostKey !== undefined && { hostKeyFingerprint: body.acceptHostKey }),
          ...(body.sendChunkIndex !== undefined && { sendChunkIndex: body.sendChunkIndex }),
          ...(body.keepFilesCache !== undefined && { keepFilesCache: body.keepFilesCache }),
        });
        return { host: await hostJson(await ctx.store.addPullHost(body.name, settings)) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/pull-hosts/:name',
      tag,
      summary: 'remove a client host (refused while one of its jobs runs; its queued jobs fail; the history of its jobs stays)',
      access: 'admin',
      params: nameParams,
      response: z.object({ host: z.string(), cancelledJobs: z.number() }),
      async handler({ params }) {
        const { host, cancelled } = await ctx.store.removePullHost(params.name);
        return { host: host.name, cancelledJobs: cancelled };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/pull-hosts/:name/accept-key',
      tag,
      summary: "accept (pin) the host's SSH host key, as borgkeep host accept-key: compare the fingerprint on the host first (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)",
      access: 'admin',
      params: nameParams,
      body: z.object({ fingerprint: z.string().max(200) }).strict(),
      response: z.object({ host: pullHostSchema }),
      async handler({ params, body }) {
        const fingerprint = checkFingerprint(body.fingerprint);
        return { host: await hostJson(await ctx.store.pinPullHostKey(params.name, fingerprint)) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/pull-key',
      tag,
      summary: "borgkeep's pull public key line for the clients' authorized_keys, with the options that restrict it",
      access: 'viewer',
      response: z.object({ line: z.string(), publicKey: z.string(), options: z.string(), fingerprint: z.string() }),
      async handler() {
        // A public key: every role may see it (made on first use, as `borgkeep pull-key` does).
        const identity = loadOrCreatePullIdentity(ctx.store.paths.root);
        return { line: authorizedKeysLine(identity), publicKey: identity.publicLine, options: PULL_KEY_OPTIONS, fingerprint: identity.fingerprint };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/pull-hosts/:name/jobs',
      tag,
      summary: "run now: queue a manual job of the host (the running server starts it); while one is queued already, that one is returned",
      access: 'operator',
      status: 202,
      params: nameParams,
      response: z.object({ job: pullJobSchema, existing: z.boolean().describe('a job of the host was queued already; it is that one') }),
      async handler({ params }) {
        const queued = await ctx.store.queuePullJob(params.name, { trigger: 'manual' });
        // A manual job is always queued or found (only scheduled ones are skipped).
        const r = queued!;
        return { job: pullJobJson(await job(r.job.id)), existing: r.existing };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/pull-jobs',
      tag,
      summary: 'pull jobs, newest first',
      access: 'viewer',
      query: z
        .object({
          host: name.optional().describe("only this host's jobs"),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        })
        .strict(),
      response: z.object({ jobs: z.array(pullJobSchema) }),
      async handler({ query }) {
        // An unknown host is one sentence, not an empty list.
        if (query.host !== undefined) await ctx.store.getPullHost(query.host);
        const jobs = await ctx.store.listPullJobViews({ ...(query.host !== undefined && { hostName: query.host }), limit: query.limit });
        return { jobs: jobs.map(pullJobJson) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/pull-jobs/:id',
      tag,
      summary: 'one pull job, with its progress while it runs',
      access: 'viewer',
      params: idParams,
      response: z.object({ job: pullJobSchema }),
      async handler({ params }) {
        return { job: pullJobJson(await job(params.id)) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/pull-jobs/:id/log',
      tag,
      summary: "a pull job's log, oldest line first; ?after=SEQ for the lines after those already read (following a running job)",
      access: 'viewer',
      params: idParams,
      query: z.object({ after: z.coerce.number().int().min(0).default(0).describe('the seq of the last line already read') }).strict(),
      response: z.object({
        job: z.object({ id: z.number(), state: z.enum(PULL_JOB_STATES) }),
        lines: z.array(logLine),
        dropped: z.number().describe('earlier lines no longer kept (a log keeps its last 10 000 lines)'),
      }),
      async handler({ params, query }) {
        const j = await job(params.id);
        const log = await ctx.store.readPullJobLog(j.id, { afterSeq: query.after });
        return { job: { id: j.id, state: j.state }, lines: log.lines.map((l) => ({ seq: l.seq, at: l.at.toISOString(), line: l.line })), dropped: log.dropped };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/pull-jobs/:id/log.txt',
      tag,
      summary: "a pull job's log as a plain-text download, one line each, with its time (UTC)",
      access: 'viewer',
      contentType: 'text/plain',
      params: idParams,
      response: z.string(),
      async handler({ params, reply }) {
        const j = await job(params.id);
        const log = await ctx.store.readPullJobLog(j.id);
        const head = log.dropped > 0 ? [`(${log.dropped} earlier ${log.dropped === 1 ? 'line' : 'lines'} no longer kept)`] : [];
        const text = [...head, ...log.lines.map((l) => `${l.at.toISOString()}  ${l.line}`)].join('\n');
        reply.type('text/plain; charset=utf-8').header('content-disposition', `attachment; filename="borgkeep-pull-job-${j.id}.log"`);
        return text === '' ? '' : `${text}\n`;
      },
    }),
  ];
}

