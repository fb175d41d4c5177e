// The shapes of the pull backup endpoints (src/api/routes/pull-routes.ts), and their state in
// words as the console says them.

export type PullJobState = 'queued' | 'connecting' | 'running' | 'committing' | 'done' | 'failed';

export interface PullJob {
  id: number;
  host: string;
  repository: string | null;
  trigger: 'schedule' | 'manual';
  state: PullJobState;
  archive: string | null;
  queuedAt: string;
  startedAt: string | null;
  endedAt: string | null;
  bytes: number;
  files: number;
  currentPath: string | null;
  reason: string | null;
  attempt: number;
  notBefore: string | null;
}

export interface PullHost {
  name: string;
  address: string;
  port: number;
  user: string;
  repository: string;
  paths: string[];
  excludes: string[];
  compression: string;
  archiveTemplate: string;
  schedule: string | null;
  nextRunAt: string | null;
  timeoutSeconds: number;
  retries: number;
  hostKeyFingerprint: string | null;
  /** Whether jobs give the client the repository's chunk index (it uploads only what is new). */
  sendChunkIndex: boolean;
  /** Whether the client keeps borg's files cache between jobs (it reads only new and changed files). */
  keepFilesCache: boolean;
  /** The key the host offered last when it was not the accepted one. */
  offeredHostKey: { fingerprint: string; at: string } | null;
  createdAt: string;
  lastJob: PullJob | null;
}

export interface PullLogLine {
  seq: number;
  at: string;
  line: string;
}

export const PULL_STATE_WORDS: Record<PullJobState, string> = {
  queued: 'waiting to start',
  connecting: 'connecting to the host',
  running: 'backing up',
  committing: 'writing the archive',
  done: 'done',
  failed: 'failed',
};

export const pullJobActive = (j: PullJob) => j.state === 'connecting' || j.state === 'running' || j.state === 'committing';
export const pullJobEnded = (j: PullJob) => j.state === 'done' || j.state === 'failed';

/** The badge class of a state (styles.css): running blue, done green, failed red, waiting grey. */
export const pullStateBadge = (s: PullJobState) => (s === 'done' ? 'ok' : s === 'failed' ? 'error' : s === 'queued' ? 'never' : 'open');

/**
 * Why a queued job has not started, in the console's words: its retry or back-off time, another
 * job of its host, another job writing to its repository (one at a time), or only its turn.
 * `active`: the jobs running now. The time, when there is one, is shown beside the words.
 */
export function queuedJobWait(job: PullJob, active: readonly PullJob[], now: number): { words: string; until: string | null } {
  if (job.notBefore !== null && new Date(job.notBefore).getTime() > now) {
    const why = job.attempt > 0 ? `retry ${job.attempt} after a failed run` : job.trigger === 'schedule' ? 'the host failed its last jobs, so its schedule backs off' : 'held back';
    return { words: `${why}; starts`, until: job.notBefore };
  }
  const sameHost = active.find((a) => a.host === job.host);
  if (sameHost) return { words: `waits for job ${sameHost.id} of the same host to end`, until: null };
  const sameRepository = job.repository === null ? undefined : active.find((a) => a.repository === job.repository);
  if (sameRepository) return { words: `waits for job ${sameRepository.id} of ${sameRepository.host}, which writes to ${job.repository} (one job per repository at a time)`, until: null };
  return active.length > 0 ? { words: 'waits for a running job to end (the server runs a few at once)', until: null } : { words: 'starts in a moment', until: null };
}
