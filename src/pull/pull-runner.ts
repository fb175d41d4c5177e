// Runs one pull job on its client host (issue 16): SSH to the client with borgkeep's pull identity
// (its host key checked against the pinned fingerprint), a remote-forwarded port on the client's
// loopback whose connections come back to the job's endpoint (job-endpoint.ts), a private
// directory on the client with the job's passphrase and one way in (the connector and a one-time
// token where the client has python3, else a one-time SSH key and borgkeep's host key), then
// stock `borg create --log-json --progress` there, read as it runs into the job's
// progress and log. A client without borg gets the standalone borg the admin configured for its
// platform (pullBorgBinaries), uploaded into that directory. The directory is removed whichever
// way the job ends.
//
// Must never send the client a server path or name (the client only sees 127.0.0.1:PORT/./job),
// never write a secret (the pull key, the job key, the passphrase) into a log, a reason or a
// command line, and never call a job done unless the session behind it committed the archive.

import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

import type { Client as SshClient, ClientChannel, ParsedKey, Server as SshServer } from 'ssh2';

import { generateEd25519KeyPair, type HostKey } from '../gateway/host-keys.js';
import {
  CONNECTOR_SCRIPT,
  borgCreateCommand,
  isPlainClientDir,
  JOB_FILES,
  keptFilesCacheName,
  knownHostsLine,
  makeDirCommand,
  parseMadeDir,
  removeDirCommand,
  restoreFilesCacheCommand,
  uploadBorgCommand,
  writeFileCommand,
  type KeptFilesCache,
} from './client-command.js';
import { HEAD_BYTES, looksLikeProgram, NOT_A_PROGRAM } from './borg-binaries.js';
import { sendClientCache } from './client-cache.js';
import { createJobEndpoint, type JobEndpoint } from './job-endpoint.js';
import { fingerprintOfBlob, type PullIdentity } from './pull-identity.js';
import type { PullHost, PullJob, PullJobRecorder, PullJobSession, PullJobState, PullProgress } from './types.js';

export interface PullRunnerDeps {
  readonly ssh2: {
    Client: typeof SshClient;
    Server: typeof SshServer;
    parseKey: (data: string | Buffer) => ParsedKey | ParsedKey[] | Error;
  };
  /** borgkeep's pull identity (src/pull/pull-identity.ts). */
  readonly identity: PullIdentity;
  /** borgkeep's ed25519 host key: the job endpoint's, pinned on the client for the job. */
  readonly hostKey: HostKey;
  /** The job's one-time SSH key pair (OpenSSH texts); a fresh ed25519 pair unless a test says otherwise. */
  readonly makeJobKey?: () => { private: string; public: string };
  /** How long connecting (TCP, handshake, authentication) may take. */
  readonly connectTimeoutMs?: number;
  /** How long the client may take for the small commands around borg (directory, files, removal). */
  readonly commandTimeoutMs?: number;
  /**
   * The server's standalone borg binaries by client platform (`uname -s`-`uname -m`, lowercased,
   * e.g. linux-x86_64 -> /srv/borg/borg-linux64): uploaded to a client that has no borg.
   */
  readonly borgBinaries?: Readonly<Record<string, string>>;
  /**
   * 'ssh' makes every job's borg connect over SSH with a job key even where the client's python3
   * could run the direct connector (tests of that path; the default chooses by the client).
   */
  readonly hop?: 'ssh';
}

export interface PullRunResult {
  readonly state: 'done' | 'failed';
  /** For a failed job: one sentence (no server path, no secret). */
  readonly reason: string | null;
  /**
   * Set when the client's host key was not the pinned one: `pinned` null means none is pinned yet
   * (the admin confirms `offered`); otherwise a mismatch, for which the caller raises an alert.
   */
  readonly hostKey?: { readonly offered: string; readonly pinned: string | null };
  /** Set when the keyless proxy refused what the client sent (its reason is the refusal). */
  readonly refused?: boolean;
}

/**
 * Whether a failed run is what only a changed or taken-over client causes: another host key than
 * the pinned one, or something the proxy refused (a forged object, another archive, a read). A
 * critical alert (alert-rules.ts pull-failed).
 */
export function hostileFailure(result: PullRunResult): boolean {
  return (result.hostKey !== undefined && result.hostKey.pinned !== null) || result.refused === true;
}

export interface PullRunOptions {
  readonly archiveName: string;
  readonly stop?: AbortSignal;
}

/** borg's --log-json lines, as far as the runner reads them. */
interface BorgJsonLine {
  type?: string;
  original_size?: number;
  nfiles?: number;
  path?: string;
  finished?: boolean;
  message?: string;
  levelname?: string;
}

const PROGRESS_EVERY_MS = 500;
const MAX_LOG_LINE = 1000;
/** After borg create ended: how long the session behind it may take to report its outcome. */
const OUTCOME_WAIT_MS = 15_000;
/** After a stop or time-out: how long borg gets to end once its connection was cut. */
const STOP_WAIT_MS = 10_000;

/** Server-side ssh2 algorithms: ed25519 first, so the fingerprint is the one `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints. */
const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'];

class JobFailure extends Error {}

const clip = (line: string): string => (line.length > MAX_LOG_LINE ? `${line.slice(0, MAX_LOG_LINE)}…` : line);

/** One sentence for a failed connection attempt. */
function connectFailure(host: PullHost, error: Error & { code?: string; level?: string }): string {
  const where = `${host.name} (${host.address}:${host.port})`;
  switch (error.code) {
    case 'ECONNREFUSED':
      return `could not connect to ${where}: the connection was refused (is sshd running there?)`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `could not connect to ${where}: the host is unreachable`;
    case 'ETIMEDOUT':
      return `could not connect to ${where}: the connection timed out`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `could not connect to ${where}: the name ${host.address} does not resolve`;
    default:
  }
  if (error.level === 'client-timeout') return `could not connect to ${where}: no SSH login within the time allowed`;
  if (error.level === 'client-authentication') {
    return `${host.name} refused borgkeep's pull key for user ${host.user} (is the line of borgkeep pull-key in that user's authorized_keys?)`;
  }
  return `could not connect to ${where}: ${error.message}`;
}

/**
 * Runs a command on the client: its status, output and error output (stderr line by line if asked).
 * `input` goes to its stdin: a text, bytes, or a stream (a file too large to hold, streamed under
 * the channel's flow control); `inputError` is set when the stream failed, and the channel is then
 * closed rather than ended, so the command never takes a cut-off input for a whole one.
 */
function exec(
  client: SshClient,
  command: string,
  opts: {
    input?: string | Buffer | Readable;
    onStderrLine?: (line: string) => void;
    onChannel?: (channel: ClientChannel) => void;
    timeoutMs?: number;
    /** Closes the channel when aborted (the job's stop and time-out, for a long upload). */
    signal?: AbortSignal;
  } = {},
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; inputError?: Error }> {
  return new Promise((resolve, reject) => {
    const dropInput = (): void => {
      if (opts.input && typeof opts.input !== 'string' && !Buffer.isBuffer(opts.input)) opts.input.destroy();
    };
    // The time-out covers opening the channel too: a host that never confirms it would otherwise
    // hold the job (the timer below starts only once the channel is open).
    let gaveUp = false;
    const opening = opts.timeoutMs
      ? setTimeout(() => {
          gaveUp = true;
          dropInput();
          reject(new JobFailure(`the client host did not open an SSH session channel within ${opts.timeoutMs! / 1000} s`));
        }, opts.timeoutMs)
      : undefined;
    client.exec(command, (error, channel) => {
      clearTimeout(opening);
      if (gaveUp) {
        if (!error) channel.close();
        return;
      }
      if (error) {
        dropInput();
        return reject(error);
      }
      opts.onChannel?.(channel);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let pending = '';
      let code: number | null = null;
      let signal: string | null = null;
      const input = opts.input !== undefined && typeof opts.input !== 'string' && !Buffer.isBuffer(opts.input) ? opts.input : null;
      let inputError: Error | undefined;
      const timer = opts.timeoutMs ? setTimeout(() => channel.close(), opts.timeoutMs) : undefined;
      const onAbort = (): void => void channel.close();
      if (opts.signal?.aborted) onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      channel.on('data', (d: Buffer) => out.push(d));
      channel.stderr.on('data', (d: Buffer) => {
        if (!opts.onStderrLine) return void err.push(d);
        pending += d.toString('utf8');
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          opts.onStderrLine(pending.slice(0, nl).replace(/\r$/, ''));
          pending = pending.slice(nl + 1);
        }
      });
      channel.on('exit', (c: number | null, s?: string) => {
        code = c;
        signal = s ?? null;
      });
      channel.on('close', () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (input && !input.readableEnded) input.destroy();
        if (pending && opts.onStderrLine) opts.onStderrLine(pending);
        resolve({
          code,
          signal,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          ...(inputError ? { inputError } : {}),
        });
      });
      if (input) {
        input.once('error', (e: Error) => {
          inputError = e;
          input.unpipe(channel);
          channel.close();
        });
        input.pipe(channel);
      } else if (opts.input !== undefined) channel.end(opts.input);
      else channel.end();
    });
  });
}

/** Why a job cannot run borg on a client whose pull user has none (before any standalone borg is considered). */
const noBorgSentence = (host: PullHost): string => `borg is not installed on ${host.name}: user ${host.user} has no borg command in its PATH`;

/**
 * Opens a standalone borg of the server for upload: a regular file, readable. One sentence (no
 * server path: a job's reason is shown to every console user) when it is not.
 */
async function openBorgBinary(path: string, platform: string): Promise<{ file: FileHandle; size: number }> {
  let file: FileHandle | null = null;
  try {
    file = await open(path, 'r');
    const stat = await file.stat();
    if (!stat.isFile()) throw Object.assign(new Error('it is not a regular file'), { code: 'ENOTFILE' });
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await file.read(head, 0, HEAD_BYTES, 0);
    if (!looksLikeProgram(head.subarray(0, bytesRead))) throw new JobFailure(`the standalone borg configured for ${platform} (pullBorgBinaries) ${NOT_A_PROGRAM}`);
    return { file, size: stat.size };
  } catch (error) {
    await file?.close().catch(() => undefined);
    if (error instanceof JobFailure) throw error;
    const e = error as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'there is no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new JobFailure(`could not read the standalone borg configured for ${platform} (pullBorgBinaries): ${why}`);
  }
}

/**
 * Runs one job to its end and records it: connecting -> running -> committing -> done | failed.
 * Calls `session.dispose()` when it ends, whichever way.
 */
export async function runPullJob(
  deps: PullRunnerDeps,
  host: PullHost,
  job: PullJob,
  session: PullJobSession,
  recorder: PullJobRecorder,
  opts: PullRunOptions,
): Promise<PullRunResult> {
  // The recorder's writes are kept in order and never fail the job (a store hiccup loses a line).
  let chain: Promise<unknown> = Promise.resolve();
  const record = (write: () => Promise<void>): Promise<unknown> => (chain = chain.then(write).catch(() => undefined));
  const log = (line: string): void => void record(() => recorder.log(job.id, clip(line)));
  const setState = (state: PullJobState, fields?: { archiveName?: string; reason?: string | null }): Promise<unknown> =>
    record(() => recorder.state(job.id, state, fields));

  const stopper = new AbortController();
  const onStop = (): void => stopper.abort('stopped');
  if (opts.stop?.aborted) onStop();
  opts.stop?.addEventListener('abort', onStop, { once: true });
  // setTimeout holds at most 2^31-1 ms (24.8 days); a longer time-out is as good as none.
  const timeout = setTimeout(() => stopper.abort('timeout'), Math.min(host.timeoutSeconds * 1000, 2 ** 31 - 1));
  timeout.unref();
  const stopReason = (): string =>
    stopper.signal.reason === 'timeout' ? `the job ran longer than its time-out of ${host.timeoutSeconds} s` : 'the job was stopped';

  let client: SshClient | null = null;
  let endpoint: JobEndpoint | null = null;
  let dir: string | null = null;
  let hostKeyProblem: PullRunResult['hostKey'];
  let dropped = false;
  let refused = false;

  // `signal`: the job's stop and time-out, or none for the clean-up's own connection.
  const connect = async (signal: AbortSignal): Promise<SshClient> => {
    const c = new deps.ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        c.end();
        reject(new JobFailure(stopReason()));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      c.once('ready', () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
      c.once('error', (error: Error) => {
        signal.removeEventListener('abort', onAbort);
        if (hostKeyProblem) {
          const { offered, pinned } = hostKeyProblem;
          reject(
            new JobFailure(
              pinned === null
                ? `the host key of ${host.name} is not accepted yet: ${offered} (compare it with ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the client, then accept it with borgkeep host accept-key ${host.name} ${offered})`
                : `the host key of ${host.name} has changed: it offered ${offered}, but ${pinned} is pinned; the job was refused`,
            ),
          );
        } else reject(new JobFailure(connectFailure(host, error)));
      });
      c.connect({
        host: host.address,
        port: host.port,
        username: host.user,
        privateKey: deps.identity.privateKey,
        // Only the pull key: no agent, no password, no keyboard-interactive.
        authHandler: ['publickey'],
        algorithms: { serverHostKey: HOST_KEY_ALGORITHMS as never },
        hostVerifier: (key: Buffer) => {
          const offered = fingerprintOfBlob(key);
          if (host.hostKeyFingerprint !== null && offered === host.hostKeyFingerprint) return true;
          hostKeyProblem = { offered, pinned: host.hostKeyFingerprint };
          return false;
        },
        readyTimeout: deps.connectTimeoutMs ?? 20_000,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
      });
    });
    return c;
  };

  let result: PullRunResult;
  try {
    await setState('connecting', { archiveName: opts.archiveName });
    log(`connecting to ${host.name} (${host.address}:${host.port}) as ${host.user}`);
    client = await connect(stopper.signal);
    client.on('error', (error: Error) => log(`connection to ${host.name}: ${error.message}`));
    const gone = new Promise<void>((resolve) => client!.once('close', () => resolve()));
    void gone.then(() => {
      dropped = true;
    });
    log(`connected; the host key ${host.hostKeyFingerprint} matches the pinned one`);

    const c = client;
    const commandTimeoutMs = deps.commandTimeoutMs ?? 30_000;
    // Bounded like every step before borg runs: a host that stops answering fails the job with a
    // sentence instead of holding it in "connecting" (once seen under load, for over a minute).
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new JobFailure(`${host.name} did not answer the request for a forwarded port within ${commandTimeoutMs / 1000} s`)),
        commandTimeoutMs,
      );
      c.forwardIn('127.0.0.1', 0, (error, p) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(p);
      });
    }).catch((error: Error) => {
      if (error instanceof JobFailure) throw error;
      throw new JobFailure(
        `${host.name} does not allow remote forwarding to its loopback (${error.message}); the pull key line needs port-forwarding and sshd AllowTcpForwarding yes or remote`,
      );
    });
    // Nothing connects before the job's files are written (the endpoint is made with them).
    c.on('tcp connection', (info, accept, reject) => {
      if (info.destPort !== port || !endpoint) return reject();
      endpoint.accept(accept());
    });
    log(`the client's borg reaches the job through port ${port} on the client's loopback`);

    const made = await exec(c, makeDirCommand(), { timeoutMs: commandTimeoutMs });
    const { dir: madeDir, noBorg, python } = parseMadeDir(made.stdout);
    if (made.code !== 0) {
      throw new JobFailure(`could not make the job's private directory on ${host.name}: ${clip(made.stderr.trim() || `mktemp ended with status ${made.code}`)}`);
    }
    if (!isPlainClientDir(madeDir)) {
      // Made, but under a name borg could not take in BORG_RSH: removed again at once (quoted).
      if (madeDir.startsWith('/') && !madeDir.includes('\n')) await exec(c, removeDirCommand(madeDir), { timeoutMs: commandTimeoutMs }).catch(() => undefined);
      throw new JobFailure(`the TMPDIR of user ${host.user} on ${host.name} has characters borg cannot take in its ssh command (use a path of letters, digits, '.', '_', '-' and '/')`);
    }
    dir = madeDir;
    log(`made the job's private directory ${dir} on the client`);
    // A client without borg: the standalone borg for its platform, if the admin configured one, is
    // uploaded below; else the job ends here, and the directory goes with the clean-up below.
    let standalone: { platform: string; binary: string } | null = null;
    if (noBorg) {
      const missing = noBorgSentence(host);
      if (noBorg.platform === null) {
        throw new JobFailure(`${missing}, and its platform is not known (uname -s and -m printed '${noBorg.uname.slice(0, 100)}'), so no standalone borg can be chosen (pullBorgBinaries)`);
      }
      const binary = Object.hasOwn(deps.borgBinaries ?? {}, noBorg.platform) ? deps.borgBinaries![noBorg.platform] : undefined;
      if (binary === undefined) throw new JobFailure(`${missing}, and no standalone borg is configured for its platform ${noBorg.platform} (pullBorgBinaries)`);
      standalone = { platform: noBorg.platform, binary };
    }
    // The direct hop where the client's python3 can run the connector, else ssh with a job key;
    // either way a one-time secret in the job's 0700 directory is the only way in.
    const hop = python && deps.hop !== 'ssh' ? 'direct' : 'ssh';
    let access: Parameters<typeof createJobEndpoint>[0]['access'];
    let files: Array<readonly [string, string]>;
    if (hop === 'direct') {
      const token = randomBytes(32);
      access = { kind: 'direct', token };
      files = [
        [JOB_FILES.token, `${token.toString('hex')}\n`],
        [JOB_FILES.connector, CONNECTOR_SCRIPT],
      ];
    } else {
      const jobKey = (deps.makeJobKey ?? generateEd25519KeyPair)();
      access = { kind: 'ssh', jobPublicKey: jobKey.public };
      files = [
        [JOB_FILES.key, jobKey.private],
        [JOB_FILES.knownHosts, knownHostsLine(port, deps.hostKey.publicLine)],
      ];
    }
    const ep = createJobEndpoint({ ssh2: deps.ssh2, hostKey: deps.hostKey, access, session, log });
    endpoint = ep;
    log(
      hop === 'direct'
        ? "the client's borg connects through the job's connector (python3)"
        : `the client's borg connects over SSH with the job's key${python ? '' : ' (the client has no python3 for the connector)'}`,
    );
    for (const [name, content] of [...files, [JOB_FILES.passphrase, `${session.passphrase}\n`] as const]) {
      const written = await exec(c, writeFileCommand(dir, name), { input: content, timeoutMs: commandTimeoutMs });
      if (written.code !== 0) throw new JobFailure(`could not write the job's files on ${host.name}: ${clip(written.stderr.trim() || `status ${written.code}`)}`);
    }
    let borg: string | undefined;
    if (standalone) {
      // Streamed (a standalone borg is some 30 MB), bounded by the job's own time-out and stop
      // rather than the short command time-out: a slow link may take a while.
      const { platform } = standalone;
      // Opened only now: nothing can fail between here and the stream, which closes the file.
      const { file, size } = await openBorgBinary(standalone.binary, platform);
      const uploaded = await exec(c, uploadBorgCommand(dir), { input: file.createReadStream({ start: 0 }), signal: stopper.signal });
      if (stopper.signal.aborted) throw new JobFailure(stopReason());
      if (uploaded.inputError) throw new JobFailure(`could not read the standalone borg configured for ${platform} (pullBorgBinaries): ${uploaded.inputError.message}`);
      if (uploaded.code !== 0) {
        throw new JobFailure(`could not upload the standalone borg for ${platform} to ${host.name}: ${clip(uploaded.stderr.trim() || `status ${uploaded.code ?? uploaded.signal}`)}`);
      }
      borg = `${dir}/${JOB_FILES.borg}`;
      log(`uploaded the standalone borg for ${platform} (${(size / 1024 / 1024).toFixed(1)} MiB)`);
    }
    // The job's borg cache (client-cache.ts, issue 17): the chunks the repository holds, so borg
    // uploads only new ones; unless the host's admin chose to tell its client nothing.
    let keepFilesCache: KeptFilesCache | undefined;
    if (host.sendChunkIndex !== false && session.clientCache) {
      const build = session.clientCache.bind(session);
      const cacheDirName = await sendClientCache(build, `${dir}/${JOB_FILES.base}`, (command, input, timeoutMs) => exec(c, command, { ...(input ? { input } : {}), timeoutMs }), log, commandTimeoutMs);
      // The host's files cache, kept by the client since its last job (if the admin allows it):
      // borg then reads only new and changed files. Without the chunk index it would be of no use.
      if (cacheDirName && host.keepFilesCache === true) {
        keepFilesCache = { cacheDirName, keptName: keptFilesCacheName(deps.hostKey.publicLine, host.id, host.repositoryId) };
        const restored = await exec(c, restoreFilesCacheCommand(dir, keepFilesCache), { timeoutMs: commandTimeoutMs * 10 });
        const size = restored.stdout.trim();
        if (restored.code !== 0) log(`could not put the kept files cache in place (${clip(restored.stderr.trim() || `status ${restored.code}`)}); borg reads every file`);
        else log(size === '' ? 'the client keeps no files cache of this host yet; borg reads every file' : `the client's kept files cache (${size} bytes) is in place`);
      }
    }
    if (stopper.signal.aborted) throw new JobFailure(stopReason());

    // borg create, read as it runs.
    let progress: PullProgress = { bytes: 0, files: 0, path: null };
    let lastProgressAt = 0;
    let lastError: string | null = null;
    let finished = false;
    let filesRead = 0;
    const onLine = (line: string): void => {
      if (line.trim() === '') return;
      let parsed: BorgJsonLine | null = null;
      if (line.startsWith('{')) {
        try {
          parsed = JSON.parse(line) as BorgJsonLine;
        } catch {
          parsed = null;
        }
      }
      if (!parsed) {
        // Not borg's JSON: ssh's own complaints, a shell's "borg: not found".
        log(`borg: ${line}`);
        lastError = line;
        return;
      }
      if (parsed.type === 'archive_progress') {
        if (parsed.finished) {
          if (!finished) {
            finished = true;
            void record(() => recorder.progress(job.id, progress));
            void setState('committing');
            log('borg read every file; the archive is being committed');
          }
          return;
        }
        progress = { bytes: Number(parsed.original_size ?? progress.bytes), files: Number(parsed.nfiles ?? progress.files), path: parsed.path ?? progress.path };
        const now = Date.now();
        if (now - lastProgressAt >= PROGRESS_EVERY_MS) {
          lastProgressAt = now;
          const p = progress;
          void record(() => recorder.progress(job.id, p));
        }
      } else if (parsed.type === 'log_message' && typeof parsed.message === 'string') {
        const level = parsed.levelname ?? 'INFO';
        log(`borg ${level.toLowerCase()}: ${parsed.message}`);
        if (level === 'ERROR' || level === 'CRITICAL') lastError = parsed.message;
      }
      else if (parsed.type === 'file_status') filesRead++; // a file borg read (its name is not kept)
      // progress_message, progress_percent: not kept.
    };

    await setState('running');
    log(`borg create started: archive ${opts.archiveName}`);
    let createChannel: ClientChannel | null = null;
    const created = exec(
      c,
      borgCreateCommand({
        dir,
        port,
        hop,
        archiveName: opts.archiveName,
        paths: host.paths,
        excludes: host.excludes,
        compression: host.compression,
        ...(borg ? { borg } : {}),
        ...(keepFilesCache ? { keepFilesCache } : {}),
      }),
      { onStderrLine: onLine, onChannel: (ch) => (createChannel = ch) },
    );
    const stopped = new Promise<'stopped'>((resolve) => {
      if (stopper.signal.aborted) resolve('stopped');
      stopper.signal.addEventListener('abort', () => resolve('stopped'), { once: true });
    });
    const first = await Promise.race([created, stopped, gone.then(() => 'gone' as const)]);
    if (first === 'stopped') {
      // Cutting borg's connection ends borg (its repository calls fail); the client's shell then
      // removes the directory itself, and the runner does too below.
      ep.close();
      const ended = await Promise.race([created, new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
      if (!ended) (createChannel as ClientChannel | null)?.signal('KILL');
      throw new JobFailure(stopReason());
    }
    // A channel that closed without an exit status went with its connection.
    if (first === 'gone' || (first.code === null && first.signal === null)) {
      dropped = true;
      throw new JobFailure(`the connection to ${host.name} dropped during the job`);
    }
    const status = first;
    const outcome = await Promise.race([ep.outcome(), new Promise<null>((r) => setTimeout(() => r(null), OUTCOME_WAIT_MS).unref())]);
    // The committed archive's own figures (borg wrote them into its metadata); progress lines come
    // only every fraction of a second, so a small job may have shown none.
    if (outcome?.figures) progress = { ...progress, ...outcome.figures };
    if (progress.bytes > 0 || progress.files > 0) await record(() => recorder.progress(job.id, progress));
    log(`borg create ended with status ${status.code ?? status.signal ?? 'unknown'}`);
    log(`borg read ${filesRead} ${filesRead === 1 ? 'file' : 'files'} in full${keepFilesCache ? ' (the others it knew unchanged from its files cache)' : ''}`);
    if (outcome?.received !== undefined) log(`the client sent ${outcome.received} bytes to the job`);
    if (outcome?.refusal) {
      refused = true;
      throw new JobFailure(outcome.refusal);
    }
    if (status.code === 127 && !borg) throw new JobFailure(noBorgSentence(host));
    // The shell's "cannot execute": the directory is on a file system mounted noexec.
    if (status.code === 126 && borg) throw new JobFailure(`the standalone borg uploaded to ${host.name} could not be run there (is the TMPDIR of user ${host.user} on a file system mounted noexec?)`);
    if ((status.code === 0 || status.code === 1) && outcome?.committed) {
      if (status.code === 1) log('borg create ended with warnings (see above)');
      result = { state: 'done', reason: null };
    } else if (!ep.started()) {
      throw new JobFailure(`borg on ${host.name} never reached the job${lastError ? `: ${lastError}` : ''}`);
    } else if (status.code === 0 || status.code === 1) {
      throw new JobFailure('borg create ended, but the archive was not committed on the server');
    } else {
      throw new JobFailure(lastError ? `borg create failed on ${host.name}: ${lastError}` : `borg create failed on ${host.name} with status ${status.code ?? status.signal}`);
    }
  } catch (error) {
    const reason = error instanceof JobFailure ? error.message : `the job failed: ${(error as Error).message}`;
    result = { state: 'failed', reason, ...(hostKeyProblem ? { hostKey: hostKeyProblem } : {}), ...(refused ? { refused } : {}) };
  } finally {
    clearTimeout(timeout);
    opts.stop?.removeEventListener('abort', onStop);
    endpoint?.close();
  }

  // The job's directory goes whichever way the job ended (over a new connection if it dropped).
  if (dir) {
    const remove = async (over: SshClient): Promise<void> => {
      const removed = await exec(over, removeDirCommand(dir!), { timeoutMs: deps.commandTimeoutMs ?? 30_000 });
      if (removed.code !== 0) throw new Error(clip(removed.stderr.trim() || `rm ended with status ${removed.code}`));
    };
    try {
      try {
        if (!client || dropped) throw new Error('the connection is gone');
        await remove(client);
      } catch {
        log(`connecting to ${host.name} again to remove the job's directory`);
        const again = await connect(new AbortController().signal);
        try {
          await remove(again);
        } finally {
          again.end();
        }
      }
      log(`removed the job's private directory on the client`);
    } catch (error) {
      log(`could not remove ${dir} on the client: ${(error as Error).message}`);
    }
  }
  client?.end();
  session.dispose();
  if (result.reason) log(`job failed: ${result.reason}`);
  await setState(result.state, { reason: result.reason, ...(hostileFailure(result) ? { hostile: true } : {}) });
  await chain;
  return result;
}
