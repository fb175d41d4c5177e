// The shapes the parts of a pull backup share (issue 16): a registered client host, one job of
// it, and the two seams between the parts — the job runner (SSH to the client, remote
// forwarding, stock `borg create` there) and the keyless proxy (the borg session that comes back
// through that connection). Types only: no I/O, nothing secret is ever logged through them.

import type { Repository } from '../store/types.js';

/** A client host the server backs up by pulling (`borgkeep host add`). */
export interface PullHost {
  readonly id: number;
  readonly name: string;
  /** Host name or address the server connects to (never resolved or shown to the client). */
  readonly address: string;
  readonly port: number;
  /** The SSH user on the client. */
  readonly user: string;
  readonly repositoryId: number;
  /** Absolute paths on the client given to `borg create`. */
  readonly paths: readonly string[];
  /** borg exclude patterns (`--exclude`). */
  readonly excludes: readonly string[];
  /** borg's --compression spec, e.g. 'lz4' or 'zstd,3'. */
  readonly compression: string;
  /** The archive name template; placeholders {host} (the host's name) and {now} (UTC, YYYY-MM-DDTHH:MM:SS). */
  readonly archiveTemplate: string;
  /** A cron expression (croner), or null for manual jobs only. */
  readonly schedule: string | null;
  /** A job running longer than this fails. */
  readonly timeoutSeconds: number;
  /** How many times a failed scheduled job is tried again (a minute apart, then longer). */
  readonly retries: number;
  /** The pinned SSH host key of the client, as OpenSSH prints it: 'SHA256:<base64 without =>'; null until accepted. */
  readonly hostKeyFingerprint: string | null;
  /**
   * Whether a job gives the client the repository's chunk index (issue 17), so it uploads only new
   * chunks; false: the client learns nothing of what the repository holds, and uploads everything.
   * Absent means true.
   */
  readonly sendChunkIndex?: boolean;
  /**
   * Whether the client keeps borg's files cache between jobs (in the pull user's own cache
   * folder), so unchanged files are not read again; only with the chunk index. Absent means false.
   */
  readonly keepFilesCache?: boolean;
  readonly createdAt: Date;
}

export const PULL_JOB_STATES = ['queued', 'connecting', 'running', 'committing', 'done', 'failed'] as const;
export type PullJobState = (typeof PULL_JOB_STATES)[number];

/** One pull job: queued by the schedule or by a person, run once. */
export interface PullJob {
  readonly id: number;
  readonly hostId: number;
  readonly hostName: string;
  readonly trigger: 'schedule' | 'manual';
  readonly state: PullJobState;
  /** The archive name decided when the job started; null while queued. */
  readonly archiveName: string | null;
  readonly queuedAt: Date;
  readonly startedAt: Date | null;
  readonly endedAt: Date | null;
  /** borg's own figures from --log-json progress: original bytes read and files seen so far. */
  readonly bytes: number;
  readonly files: number;
  /** For a failed job: one sentence saying why (never a server path, never a secret). */
  readonly reason: string | null;
  /** Which try of the schedule's retries this is (0 = the first). */
  readonly attempt: number;
  /** A failure only a changed or taken-over client causes (its host key changed; the proxy refused what it sent). */
  readonly hostile: boolean;
}

/** Live progress of a running job, as borg reports it (--progress --log-json). */
export interface PullProgress {
  readonly bytes: number;
  readonly files: number;
  readonly path: string | null;
}

/**
 * What the keyless proxy must be told about one job. The proxy gets the client's borg RPC stream
 * (the session that came back through the job's SSH connection) and answers it with the job's
 * key, re-encrypting every verified object with the repository's key.
 */
export interface PullJobTerms {
  readonly jobId: number;
  readonly repository: Repository;
  /** The only archive name the job may add (plus its borg checkpoints, `<name>.checkpoint[.N]`). */
  readonly archiveName: string;
}

/** How a proxied job session ended, for the job's state and its alert. */
export interface PullSessionOutcome {
  /** The archive was written into the real manifest and committed. */
  readonly committed: boolean;
  /** When the proxy refused something: one sentence (a forged object, another archive name, a read). */
  readonly refusal: string | null;
  /** The ledger session of the server's own guarded session behind the proxy. */
  readonly sessionId: number | null;
  /** The committed archive's figures as borg wrote them into its metadata: files and original bytes read. */
  readonly figures?: { readonly files: number; readonly bytes: number } | null;
  /** Bytes of borg's RPC stream the client sent the proxy (what crossed the network into the server). */
  readonly received?: number;
}

/**
 * The borg cache directory a job's client is given (src/pull/client-cache.ts): its files, paths
 * relative to BORG_BASE_DIR/.cache/borg/<dirName>/ (a null content is a directory).
 */
export interface ClientCacheFiles {
  /** The repository id the client sees, hex: the cache directory's name. */
  readonly dirName: string;
  readonly chunkCount: number;
  readonly files: ReadonlyArray<{ readonly path: string; readonly content: Buffer | null }>;
}

/** Where a running job's state, progress and log go (the store's pull jobs; a fake in unit tests). */
export interface PullJobRecorder {
  state(jobId: number, state: PullJobState, fields?: { archiveName?: string; reason?: string | null; hostile?: boolean }): Promise<void>;
  progress(jobId: number, progress: PullProgress): Promise<void>;
  /** One line of the job's log (borg's messages, the runner's own steps); never a secret. */
  log(jobId: number, line: string): Promise<void>;
}

/**
 * One job's keyless session factory, made by the proxy for the runner (src/pull/pull-proxy.ts):
 * the runner writes `passphrase` to the client (a 0600 file for BORG_PASSCOMMAND, removed after
 * the job) and hands every borg connection that comes back through the job's SSH endpoint to
 * `serve`. The job key itself never leaves the server's memory except as the encrypted blob
 * `load_key` returns.
 */
export interface PullJobSession {
  readonly passphrase: string;
  /** `input` may come paused (bytes read ahead put back): the reader resumes it once it listens. */
  serve(io: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream; errOutput: NodeJS.WritableStream; stop?: AbortSignal }): Promise<PullSessionOutcome>;
  /**
   * Builds the borg cache the client is given before borg runs (issue 17): the repository's chunks,
   * in sync with the synthetic manifest this job will serve, which it fixes. Throws (one sentence)
   * when it cannot be built; the job then goes without one (the client uploads every chunk).
   */
  clientCache?(): Promise<ClientCacheFiles>;
  /** Forgets the job key (the job ended, whichever way). */
  dispose(): void;
}
