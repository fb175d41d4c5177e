// The `borgkeep` command: parses the command line, runs one command, maps its outcome to one
// line on stderr and an exit code. Command groups live in their own files; this file only wires
// them. It must stay cheap to load: `borg-serve` starts once per SSH session, so modules a
// command alone needs (the store, the guard, later the audit and the HTTP server) are imported
// inside that command's action, never here.
//
// Exit codes: 0 done; 1 refused (bad input, unknown name, conflict: a BorgkeepError);
// 2 usage error (unknown command or option, missing argument); 70 internal error (a bug).

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { isBorgkeepError } from '../errors.js';
import { registerApproveCommand, registerAuditCommand, registerRollbackCommand } from './history-commands.js';
import { registerAuthorizedKeysCommand } from './authorized-keys-command.js';
import { registerBorgServe } from './borg-serve-command.js';
import { registerBrowseCommands } from './browse-commands.js';
import { registerDbCommands } from './db-commands.js';
import type { CliContext } from './cli-context.js';
import { registerGrantCommands } from './grant-commands.js';
import { registerKeyCommands } from './key-commands.js';
import { registerLedgerCommand } from './ledger-command.js';
import { registerNodeCommand } from './node-command.js';
import { registerPullCommands } from './pull-commands.js';
import { createOutput } from './output.js';
import { registerRepoCommands } from './repo-commands.js';
import { registerServeCommand } from './serve-command.js';
import { registerUserCommands } from './user-commands.js';
import { registerVerifyCommand } from './verify-command.js';

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;
/** EX_SOFTWARE from sysexits.h. */
export const EXIT_INTERNAL = 70;

export const DEFAULT_DATA_DIR = './borgkeep-data';

/** Runs the command line; returns the exit code for failures, undefined when the command succeeded. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  const stderr = process.stderr;
  const say = (line: string) => void stderr.write(`borgkeep: ${oneLine(line)}\n`);

  const program = new Command('borgkeep');
  program
    .description('multi-tenant BorgBackup repository server')
    .option('--data-dir <dir>', `the data directory (env BORGKEEP_DATA_DIR, default ${DEFAULT_DATA_DIR})`)
    .version(packageVersion(), '--version', 'print the version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // Commander's usage errors ("error: unknown option '--x'\n(Did you mean --y?)") as one line.
      outputError: (message) => say(message.replace(/^error:\s*/, '').replace(/\(Did you mean/, '(did you mean')),
    });

  const getDataDir = (): string =>
    resolve(program.opts<{ dataDir?: string }>().dataDir || env.BORGKEEP_DATA_DIR || DEFAULT_DATA_DIR);
  const ctx: CliContext = {
    getDataDir,
    out: createOutput(process.stdout),
    now: () => new Date(),
    stdin: process.stdin,
    prompt: stderr,
  };

  registerRepoCommands(program, ctx);
  registerKeyCommands(program, ctx);
  registerGrantCommands(program, ctx);
  registerLedgerCommand(program, ctx);
  registerUserCommands(program, ctx);
  registerBorgServe(program, getDataDir);
  registerServeCommand(program, ctx);
  registerAuthorizedKeysCommand(program, ctx);
  registerAuditCommand(program, ctx);
  registerApproveCommand(program, ctx);
  registerRollbackCommand(program, ctx);
  registerPullCommands(program, ctx);
  registerNodeCommand(program, ctx);
  registerBrowseCommands(program, ctx);
  registerVerifyCommand(program, ctx);
  registerDbCommands(program, ctx);

  try {
    await program.parseAsync(argv);
    return undefined;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Already printed by commander (help text, version, or the usage error through outputError).
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? EXIT_OK : EXIT_USAGE;
    }
    if (isBorgkeepError(error)) {
      say(error.message);
      return EXIT_REFUSED;
    }
    const code = (error as { code?: unknown } | null)?.code;
    // SQLite's busy timeout, or PostgreSQL's lock_timeout (55P03) of the store's connection.
    if (typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code === '55P03')) {
      say('the database is busy: another borgkeep process held it for more than 10 seconds; try again');
      return EXIT_REFUSED;
    }
    say(`internal error: ${error instanceof Error ? error.message : String(error)}`);
    if (env.BORGKEEP_DEBUG && error instanceof Error && error.stack) stderr.write(`${error.stack}\n`);
    return EXIT_INTERNAL;
  }
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const exitCode = await main(process.argv, process.env);
if (exitCode !== undefined) process.exitCode = exitCode;
