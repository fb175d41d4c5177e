// One retention run of one repository: borg's own `borg prune` with the policy's flags, then
// `borg compact`, run by the server with the key borgkeep holds (the vault).
//
// The borg client does not open the repository directly: it talks to a guarded `borg serve`
// session started in this process with the server's own identity (GuardSession.internal, role
// full), so the guard's decisions, the ledger (sessions of kind 'retention'), borg's lock and the
// compaction gate apply exactly as to a client: the gate verifies the prune's removals with the
// held key at the compacting commit, or defers the compaction and says why (the run's warning). The client reaches that session
// through BORG_RSH: a tiny bridge script that connects borg's pipes to a unix socket in a private
// directory (0700, one connection, removed after the run). No command line, SSH user or key can
// start such a session, so no client can claim the server's identity.
//
// Must never put the passphrase in an argv, an environment variable or a log: borg reads it from
// a pipe (BORG_PASSPHRASE_FD), a keyfile is written 0600 into the private directory and removed.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { runGuardSession, type GuardDeps, type GuardOutcome } from '../guard/guard.js';
import { plural } from '../shared/plural.js';
import type { Repository } from '../store/types.js';
import type { RetentionPolicy, RetentionResult } from './retention-policy.js';
import { describeRules, pruneArguments } from './retention-policy.js';

/** What the vault gives for a repository (src/vault/vault.ts's RepositoryKeyMaterial). */
export interface RetentionKeyMaterial {
  readonly passphrase: string;
  /** Text of a borg keyfile, or null for repokey (and unencrypted) repositories. */
  readonly keyFile: string | null;
}

/** The part of the vault a run needs (src/vault/vault.ts's Vault has it). */
export interface RetentionKeySource {
  has(dirName: string): boolean;
  /** Throws (one sentence) when the vault's master secret is not available. */
  get(dirName: string): RetentionKeyMaterial | null;
}

export interface RetentionRunDeps {
  readonly guard: GuardDeps;
  readonly vault: RetentionKeySource;
  /** <data-dir>: borg's cache and security files for the server's client live under it. */
  readonly dataDir: string;
  /** The borg client to run (the same borg as `borg serve`). */
  readonly borg: string;
  readonly path: string;
  readonly now: () => Date;
}

export interface RetentionRun {
  readonly result: RetentionResult;
  /** One line for the job list, the console and the CLI. */
  readonly detail: string;
  /** Names of the archives borg pruned, in borg's order. */
  readonly pruned: readonly string[];
  readonly kept: number;
  readonly compacted: boolean;
  /** Why the gate deferred the compaction, or null. */
  readonly deferred: string | null;
  /** The ledger sessions of the run (prune, compact). */
  readonly sessions: readonly number[];
}

/** How long borg waits for the repository's lock, which a running backup holds. */
const LOCK_WAIT_SECONDS = 600;
const BRIDGE = `'use strict';
// borgkeep's BORG_RSH for its own retention run: borg's pipes to the guard's socket.
const s = require('node:net').connect(process.argv[2]);
process.stdin.pipe(s);
s.pipe(process.stdout);
s.on('error', () => process.exit(2));
s.on('close', () => process.exit(0));
`;

/** A shell word for BORG_RSH (borg splits it with shlex). */
const shellWord = (w: string): string => `'${w.replace(/'/g, `'"'"'`)}'`;

/** The lines of borg's output that say what it did with each archive. */
function pruneLines(stderr: string): { pruned: string[]; kept: number } {
  const pruned: string[] = [];
  let kept = 0;
  for (const line of stderr.split('\n')) {
    const p = /^Pruning archive \(\d+\/\d+\):\s+(\S.*?)\s{2,}\S/.exec(line) ?? /^Pruning archive \(\d+\/\d+\):\s+(\S+)/.exec(line);
    if (p) pruned.push(p[1]!);
    else if (/^Keeping (?:checkpoint )?archive/.test(line)) kept++;
  }
  return { pruned, kept };
}

/** The last line borg printed that says what went wrong. */
function borgError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^(Keeping|Pruning|Would prune)/.test(l));
  return (lines.at(-1) ?? 'borg gave no reason').slice(0, 500);
}

class Collector extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    if (this.text.length < 1_000_000) this.text += chunk.toString('utf8');
    done();
  }
}

interface BorgStep {
  readonly code: number;
  readonly stderr: string;
  /** What the guard wrote to the session's stderr (borg serve's messages, the gate's deferral). */
  readonly guardText: string;
  readonly outcome: GuardOutcome | null;
}

/** Runs one borg command against `repository` through an internal guarded session. */
async function borgThroughGuard(deps: RetentionRunDeps, repository: Repository, privateDir: string, args: readonly string[], key: RetentionKeyMaterial | null): Promise<BorgStep> {
  const socketPath = join(privateDir, `s${Math.random().toString(36).slice(2, 10)}`);
  const guardText = new Collector();
  let session: Promise<GuardOutcome | null> = Promise.resolve(null);
  const server: Server = createServer({ allowHalfOpen: true });
  server.maxConnections = 1;
  server.on('connection', (socket: Socket) => {
    // One connection: the borg client's. Nothing else gets in afterwards.
    server.close();
    session = runGuardSession(deps.guard, {
      keyRef: 'retention',
      clientAddress: null,
      logLevel: null,
      input: socket,
      output: socket,
      errOutput: guardText,
      internal: { kind: 'retention', repository, role: 'full' },
    })
      .then(async (outcome) => {
        if (outcome.ledgerWritten) await outcome.ledgerWritten;
        return outcome;
      })
      .catch(() => null)
      .finally(() => socket.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  const bridge = join(privateDir, 'bridge.cjs');
  if (!existsSync(bridge)) writeFileSync(bridge, BRIDGE, { mode: 0o600 });
  const baseDir = join(deps.dataDir, 'retention', repository.dirName);
  mkdirSync(baseDir, { recursive: true, mode: 0o700 });
  const env: NodeJS.ProcessEnv = {
    PATH: deps.path,
    HOME: baseDir,
    LANG: 'C.UTF-8',
    BORG_BASE_DIR: baseDir,
    BORG_RSH: `${shellWord(process.execPath)} ${shellWord(bridge)} ${shellWord(socketPath)}`,
    // The repository's name may have changed since the last run; its id is what borg checks.
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
  };
  if (key) env.BORG_PASSPHRASE_FD = '3';
  if (key?.keyFile) {
    const keyPath = join(privateDir, 'key');
    writeFileSync(keyPath, key.keyFile, { mode: 0o600 });
    env.BORG_KEY_FILE = keyPath;
  }
  const url = `ssh://borgkeep-retention/./${repository.name}`;
  const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = spawn(deps.borg, [...args, url], { env, cwd: baseDir, stdio: ['ignore', 'ignore', 'pipe', key ? 'pipe' : 'ignore'] });
    const err: Buffer[] = [];
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    const fd3 = child.stdio[3] as Writable | null;
    if (fd3 && key) {
      fd3.on('error', () => undefined);
      fd3.end(`${key.passphrase}\n`);
    }
    child.on('error', (e) => resolve({ code: 2, stderr: `could not run borg: ${e.message}` }));
    child.on('close', (code) => resolve({ code: code ?? 2, stderr: Buffer.concat(err).toString('utf8') }));
  });
  server.close();
  const outcome = await session;
  return { ...result, guardText: guardText.text, outcome };
}

/** Runs the policy on the repository once. Never throws: a failure is a run whose result is 'error'. */
export async function runRetention(deps: RetentionRunDeps, repository: Repository, policy: RetentionPolicy): Promise<RetentionRun> {
  const sessions: number[] = [];
  const fail = (detail: string): RetentionRun => ({ result: 'error', detail, pruned: [], kept: 0, compacted: false, deferred: null, sessions });
  let key: RetentionKeyMaterial | null;
  try {
    key = deps.vault.get(repository.dirName);
  } catch (error) {
    return fail((error as Error).message);
  }
  if (!key) return fail(`borgkeep does not hold the key of repository '${repository.name}'; hand it over with 'borgkeep repo key ${repository.name} --passphrase-file FILE'`);
  if (!existsSync(join(deps.guard.reposDir, repository.dirName, 'config'))) return fail(`repository '${repository.name}' is not initialised yet`);

  const privateDir = mkdtempSync(join(tmpdir(), 'borgkeep-retention-'));
  try {
    const prune = await borgThroughGuard(deps, repository, privateDir, ['prune', '--list', '--lock-wait', String(LOCK_WAIT_SECONDS), ...pruneArguments(policy)], key);
    if (prune.outcome) sessions.push(prune.outcome.sessionId);
    const { pruned, kept } = pruneLines(prune.stderr);
    if (prune.code >= 2 || prune.outcome?.result === 'error' || prune.outcome?.result === 'denied') {
      return fail(`borg prune failed (${describeRules(policy)}): ${borgError(prune.stderr)}`);
    }
    const removed = `pruned ${pruned.length} of ${plural(pruned.length + kept, 'archive')}`;
    // The keyfile is borg's to read only for the prune: compact reads no archive.
    const compact = await borgThroughGuard(deps, repository, privateDir, ['compact', '--lock-wait', String(LOCK_WAIT_SECONDS)], null);
    if (compact.outcome) sessions.push(compact.outcome.sessionId);
    const deferral = /compaction deferred: ([^\n]*?)\.?\n/.exec(compact.guardText);
    if (deferral) {
      const why = deferral[1]!;
      return { result: 'warning', detail: `${removed}; compaction deferred: ${why}`, pruned, kept, compacted: false, deferred: why, sessions };
    }
    if (compact.code >= 2 || compact.outcome?.result === 'error' || compact.outcome?.result === 'denied') {
      return { result: 'error', detail: `${removed}; borg compact failed: ${borgError(compact.stderr)}`, pruned, kept, compacted: false, deferred: null, sessions };
    }
    return { result: 'ok', detail: `${removed}; compacted`, pruned, kept, compacted: true, deferred: null, sessions };
  } finally {
    rmSync(privateDir, { recursive: true, force: true });
  }
}
