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
