// `borgkeep borg-serve --key KEY`: the forced command sshd runs for a borgkeep key. Runs one
// guarded borg serve session over this process's stdin/stdout, with the client address from
// SSH_CONNECTION / SSH_CLIENT and the log level from SSH_ORIGINAL_COMMAND (the only client
// text that influences the child, and only as a choice from a fixed list).

import { fstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';

import { BorgkeepError } from '../errors.js';
import { LOG_LEVELS, createBorgSpawner, type LogLevel } from '../guard/borg-child.js';
import { createBorgVersionCache } from '../guard/borg-version.js';
import { isLocalProcessAlive } from './cli-context.js';

export interface OriginalCommand {
  readonly isBorgServe: boolean;
  readonly logLevel: LogLevel | null;
}

/**
 * Reads SSH_ORIGINAL_COMMAND as `borg serve` would (leading VAR=value words dropped). Only the
 * log level is taken from it; every other option is ignored, never passed on.
 */
export function parseOriginalCommand(command: string | undefined): OriginalCommand {
  if (command === undefined || command.trim() === '') return { isBorgServe: true, logLevel: null };
  const words = command.trim().split(/\s+/);
  while (words.length > 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) words.shift();
  const program = words[0] ?? '';
  const base = program.slice(program.lastIndexOf('/') + 1);
  if (!/^borg[A-Za-z0-9._-]*$/.test(base) || words[1] !== 'serve') return { isBorgServe: false, logLevel: null };
  let logLevel: LogLevel | null = null;
  for (const w of words.slice(2)) {
    if (w === '-v' || w === '--verbose') logLevel = 'info';
    else if (w.startsWith('--') && (LOG_LEVELS as readonly string[]).includes(w.slice(2))) logLevel = w.slice(2) as LogLevel;
  }
  return { isBorgServe: true, logLevel };
}

/** The client's address as sshd reports it, or null. */
export function clientAddressFromEnv(env: NodeJS.ProcessEnv): string | null {
  const first = (v: string | undefined): string | null => (v ? (v.trim().split(/\s+/)[0] ?? null) : null);
  return first(env.SSH_CONNECTION) ?? first(env.SSH_CLIENT);
}

/** stdout as an asynchronous stream: Node writes pipes synchronously, which would stall reads. */
function asyncStdout(): Writable {
  try {
    const st = fstatSync(1);
    if (st.isFIFO() || st.isSocket()) return new Socket({ fd: 1, readable: false, writable: true });
  } catch {
    // fall back to process.stdout
  }
  return process.stdout;
}


export function registerBorgServe(program: Command, getDataDir: () => string): void {
  program
    .command('borg-serve')
    .description("the forced command for sshd: run one guarded 'borg serve' session for KEY over stdin/stdout")
    .requiredOption('--key <key>', 'name or id of the SSH key this session authenticated with')
    .action(async (opts: { key: string }) => {
      const original = parseOriginalCommand(process.env.SSH_ORIGINAL_COMMAND);
      if (!original.isBorgServe) {
        throw new BorgkeepError('BK_ERR_DENIED', "this key may only run 'borg serve'; other commands are refused");
      }
      const dataDir = getDataDir();
      const [{ openStore }, { runGuardSession }, { dataDirPaths }] = await Promise.all([
        import('../store/database.js'),
        import('../guard/guard.js'),
        import('../store/data-dir.js'),
      ]);
      const paths = dataDirPaths(dataDir);
      const store = await openStore({ dataDir });
      const output = asyncStdout();
      // sshd sends SIGHUP when the connection drops; an admin or systemd sends SIGTERM.
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) process.once(sig, onSignal);
      try {
        await store.closeStaleSessions(isLocalProcessAlive);
        const borgCommand = process.env.BORGKEEP_BORG || 'borg';
        const versions = createBorgVersionCache(dataDir, borgCommand, process.env.PATH ?? '');
        // borg serve's home and working directory: nothing of the client's, nothing of ours.
        const serveHome = join(paths.root, 'serve-home');
        mkdirSync(serveHome, { recursive: true, mode: 0o700 });
        const outcome = await runGuardSession(
          {
            store,
            reposDir: paths.repos,
            spawnBorg: createBorgSpawner(borgCommand, process.env, serveHome),
            borgVersion: () => versions.get(),
            onChildVersion: (v) => versions.correct(v),
            host: hostname(),
            pid: process.pid,
          },
          {
            keyRef: opts.key,
            clientAddress: clientAddressFromEnv(process.env),
            logLevel: original.logLevel,
            input: process.stdin,
            output,
            errOutput: process.stderr,
            stop: stop.signal,
          },
        );
        process.exitCode = outcome.result === 'error' ? 1 : 0;
      } finally {
        await store.close();
        if (output !== process.stdout) await new Promise<void>((resolve) => output.end(resolve));
      }
    });
}
