// How a process runs pull jobs: the one place that picks the function running a job on a client
// (`runJob`, given to the pull service), how `borgkeep serve` starts its pull service (start-up
// recovery, polling the store, its heartbeat) and how the CLI knows whether a server runs on the
// data directory, so that `borgkeep pull run` leaves the job to it instead of running it itself.
//
// Must never run a job itself: that is the service's (pull-service.ts) and the runner's.

import { join } from 'node:path';

import type { Store } from '../store/database.js';
import type { Vault } from '../vault/vault.js';
import { thisPullRunner, type PullRunnerId } from '../store/pull-store.js';
import { createPullService, type PullService, type PullServiceDeps, type PullServiceLog, type RunPullJob } from './pull-service.js';

/**
 * serve's pull service says it runs this often; a beat older than PULL_SERVER_STALE_MS is a server
 * gone (on this host, a dead pid says so at once). Not more often: every write to the database
 * makes the console's cached repository statuses be read again.
 */
export const PULL_SERVER_BEAT_MS = 10_000;
export const PULL_SERVER_STALE_MS = 35_000;
/** serve looks for queued jobs (from the CLI, the API, the schedule, retries) this often. */
export const PULL_POLL_MS = 2000;

export interface PullRuntimeDeps {
  dataDir: string;
  store: Store;
  env: NodeJS.ProcessEnv;
  /** serve's vault, opened with its master passphrase; else the data directory's is opened when a job needs a key. */
  vault?: Vault;
  /** The config file's pullBorgBinaries (client platform -> standalone borg on this server; serve checks the files at start). */
  borgBinaries?: Readonly<Record<string, string>>;
}

/**
 * The function that runs one job on its client host: SSH to the host, remote forwarding, stock
 * `borg create` there (src/pull/pull-runner.ts), its session through the keyless proxy
 * (src/pull/pull-proxy.ts), which writes into the repository through this process's guard.
 * Loaded lazily: ssh2 and the proxy are only needed by a process that runs jobs.
 */
export async function loadPullJobRunner(deps: PullRuntimeDeps): Promise<RunPullJob> {
  const [{ default: ssh2 }, { runPullJob, hostileFailure }, { createPullJobSession }, { createGuardDeps }, { loadOrCreateHostKeys, generateEd25519KeyPair }, { loadOrCreatePullIdentity }] = await Promise.all([
    import('ssh2'),
    import('./pull-runner.js'),
    import('./pull-proxy.js'),
    import('../gateway/guard-runtime.js'),
    import('../gateway/host-keys.js'),
    import('./pull-identity.js'),
  ]);
  const { Client, Server, utils } = ssh2;
  const guard = createGuardDeps(deps.dataDir, deps.store, deps.env, deps.vault ? { vault: deps.vault } : {});
  const identity = loadOrCreatePullIdentity(deps.dataDir);
  // The job endpoint shows the client borgkeep's own ed25519 host key, pinned in the job's known_hosts.
  const hostKey = loadOrCreateHostKeys(join(deps.store.paths.root, 'ssh'), (type) =>
    type === 'rsa' ? utils.generateKeyPairSync('rsa', { bits: 3072 }) : generateEd25519KeyPair(),
  ).find((k) => k.type === 'ssh-ed25519')!;
  return async (host, job, recorder, { archiveName, stop }) => {
    const repository = (await deps.store.listRepositoryRecords()).find((r) => r.id === host.repositoryId);
    if (!repository) return { state: 'failed', reason: `the repository of host '${host.name}' no longer exists`, hostile: false };
    const session = createPullJobSession({ guard }, { jobId: job.id, repository, archiveName });
    const result = await runPullJob({ ssh2: { Client, Server, parseKey: utils.parseKey }, identity, hostKey, ...(deps.borgBinaries && { borgBinaries: deps.borgBinaries }) }, host, job, session, recorder, { archiveName, stop });
    // The key the host offered, so `host show` can put it beside the pinned one for the admin to compare.
    if (result.hostKey) await deps.store.notePullHostKeyOffered(host.id, result.hostKey.offered).catch(() => undefined);
    // (The runner records a hostile failure as such; the service's own record of the end comes after it.)
    return { state: result.state, reason: result.reason, hostile: hostileFailure(result) };
  };
}

/** Whether `borgkeep serve` runs a pull service on this data directory (its heartbeat is fresh and, on this host, its process alive). */
export async function pullServerRunning(store: Pick<Store, 'pullServer'>, isAlive: (runner: PullRunnerId) => boolean, now: Date = new Date()): Promise<PullRunnerId | null> {
  const beat = await store.pullServer();
  if (!beat) return null;
  if (now.getTime() - beat.at.getTime() > PULL_SERVER_STALE_MS) return null;
  return isAlive(beat.runner) ? beat.runner : null;
}

export interface PullServer {
  service: PullService;
  stop(): Promise<void>;
}

/**
 * serve's pull service: fails the jobs a previous server left running, then every PULL_POLL_MS
 * starts queued jobs within the concurrency limit, and beats so the CLI knows it runs.
 */
export async function startPullServer(
  deps: PullRuntimeDeps & { isAlive: (runner: PullRunnerId) => boolean; log: PullServiceLog } & Pick<PullServiceDeps, 'concurrency' | 'perRepository' | 'jitterMaxMs'>,
): Promise<PullServer> {
  const runner = thisPullRunner('serve');
  const service = createPullService({
    store: deps.store,
    runJob: await loadPullJobRunner(deps),
    runner,
    isAlive: deps.isAlive,
    log: deps.log,
    ...(deps.concurrency !== undefined && { concurrency: deps.concurrency }),
    ...(deps.perRepository !== undefined && { perRepository: deps.perRepository }),
    ...(deps.jitterMaxMs !== undefined && { jitterMaxMs: deps.jitterMaxMs }),
  });
  await service.recoverOrphans();
  const beat = () => deps.store.beatPullServer(runner).catch((error: unknown) => deps.log.error({ error: (error as Error).message }, 'could not record the pull service heartbeat'));
  await beat();
  const timer = setInterval(() => void beat(), PULL_SERVER_BEAT_MS);
  timer.unref();
  service.start(PULL_POLL_MS);
  return {
    service,
    async stop() {
      clearInterval(timer);
      await service.stop();
      await deps.store.clearPullServer(runner).catch(() => undefined);
    },
  };
}
