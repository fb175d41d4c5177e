// The child `borg serve` of one session. Its argv is built only from the server's own facts
// (real repository path, role, quota) and a log level picked from a fixed list: never from
// text the client sent. Its environment is minimal, so nothing of ours leaks into borg's
// sysinfo or locks.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'critical'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface BorgServeOptions {
  /** Real path of the one repository this child may open. */
  repositoryPath: string;
  appendOnly: boolean;
  /** Storage quota in bytes; borg requires at least 10 MB. */
  storageQuota: number | null;
  logLevel: LogLevel | null;
}

export interface BorgChild {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  readonly exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export type SpawnBorg = (opts: BorgServeOptions) => BorgChild;

export function borgServeArgv(opts: BorgServeOptions): string[] {
  const argv = ['serve', '--restrict-to-repository', opts.repositoryPath];
  if (opts.appendOnly) argv.push('--append-only');
  if (opts.storageQuota !== null) argv.push(`--storage-quota=${Math.floor(opts.storageQuota)}`);
  if (opts.logLevel !== null) argv.push(`--${opts.logLevel}`);
  return argv;
}

/** The borg on PATH, unless BORGKEEP_BORG names another (tests and odd installs). */
export function borgCommand(env: NodeJS.ProcessEnv): string {
  return env.BORGKEEP_BORG || 'borg';
}

/** borg serve's home and working directory inside the data directory: nothing of the client's, nothing of ours. */
export function serveHome(dataRoot: string): string {
  const home = join(dataRoot, 'serve-home');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  return home;
}

/** Spawns the real `borg serve` (the `borg` on PATH unless BORGKEEP_BORG names another). */
export function createBorgSpawner(borgCommand: string, baseEnv: NodeJS.ProcessEnv, cwd: string): SpawnBorg {
  const env: NodeJS.ProcessEnv = {
    PATH: baseEnv.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: cwd,
    BORG_BASE_DIR: cwd,
  };
  return (opts) => {
    const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(borgCommand, borgServeArgv(opts), {
      cwd,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | string>((resolve) => {
      child.once('error', () => resolve('spawn-error'));
      child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    });
    // A dead child must not crash the guard through an unhandled EPIPE.
    child.stdin.on('error', () => {});
    return {
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      exited,
      kill: (signal = 'SIGTERM') => {
        child.kill(signal);
      },
    };
  };
}
