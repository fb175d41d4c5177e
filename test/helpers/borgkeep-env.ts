// A throw-away borgkeep installation for integration tests: its own data directory, the built
// CLI, and a way in for the real borg client, chosen by `transport`:
//  - 'forced-command' (default): a BORG_RSH script that stands in for sshd running the forced
//    command `borgkeep borg-serve --key KEY`;
//  - 'embedded': the real ssh client to `borgkeep serve`'s SSH gateway;
//  - 'openssh': the real ssh client to a real sshd with `borgkeep authorized-keys`.
// The SSH front-ends start on the first borg() call (after the test registered its keys).

import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { hostKeyLine, startEmbedded, startOpenSsh, writePortAndHostKey, writeSshRsh, type SshFrontEnd, type SshTransport } from './ssh-transports.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BORGKEEP = join(ROOT, 'bin', 'borgkeep');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  cwd?: string;
  timeoutMs?: number;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

export interface BorgkeepEnv {
  readonly root: string;
  readonly dataDir: string;
  readonly rsh: string;
  /** Runs `borgkeep --data-dir <dataDir> ...args`. */
  cli(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Like cli(), but fails the test unless the command exits 0. */
  cliOk(args: readonly string[], opts?: RunOptions): Promise<string>;
  /** Creates an ed25519 key pair and registers its public key under `name`. */
  addKey(name: string): Promise<void>;
  /** Creates repository `repo` and, for each key (added first), grants it the role. */
  repoWithKeys(repo: string, roles: Readonly<Record<string, 'read' | 'append' | 'prune' | 'full'>>): Promise<void>;
  /** Runs the real borg client as the holder of key `key`, through the guard. */
  borg(key: string, args: readonly string[], opts?: RunOptions & { address?: string }): Promise<RunResult>;
  /** The environment borg() uses, for driving borg by hand. */
  borgEnv(key: string, address?: string): NodeJS.ProcessEnv;
  /** The repository URL a client uses. */
  url(repo: string): string;
  /** Path of a repository on disk (for checks a test makes behind the guard's back). */
  repoPath(repo: string): Promise<string>;
  readonly transport: 'forced-command' | SshTransport;
  /** The SSH front-end, started if it was not yet (throws for 'forced-command'). */
  frontEnd(): Promise<SshFrontEnd>;
  /** Starts the SSH front-end anew (after a test stopped or killed it); clients follow it. */
  restartFrontEnd(): Promise<SshFrontEnd>;
  cleanup(): Promise<void>;
}

export const PASSPHRASE = 'correct horse battery staple';

export interface EnvOptions {
  /** Extra arguments of `borgkeep serve` (transport 'embedded'). */
  serveArgs?: readonly string[];
}

export function createBorgkeepEnv(label = 'bk', transport: 'forced-command' | SshTransport = 'forced-command', options: EnvOptions = {}): BorgkeepEnv {
  const root = mkdtempSync(join(tmpdir(), `${label}-`));
  const dataDir = join(root, 'data');
  const clientBase = join(root, 'client');
  const keysDir = join(root, 'ssh-keys');
  mkdirSync(clientBase);
  mkdirSync(keysDir);
  const fakeSshd = join(root, 'fake-sshd');
  // borg runs: $BORG_RSH [-p PORT] HOST borg serve [--info|--debug...]
  writeFileSync(
    fakeSshd,
    `#!/bin/sh
# Stands in for sshd: runs the forced command with the variables sshd would set.
while [ $# -gt 0 ]; do case "$1" in -p) shift 2;; -*) shift;; *) break;; esac; done
shift
export SSH_ORIGINAL_COMMAND="$*"
export SSH_CONNECTION="\${BORGKEEP_TEST_ADDR:-127.0.0.1} 40022 127.0.0.1 22"
exec "${process.execPath}" "${BORGKEEP}" --data-dir "${dataDir}" borg-serve --key "$BORGKEEP_TEST_KEY"
`,
  );
  chmodSync(fakeSshd, 0o755);
  const portFile = join(root, 'ssh-port');
  const knownHosts = join(root, 'known_hosts');
  const rsh = transport === 'forced-command' ? fakeSshd : writeSshRsh(root, keysDir, portFile, knownHosts);
  let front: Promise<SshFrontEnd> | null = null;
  const frontEnd = (): Promise<SshFrontEnd> => {
    if (transport === 'forced-command') return Promise.reject(new Error('this installation has no SSH front-end'));
    front ??= (transport === 'embedded' ? startEmbedded(dataDir, options.serveArgs) : startOpenSsh(dataDir)).then((f) => {
      writePortAndHostKey(portFile, knownHosts, f.port, hostKeyLine(transport, dataDir, f));
      return f;
    });
    return front;
  };
  const sshUser = transport === 'openssh' ? 'root' : 'borg';

  const cliEnv = { ...process.env, BORGKEEP_DATA_DIR: undefined } as NodeJS.ProcessEnv;
  const cli = (args: readonly string[], opts: RunOptions = {}) =>
    run(process.execPath, [BORGKEEP, '--data-dir', dataDir, ...args], { env: cliEnv, ...opts });

  const borgEnv = (key: string, address?: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: clientBase,
    LANG: 'C.UTF-8',
    BORG_BASE_DIR: clientBase,
    BORG_RSH: rsh,
    BORG_PASSPHRASE: PASSPHRASE,
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_CHECK_I_KNOW_WHAT_I_AM_DOING: 'YES',
    BORG_DELETE_I_KNOW_WHAT_I_AM_DOING: 'YES',
    BORG_DISPLAY_PASSPHRASE: 'no',
    BORGKEEP_TEST_KEY: key,
    BORGKEEP_TEST_ADDR: address ?? '127.0.0.1',
  });

  const env: BorgkeepEnv = {
    root,
    dataDir,
    rsh,
    cli,
    async cliOk(args, opts) {
      const r = await cli(args, opts);
      if (r.code !== 0) throw new Error(`borgkeep ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
    async addKey(name) {
      const file = join(keysDir, name);
      const r = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@test`, '-f', file]);
      if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
      await env.cliOk(['key', 'add', name, '--file', `${file}.pub`]);
    },
    async repoWithKeys(repo, roles) {
      await env.cliOk(['repo', 'create', repo]);
      for (const [key, role] of Object.entries(roles)) {
        await env.addKey(key);
        await env.cliOk(['grant', key, repo, '--role', role]);
      }
    },
    borgEnv,
    async borg(key, args, opts = {}) {
      if (transport !== 'forced-command') await frontEnd();
      return run('borg', args, { ...opts, env: { ...borgEnv(key, opts.address), ...opts.env } });
    },
    url: (repo) => (transport === 'forced-command' ? `ssh://borgkeep-test/./${repo}` : `ssh://${sshUser}@borgkeep-test/./${repo}`),
    async repoPath(repo) {
      const out = JSON.parse(await env.cliOk(['repo', 'show', repo, '--json'])) as { dirName?: string; path?: string };
      if (out.path) return out.path;
      return join(dataDir, 'repos', String(out.dirName));
    },
    transport,
    frontEnd,
    async restartFrontEnd() {
      if (front) await (await front.catch(() => null))?.stop();
      front = null;
      return frontEnd();
    },
    async cleanup() {
      if (front) await (await front.catch(() => null))?.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return env;
}

/** Writes a small tree of files to back up; `seed` varies the content. */
export function makeSourceTree(dir: string, seed: number, files = 5): string {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < files; i++) {
    writeFileSync(join(dir, `file-${i}.txt`), `seed ${seed} file ${i}\n`.repeat(200 + i * 50));
  }
  return dir;
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}
