// `borgkeep pull-key`, `borgkeep host add|list|show|remove|accept-key` and `borgkeep pull
// run|list|log`: pull backups, where the server SSHes into a client host and runs borg create
// there (issue 16). `pull run` queues a job; a running `borgkeep serve` on the data directory
// picks it up, else this process runs it through the same pull service.
//
// Must never print or log the pull identity's private key; settings are checked before anything
// is written (src/pull/host-input.ts), so a refused command leaves the store as it was.

import type { Command } from 'commander';

import { BorgkeepError, invalidInput } from '../errors.js';
import type { PullHostInput } from '../pull/host-input.js';
import type { PullHost } from '../pull/types.js';
import type { Store } from '../store/database.js';
import type { PullRunnerId, StoredPullJob } from '../store/pull-store.js';
import { isLocalProcessAlive, withStore, type CliContext } from './cli-context.js';
import { parseDuration } from './input.js';
import { formatSize, formatTable, formatTime } from './output.js';

const isAlive = (r: PullRunnerId) => isLocalProcessAlive(r.pid, r.host);

/** "2 h 5 min", "3 min 20 s", "12 s". */
function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  if (m > 0) return s % 60 > 0 ? `${m} min ${s % 60} s` : `${m} min`;
  return `${s} s`;
}

const jobDuration = (j: StoredPullJob, now: Date): number | null => (j.startedAt ? (j.endedAt ?? now).getTime() - j.startedAt.getTime() : null);

function jobJson(j: StoredPullJob, now: Date) {
  return {
    id: j.id,
    host: j.hostName,
    hostId: j.hostId,
    trigger: j.trigger,
    state: j.state,
    attempt: j.attempt,
    archive: j.archiveName,
    queuedAt: j.queuedAt.toISOString(),
    notBefore: j.notBefore?.toISOString() ?? null,
    startedAt: j.startedAt?.toISOString() ?? null,
    endedAt: j.endedAt?.toISOString() ?? null,
    durationSeconds: (() => {
      const ms = jobDuration(j, now);
      return ms === null ? null : Math.round(ms / 1000);
    })(),
    bytes: j.bytes,
    files: j.files,
    currentPath: j.currentPath,
    reason: j.reason,
  };
}

function hostJson(h: PullHost, repository: string, extra: { nextRunAt: Date | null; lastJob: StoredPullJob | null }, now: Date) {
  return {
    id: h.id,
    name: h.name,
    address: h.address,
    port: h.port,
    user: h.user,
    repository,
    paths: h.paths,
    excludes: h.excludes,
    compression: h.compression,
    archiveTemplate: h.archiveTemplate,
    schedule: h.schedule,
    nextRunAt: extra.nextRunAt?.toISOString() ?? null,
    timeoutSeconds: h.timeoutSeconds,
    retries: h.retries,
    hostKeyFingerprint: h.hostKeyFingerprint,
    sendChunkIndex: h.sendChunkIndex !== false,
    keepFilesCache: h.keepFilesCache === true,
    createdAt: h.createdAt.toISOString(),
    lastJob: extra.lastJob ? jobJson(extra.lastJob, now) : null,
  };
}

const target = (h: PullHost) => `${h.user}@${h.address.includes(':') ? `[${h.address}]` : h.address}${h.port === 22 ? '' : `:${h.port}`}`;

function jobSummary(j: StoredPullJob, now: Date): string {
  const ms = jobDuration(j, now);
  const parts = [`job ${j.id}`, j.state, j.trigger, ...(j.archiveName ? [`archive ${j.archiveName}`] : []), ...(ms !== null ? [duration(ms)] : []), `${formatSize(j.bytes)}`, `${j.files} ${j.files === 1 ? 'file' : 'files'}`];
  return `${parts.join(', ')}${j.reason ? `: ${j.reason}` : ''}`;
}

/** Comma-separated, as --paths takes them. */
const list = (text: string) => text.split(',');

function parseRetries(text: string): number {
  const n = /^[0-9]{1,2}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(n >= 0 && n <= 10)) throw invalidInput(`--retries must be a whole number from 0 to 10, not '${text}'`);
  return n;
}

async function repositoryNames(store: Store): Promise<Map<number, string>> {
  return new Map((await store.listRepositoryRecords()).map((r) => [r.id, r.name]));
}

interface HostAddOptions {
  address: string;
  user: string;
  repo: string;
  paths: string;
  exclude: string[];
  schedule?: string;
  compression?: string;
  archive?: string;
  acceptHostKey?: string;
  timeout?: string;
  retries?: string;
  /** false with --no-chunk-index. */
  chunkIndex: boolean;
  keepFilesCache?: boolean;
}

export function registerPullCommands(program: Command, ctx: CliContext): void {
  program
    .command('pull-key')
    .description("print borgkeep's pull public key line, with the options that restrict it, for a client host's authorized_keys")
    .action(async () => {
      const { loadOrCreatePullIdentity, authorizedKeysLine } = await import('../pull/pull-identity.js');
      const identity = loadOrCreatePullIdentity(ctx.getDataDir());
      ctx.out.line(authorizedKeysLine(identity));
      // A comment line: `borgkeep pull-key >> ~/.ssh/authorized_keys` still gives a valid file.
      ctx.out.line(`# Add the line above to ~/.ssh/authorized_keys of the user borgkeep logs in as on each client host (host add --user); it lets borgkeep run borg there and forward the backup back to itself, nothing else (key ${identity.fingerprint}).`);
    });

  const host = program.command('host').description('client hosts that borgkeep backs up by pulling (it SSHes in and runs borg create there)');

  host
    .command('add')
    .description('register a client host to pull backups from')
    .argument('<name>', 'the host name in borgkeep (letters, digits, ".", "_", "-")')
    .requiredOption('--address <host[:port]>', 'where borgkeep connects to over SSH (port 22 unless given)')
    .requiredOption('--user <user>', 'the SSH user on the client whose authorized_keys holds the pull key')
    .requiredOption('--repo <repo>', 'the repository the archives go into')
    .requiredOption('--paths <paths>', 'absolute paths on the client to back up, separated by commas')
    .option('--exclude <pattern>', "a borg exclude pattern (repeat for more)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--schedule <cron>', "when borgkeep serve pulls a backup, as a cron pattern in server time, e.g. '0 2 * * *' (none: only 'pull run')")
    .option('--compression <spec>', "borg's --compression: none, lz4, zstd[,1-22], zlib[,0-9], lzma[,0-9], auto,SPEC (default lz4)")
    .option('--archive <template>', 'the archive name: {host} and {now} (UTC) are filled in (default {host}-{now})')
    .option('--accept-host-key <fingerprint>', "the client's SSH host key fingerprint, SHA256:... as ssh-keygen -lf prints it")
    .option('--timeout <duration>', 'a job running longer fails: 90m, 6h, 1d (default 6h)')
    .option('--retries <n>', 'how often a failed scheduled job is tried again, 0 to 10 (default 2)')
    .option('--no-chunk-index', "give the client no index of the chunks the repository holds: it learns nothing of them, and uploads everything at every job")
    .option('--keep-files-cache', "let the client keep borg's files cache between jobs (in the pull user's ~/.cache/borgkeep-pull), so it does not read unchanged files again")
    .action(async (name: string, opts: HostAddOptions) => {
      const { checkPullHostInput } = await import('../pull/host-input.js');
      const { nextScheduledRun } = await import('../pull/pull-service.js');
      const input: PullHostInput = {
        address: opts.address,
        user: opts.user,
        repository: opts.repo,
        paths: list(opts.paths),
        excludes: opts.exclude,
        ...(opts.schedule !== undefined && { schedule: opts.schedule }),
        ...(opts.compression !== undefined && { compression: opts.compression }),
        ...(opts.archive !== undefined && { archiveTemplate: opts.archive }),
        ...(opts.acceptHostKey !== undefined && { hostKeyFingerprint: opts.acceptHostKey }),
        ...(opts.timeout !== undefined && { timeoutSeconds: parseDuration(opts.timeout, '--timeout') }),
        ...(opts.retries !== undefined && { retries: parseRetries(opts.retries) }),
        ...(opts.chunkIndex === false && { sendChunkIndex: false }),
        ...(opts.keepFilesCache === true && { keepFilesCache: true }),
      };
      const settings = checkPullHostInput(input);
      await withStore(ctx, async (store) => {
        const h = await store.addPullHost(name, settings);
        ctx.out.line(`added host '${h.name}': ${target(h)}, ${h.paths.join(', ')} into repository '${settings.repository}'.`);
        const next = nextScheduledRun(h.schedule, ctx.now());
        ctx.out.line(h.schedule ? `  schedule '${h.schedule}' (next ${formatTime(next)}, server time), run by 'borgkeep serve'` : `  no schedule: jobs run with 'borgkeep pull run ${h.name}'`);
        ctx.out.line(
          h.hostKeyFingerprint
            ? `  host key accepted: ${h.hostKeyFingerprint}`
            : `  host key not accepted yet: the first job fails and names the key's fingerprint; compare it with 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' on the client, then 'borgkeep host accept-key ${h.name} FINGERPRINT'`,
        );
        // A pull re-encrypts what the client sends with the repository's key: without it every
        // job fails, so say so now rather than at the first job.
        const repo = await store.getRepository(settings.repository);
        // Whether it holds one needs no master secret: the vault is only opened, not unsealed.
        const { openVault } = await import('../vault/vault.js');
        if (!openVault(store.paths.root).has(repo.dirName)) {
          ctx.out.line(`  repository '${repo.name}' has no key in the vault yet: jobs fail until 'borgkeep repo key ${repo.name} --passphrase-file FILE' hands it over`);
        }
      });
    });

  host
    .command('accept-key')
    .description("accept (pin) a client host's SSH host key; every job checks it")
    .argument('<name>', 'host name')
    .argument('<fingerprint>', 'SHA256:... as ssh-keygen -lf prints it on the client')
    .action(async (name: string, fingerprint: string) => {
      const { checkFingerprint } = await import('../pull/host-input.js');
      const fp = checkFingerprint(fingerprint);
      await withStore(ctx, async (store) => {
        await store.pinPullHostKey(name, fp);
        ctx.out.line(`host '${name}': host key ${fp} accepted.`);
      });
    });

  host
    .command('list')
    .description('list the client hosts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { nextScheduledRun } = await import('../pull/pull-service.js');
      await withStore(ctx, async (store) => {
        const now = ctx.now();
        const [hosts, repos] = await Promise.all([store.listPullHosts(), repositoryNames(store)]);
        const rows = await Promise.all(hosts.map(async (h) => ({ h, repository: repos.get(h.repositoryId) ?? '?', nextRunAt: nextScheduledRun(h.schedule, now), lastJob: (await store.listPullJobs({ hostName: h.name, limit: 1 }))[0] ?? null })));
        if (opts.json) {
          ctx.out.json({ hosts: rows.map((r) => hostJson(r.h, r.repository, r, now)) });
          return;
        }
        if (rows.length === 0) {
          ctx.out.line("no hosts yet: add one with 'borgkeep host add NAME --address HOST --user USER --repo REPO --paths /etc,/home'");
          return;
        }
        ctx.out.line(
          formatTable(
            ['NAME', 'ADDRESS', 'REPOSITORY', 'SCHEDULE', 'HOST KEY', 'LAST JOB'],
            rows.map(({ h, repository, lastJob }) => [h.name, target(h), repository, h.schedule ?? 'manual', h.hostKeyFingerprint ? 'accepted' : 'not accepted yet', lastJob ? `${lastJob.state} ${formatTime(lastJob.endedAt ?? lastJob.startedAt ?? lastJob.queuedAt)}` : 'never']),
          ),
        );
      });
    });

  host
    .command('show')
    .description('show a client host: its settings, host key, next scheduled run and last job')
    .argument('<name>', 'host name')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const { nextScheduledRun } = await import('../pull/pull-service.js');
      await withStore(ctx, async (store) => {
        const now = ctx.now();
        const h = await store.getPullHost(name);
        const repository = (await repositoryNames(store)).get(h.repositoryId) ?? '?';
        const nextRunAt = nextScheduledRun(h.schedule, now);
        const lastJob = (await store.listPullJobs({ hostName: h.name, limit: 1 }))[0] ?? null;
        const offered = await store.offeredPullHostKey(h.name);
        if (opts.json) {
          ctx.out.json({ ...hostJson(h, repository, { nextRunAt, lastJob }, now), offeredHostKey: offered ? { fingerprint: offered.fingerprint, at: offered.at.toISOString() } : null });
          return;
        }
        ctx.out.line(`host '${h.name}'`);
        ctx.out.line(`  address:     ${target(h)}`);
        ctx.out.line(`  repository:  ${repository}`);
        ctx.out.line(`  paths:       ${h.paths.join(', ')}`);
        ctx.out.line(`  excludes:    ${h.excludes.length > 0 ? h.excludes.join(', ') : 'none'}`);
        ctx.out.line(`  compression: ${h.compression}`);
        ctx.out.line(`  archive:     ${h.archiveTemplate}`);
        ctx.out.line(`  schedule:    ${h.schedule ? `${h.schedule} (next run ${formatTime(nextRunAt)}, server time)` : 'none (manual jobs only)'}`);
        ctx.out.line(`  time-out:    ${duration(h.timeoutSeconds * 1000)}; retries of a failed scheduled job: ${h.retries}`);
        ctx.out.line(`  chunk index: ${h.sendChunkIndex === false ? 'not given to the client (it uploads every chunk)' : "given to the client at each job (it uploads only chunks the repository lacks)"}`);
        ctx.out.line(`  files cache: ${h.keepFilesCache === true ? "kept by the client between jobs (it reads only new or changed files)" : 'none kept (the client reads every file at every job)'}`);
        ctx.out.line(`  host key:    ${h.hostKeyFingerprint ?? 'not accepted yet'}`);
        if (offered) {
          ctx.out.line(`               the host offered ${offered.fingerprint} at ${formatTime(offered.at)}${h.hostKeyFingerprint ? ', which is NOT the accepted key' : ''}; compare it with 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' on the client, then 'borgkeep host accept-key ${h.name} ${offered.fingerprint}'`);
        }
        ctx.out.line(`  last job:    ${lastJob ? jobSummary(lastJob, now) : 'none yet'}`);
      });
    });

  host
    .command('remove')
    .description("remove a client host (refused while one of its jobs runs; its queued jobs end; its job history stays)")
    .argument('<name>', 'host name')
    .action(async (name: string) => {
      await withStore(ctx, async (store) => {
        const { cancelled } = await store.removePullHost(name);
        ctx.out.line(`removed host '${name}'${cancelled > 0 ? `; ${cancelled} queued ${cancelled === 1 ? 'job' : 'jobs'} will not run` : ''}. Its job history stays ('borgkeep pull list'); its archives stay in the repository.`);
      });
    });

  const pull = program.command('pull').description('pull backup jobs: run one now, list them, read a log');

  pull
    .command('list')
    .description('list pull jobs, newest first')
    .option('--host <host>', "only this host's jobs")
    .option('--limit <n>', 'at most this many (default 100)')
    .option('--json', 'print JSON')
    .action(async (opts: { host?: string; limit?: string; json?: boolean }) => {
      const { parseCount } = await import('./input.js');
      const limit = opts.limit === undefined ? 100 : parseCount(opts.limit, '--limit', 100_000);
      await withStore(ctx, async (store) => {
        const now = ctx.now();
        const jobs = await store.listPullJobs({ ...(opts.host !== undefined && { hostName: opts.host }), limit });
        if (opts.json) {
          ctx.out.json({ jobs: jobs.map((j) => jobJson(j, now)) });
          return;
        }
        if (jobs.length === 0) {
          ctx.out.line(opts.host ? `no jobs of host '${opts.host}' yet.` : 'no pull jobs yet.');
          return;
        }
        ctx.out.line(
          formatTable(
            ['JOB', 'HOST', 'STATE', 'TRIGGER', 'QUEUED', 'ARCHIVE', 'DURATION', 'BYTES', 'FILES', 'REASON'],
            jobs.map((j) => {
              const ms = jobDuration(j, now);
              return [String(j.id), j.hostName, j.state, j.attempt > 0 ? `${j.trigger} (retry ${j.attempt})` : j.trigger, formatTime(j.queuedAt), j.archiveName ?? '-', ms === null ? '-' : duration(ms), formatSize(j.bytes), String(j.files), j.reason ?? ''];
            }),
          ),
        );
      });
    });

  pull
    .command('log')
    .description("print a pull job's log (the last 10,000 lines are kept)")
    .argument('<job>', 'job number (borgkeep pull list)')
    .option('--json', 'print JSON')
    .action(async (jobText: string, opts: { json?: boolean }) => {
      const { parseCount } = await import('./input.js');
      const id = parseCount(jobText, 'the job number', Number.MAX_SAFE_INTEGER);
      await withStore(ctx, async (store) => {
        if (!(await store.getPullJob(id))) throw new BorgkeepError('BK_ERR_NOT_FOUND', `there is no pull job ${id} ('borgkeep pull list' shows them)`);
        const log = await store.readPullJobLog(id);
        if (opts.json) {
          ctx.out.json({ job: id, dropped: log.dropped, lines: log.lines.map((l) => ({ at: l.at.toISOString(), line: l.line })) });
          return;
        }
        if (log.dropped > 0) ctx.out.line(`(${log.dropped} earlier ${log.dropped === 1 ? 'line' : 'lines'} not kept)`);
        for (const l of log.lines) ctx.out.line(`${formatTime(l.at)} ${l.line}`);
      });
    });

  pull
    .command('run')
    .description('start a pull job now: in the running borgkeep serve if there is one, else in this process')
    .argument('<host>', 'host name')
    .option('--wait', 'follow the job and exit 0 only if its archive was committed')
    .action(async (hostName: string, opts: { wait?: boolean }) => {
      const [{ pullServerRunning, loadPullJobRunner }, { createPullService }, { thisPullRunner }, { readDefaultConfigFile }, { parsePullBorgBinaries }] = await Promise.all([
        import('../pull/pull-runtime.js'),
        import('../pull/pull-service.js'),
        import('../store/pull-store.js'),
        import('./config-file.js'),
        import('../gateway/serve-config.js'),
      ]);
      // A job run in this process uploads the standalone borg binaries serve's config file names
      // (read before the job is queued, so a broken file queues nothing).
      const borgBinaries = parsePullBorgBinaries(readDefaultConfigFile(ctx.getDataDir(), process.env));
      await withStore(ctx, async (store) => {
        const queued = await store.queuePullJob(hostName, { trigger: 'manual' });
        const job = queued!.job;
        ctx.out.line(queued!.existing ? `job ${job.id} of host '${hostName}' was already queued.` : `queued job ${job.id} of host '${hostName}'.`);
        const server = await pullServerRunning(store, isAlive, ctx.now());
        if (server) {
          if (!opts.wait) {
            ctx.out.line(`borgkeep serve (pid ${server.pid}) runs it; follow it with 'borgkeep pull list --host ${hostName}'.`);
            return;
          }
          // The server stopped before it took the job: this process runs it after all.
          if ((await follow(ctx, store, job.id, { serverGone: () => pullServerRunning(store, isAlive, ctx.now()).then((r) => r === null) })) === 'ended') return;
        }
        // No server: this process runs the job, through the same service serve uses.
        const runner = thisPullRunner('cli');
        const service = createPullService({ store, runJob: await loadPullJobRunner({ dataDir: store.paths.root, store, env: process.env, borgBinaries }), runner, isAlive });
        await service.recoverOrphans();
        const stopOnSignal = () => void service.stop('borgkeep pull run was interrupted');
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, stopOnSignal);
        try {
          // Settled into a value, so its refusal (the job failed) is never an unhandled rejection meanwhile.
          const following = opts.wait ? follow(ctx, store, job.id).then(() => null, (error: unknown) => error) : null;
          const ended = await service.runQueuedJob(job.id);
          // Claimed by a server that started meanwhile, or run here: the store says how it ended.
          if (following) {
            const error = await following;
            if (error) throw error;
          } else await follow(ctx, store, job.id, { quiet: ended !== null });
        } finally {
          for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, stopOnSignal);
        }
      });
    });
}

/**
 * Follows a job in the store until it ends: prints its state changes and, every few seconds,
 * its progress; exits 0 only when it ended done (the archive committed), else says why it failed.
 */
async function follow(ctx: CliContext, store: Store, jobId: number, options: { quiet?: boolean; pollMs?: number; serverGone?: () => Promise<boolean> } = {}): Promise<'ended' | 'unserved'> {
  const { orphanReason } = await import('../pull/pull-service.js');
  let lastState = '';
  let lastProgress = 0;
  let lastCheck = Date.now();
  for (;;) {
    // Now and then: a job whose process died (a server killed mid-job) fails instead of being waited for forever.
    if (Date.now() - lastCheck >= 5000) {
      lastCheck = Date.now();
      await store.failOrphanedPullJobs(isAlive, orphanReason);
      if (options.serverGone && (await store.getPullJob(jobId))?.state === 'queued' && (await options.serverGone())) return 'unserved';
    }
    const job = await store.getPullJob(jobId);
    if (!job) throw new BorgkeepError('BK_ERR_NOT_FOUND', `pull job ${jobId} is gone`);
    const now = ctx.now();
    if (job.state === 'done') {
      ctx.out.line(`job ${job.id} done: archive ${job.archiveName ?? '?'}, ${formatSize(job.bytes)}, ${job.files} ${job.files === 1 ? 'file' : 'files'}${job.startedAt ? ` in ${duration(jobDuration(job, now)!)}` : ''}.`);
      return 'ended';
    }
    if (job.state === 'failed') throw new BorgkeepError('BK_ERR_INTERNAL', `job ${job.id} of host '${job.hostName}' failed: ${job.reason ?? 'no reason recorded'}`);
    if (!options.quiet) {
      if (job.state !== lastState) {
        ctx.out.line(`job ${job.id}: ${job.state}${job.archiveName && job.state !== 'queued' ? ` (archive ${job.archiveName})` : ''}`);
        lastState = job.state;
      } else if (job.state === 'running' && Date.now() - lastProgress >= 5000) {
        ctx.out.line(`job ${job.id}: ${formatSize(job.bytes)}, ${job.files} ${job.files === 1 ? 'file' : 'files'}${job.currentPath ? `, ${job.currentPath}` : ''}`);
        lastProgress = Date.now();
      }
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
  }
}
