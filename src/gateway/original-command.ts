// What an SSH client asked to run, as sshd (SSH_ORIGINAL_COMMAND) or the embedded gateway (the
// exec request) hands it over. Only `borg serve` is accepted, and only its log level is taken:
// every other word of the client's command line is ignored, never passed to the child.

import { LOG_LEVELS, type LogLevel } from '../guard/borg-child.js';

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
