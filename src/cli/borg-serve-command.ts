// `borgkeep borg-serve --key KEY`: the forced command sshd runs for a borgkeep key. Runs one
// guarded borg serve session over this process's stdin/stdout, with the client address from
// SSH_CONNECTION / SSH_CLIENT and the log level from SSH_ORIGINAL_COMMAND (the only client
// text that influences the child, and only as a choice from a fixed list).

import { spawnSync } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { hostname } from 'node:os';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';

import { BorgkeepError } from '../errors.js';
import { clientAddressFromEnv, parseOriginalCommand } from '../gateway/original-command.js';
import { borgCommand, createBorgSpawner, serveHome, type LogLevel } from '../guard/borg-child.js';
import { guessChild, warmSpawner, type WarmSpawner } from '../guard/warm-child.js';
import { readableFd } from '../rpc/frame-input.js';
import { pipeUserPagesSoft, pipeWideningFits, widenPipes } from '../shared/pipe-size.js';
import { dataDirPaths } from '../store/data-dir.js';
import { isLocalProcessAlive } from './cli-context.js';

/**
 * borg serve started at once for the key's one grant (guard/warm-child.ts), before node loads
 * the guard and the store; null when there is nothing sure enough to start.
 */
async function startWarmChild(dataDir: string, keyRef: string, logLevel: LogLevel | null): Promise<WarmSpawner | null> {
  if (process.env.BORGKEEP_NO_WARM_CHILD) return null;
  const paths = dataDirPaths(dataDir);
  let db: import('better-sqlite3').Database | null = null;
  try {
    const { default: Database } = await import('better-sqlite3');
    db = new Database(paths.database, { readonly: true, fileMustExist: true });
    const guess = guessChild(db, paths.repos, keyRef, logLevel, new Date());
    return guess && warmSpawner(createBorgSpawner(borgCommand(process.env), process.env, serveHome(paths.root)), guess);
  } catch {
    return null; // the guard reads the same facts again and says what is wrong
  } finally {
    db?.close();
  }
}

/** One line to the system log (syslog/journal, through util-linux's logger), best effort. */
function logToSystem(message: string): void {
  try {
    spawnSync('logger', ['-t', 'borgkeep', '-p', 'user.err', '--', message.replace(/[\r\n]+/g, ' ').slice(0, 2000)], { stdio: 'ignore', timeout: 2000 });
  } catch {
    // no logger: nothing more can be done without telling the client
  }
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
      // Under sshd (SSH_CONNECTION set), no original command means the client asked for a shell.
      const shell = process.env.SSH_ORIGINAL_COMMAND === undefined && process.env.SSH_CONNECTION !== undefined;
      if (!original.isBorgServe || shell) {
        throw new BorgkeepError('BK_ERR_DENIED', "this key may only run 'borg serve'; other commands are refused");
      }
      const dataDir = getDataDir();
      const warm = await startWarmChild(dataDir, opts.key, original.logLevel);
      const [{ openStore }, { databaseUrlFor }, { runGuardSession }, { createGuardDeps }] = await Promise.all([
        import('../store/database.js'),
        import('../store/database-location.js'),
        import('../guard/guard.js'),
        import('../gateway/guard-runtime.js'),
      ]);
      // The client learns that the server cannot serve now, never where its database is or why:
      // the reason goes to the system log (the client's stderr is the only other place it could go).
      const store = await Promise.resolve()
        .then(() => {
          const database = databaseUrlFor(dataDir);
          return openStore({ dataDir, ...(database !== undefined && { database }) });
        })
        .catch((error: unknown) => {
          warm?.discard();
          logToSystem(`borg-serve for key ${opts.key}: ${(error as Error).message}`);
          throw new BorgkeepError('BK_ERR_INTERNAL', 'the server cannot open its database right now; try again later (the reason is in the server\'s system log)');
        });
      const output = asyncStdout();
      // sshd sends SIGHUP when the connection drops; an admin or systemd sends SIGTERM.
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) process.once(sig, onSignal);
      try {
        // Counting, on the way, the sessions still open on this host: 1 MiB pipes to and from
        // sshd while they fit the user's pipe limit (shared/pipe-size.ts); done while the guard starts.
        const here = hostname();
        let openHere = 0;
        await store.closeStaleSessions((pid, host) => {
          const alive = isLocalProcessAlive(pid, host);
          if (alive && host === here) openHere++;
          return alive;
        });
        if (pipeWideningFits(openHere, pipeUserPagesSoft(), process.getuid?.() ?? null)) void widenPipes([0, 1]);
        const deps = createGuardDeps(dataDir, store, process.env);
        const outcome = await runGuardSession(
          warm ? { ...deps, spawnBorg: warm.spawnBorg } : deps,
          {
            keyRef: opts.key,
            clientAddress: clientAddressFromEnv(process.env),
            logLevel: original.logLevel,
            // A pipe or socket is read directly into the frames (frame-input.ts); never also process.stdin.
            input: readableFd(0) ? { fd: 0 } : process.stdin,
            output,
            errOutput: process.stderr,
            stop: stop.signal,
          },
        );
        process.exitCode = outcome.result === 'error' ? 1 : 0;
        // sshd keeps the client until this process exits: the guard retries refused ledger
        // writes for a bounded time (LEDGER_RETRY_MS); after that the next session closes this
        // one as aborted.
        if (outcome.ledgerWritten) await outcome.ledgerWritten;
      } finally {
        warm?.discard();
        await store.close();
        if (output !== process.stdout) await new Promise<void>((resolve) => output.end(resolve));
      }
    });
}
