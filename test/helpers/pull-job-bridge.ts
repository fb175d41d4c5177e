// The stock borg client against a pull job's keyless proxy in this process, without SSH: the
// session is served on a unix socket, and borg's BORG_RSH is a small node bridge from its stdin
// and stdout to that socket. Used by the proxy's tests (test/pull/proxy*.test.ts); the runner's
// tests have the real SSH path.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';

import { createGuardDeps } from '../../src/gateway/guard-runtime.js';
import type { GuardDeps } from '../../src/guard/guard.js';
import type { PullJobSession, PullSessionOutcome } from '../../src/pull/types.js';
import { unlockKey, type BorgKey } from '../../src/repository/borg-key.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import { openStore, type Store } from '../../src/store/database.js';
import type { Repository } from '../../src/store/types.js';
import { PASSPHRASE, type BorgkeepEnv } from './borgkeep-env.js';

const BRIDGE = `'use strict';
const s = require('node:net').connect(process.argv[2]);
process.stdin.pipe(s);
s.pipe(process.stdout);
s.on('error', () => process.exit(2));
s.on('close', () => process.exit(0));
`;

/** One word for sh (and for borg, which splits BORG_RSH like sh). */
export const shWord = (w: string): string => `'${w.replace(/'/g, `'"'"'`)}'`;

export interface BridgedBorgOptions {
  /** borg's working directory. */
  readonly cwd: string;
  /** Where the job's directory (socket, bridge, passphrase, BORG_BASE_DIR) is made. */
  readonly work: string;
  /** Its output is borg's stdin (a backup of `-`), e.g. written slowly. */
  readonly stdinScript?: string;
  /** Kills "the client" (borg and its feeding script) once this holds (polled). */
  readonly killWhen?: () => boolean;
  /** Fills borg's BORG_BASE_DIR before it runs (e.g. with a client cache). */
  readonly prepareBase?: (base: string) => void;
}

/** Serves `session` once on a unix socket and runs `borg ARGS` against it; how borg ended and the session's outcome. */
export async function runBorgAgainstSession(
  session: PullJobSession,
  args: readonly string[],
  opts: BridgedBorgOptions,
): Promise<{ code: number; stdout: string; stderr: string; outcome: PullSessionOutcome | null }> {
  const dir = mkdtempSync(join(opts.work, 'job-'));
  const socketPath = join(dir, 'sock');
  const base = join(dir, 'base');
  writeFileSync(join(dir, 'bridge.cjs'), BRIDGE);
  writeFileSync(join(dir, 'pass'), `${session.passphrase}\n`, { mode: 0o600 });
  mkdirSync(base);
  opts.prepareBase?.(base);
  let served: Promise<PullSessionOutcome | null> = Promise.resolve(null);
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    server.close();
    served = session.serve({ input: socket, output: socket, errOutput: new PassThrough() }).catch(() => null);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const [cmd, argv] = opts.stdinScript ? ['sh', ['-c', `(${opts.stdinScript}) | borg "$@"`, 'sh', ...args]] : ['borg', [...args]];
    const child = spawn(cmd as string, argv as string[], {
      cwd: opts.cwd,
      env: {
        PATH: process.env.PATH,
        HOME: base,
        LANG: 'C.UTF-8',
        BORG_BASE_DIR: base,
        BORG_RSH: `${shWord(process.execPath)} ${shWord(join(dir, 'bridge.cjs'))} ${shWord(socketPath)}`,
        BORG_PASSCOMMAND: `cat ${join(dir, 'pass')}`,
        BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'no',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: killing "the client" kills borg and the script feeding it.
      detached: opts.killWhen !== undefined,
    });
    if (opts.killWhen) {
      const killWhen = opts.killWhen;
      const poll = setInterval(() => {
        if (!killWhen()) return;
        clearInterval(poll);
        process.kill(-child.pid!, 'SIGKILL');
      }, 50);
      child.on('close', () => clearInterval(poll));
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('close', (code) => resolve({ code: code ?? 2, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
  server.close();
  const outcome = await served;
  rmSync(dir, { recursive: true, force: true });
  return { ...r, outcome };
}

/**
 * Hands the vault the key of `name` (its passphrase is the test PASSPHRASE) and opens what a
 * job session in this process needs: the store, the guard's dependencies, the repository and its
 * unlocked key. The caller closes `store`.
 */
export async function vaultedRepository(env: BorgkeepEnv, work: string, name: string): Promise<{ store: Store; guard: GuardDeps; repository: Repository; repoPath: string; repoKey: BorgKey }> {
  const passFile = join(work, 'passphrase');
  writeFileSync(passFile, `${PASSPHRASE}\n`, { mode: 0o600 });
  await env.cliOk(['repo', 'key', name, '--passphrase-file', passFile]);
  const store = await openStore({ dataDir: env.dataDir });
  const guard = createGuardDeps(env.dataDir, store, process.env);
  const repository = (await store.findRepository(name))!;
  const repoPath = await env.repoPath(name);
  const config = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
  return { store, guard, repository, repoPath, repoKey: unlockKey(config.key!, PASSPHRASE, config.id) };
}
