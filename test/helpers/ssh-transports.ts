// The two real SSH front-ends for integration tests, each reached by the real OpenSSH client:
//  - embedded: `borgkeep serve` (its ssh2 gateway) on a loopback port the system picks;
//  - openssh:  a real sshd on a loopback port, asking `borgkeep authorized-keys` for the keys
//              (AuthorizedKeysCommand), whose lines carry the forced command `borgkeep borg-serve`.
// Both write the port and host key to files the BORG_RSH wrapper reads, so repository URLs stay
// the same (ssh://USER@borgkeep-test/./REPO) whichever front-end a test runs against.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { BORGKEEP, run } from './borgkeep-env.js';

export type SshTransport = 'embedded' | 'openssh';

export interface SshFrontEnd {
  readonly user: string;
  readonly port: number;
  /** The server's log so far (serve's stdout and stderr, or sshd's stderr). */
  log(): string;
  /** The serve or sshd process. */
  readonly process: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** A free loopback port (for sshd, which cannot report the one it picked). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? child.signalCode ?? 'gone');
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'gone')));
}

function collect(child: ChildProcess): () => string {
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => chunks.push(d));
  child.stderr?.on('data', (d: Buffer) => chunks.push(d));
  return () => Buffer.concat(chunks).toString();
}

async function waitFor<T>(what: string, probe: () => T | null, log: () => string, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== null) return v;
    if (Date.now() > until) throw new Error(`${what} did not happen within ${timeoutMs} ms; log:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The command and arguments that run `command args` as if on another machine named `hostname`
 * (its own UTS namespace: `os.hostname()` says so, so its sessions are recorded as that host's,
 * whose processes this machine cannot see), or as they are without one. Root only. The process
 * keeps its pid: unshare and sh exec into it.
 */
export function asHost(hostname: string | undefined, command: string, args: readonly string[]): [string, string[]] {
  if (hostname === undefined) return [command, [...args]];
  return ['unshare', ['--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', hostname, command, ...args]];
}

/** Starts `borgkeep serve` on 127.0.0.1 with system-chosen ports (SSH and HTTP API), so tests can run side by side; on a machine of its own when `hostname` is given (asHost). */
export async function startEmbedded(dataDir: string, extraArgs: readonly string[] = [], opts: { hostname?: string } = {}): Promise<SshFrontEnd> {
  const [command, args] = asHost(opts.hostname, process.execPath, [BORGKEEP, '--data-dir', dataDir, 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', ...extraArgs]);
  const child = spawn(command, args, {
    env: { ...process.env, BORGKEEP_DATA_DIR: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = collect(child);
  const port = await waitFor(
    'borgkeep serve listening',
    () => {
      if (child.exitCode !== null) throw new Error(`borgkeep serve exited with ${child.exitCode}:\n${log()}`);
      const m = /ssh gateway listening on 127\.0\.0\.1:(\d+)/.exec(log());
      return m ? Number(m[1]) : null;
    },
    log,
  );
  return {
    user: 'borg',
    port,
    log,
    process: child,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited(child);
    },
  };
}

/**
 * A real sshd on 127.0.0.1. sshd runs AuthorizedKeysCommand only from a root-owned path whose
 * directories nobody else may write, so its files live under /run, not the world-writable /tmp.
 * The login user is root (PermitRootLogin forced-commands-only: the key line's command is the
 * only thing it can run); in production it is a dedicated `borg` user (docs/openssh.md).
 */
export async function startOpenSsh(dataDir: string): Promise<SshFrontEnd & { dir: string }> {
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = mkdtempSync('/run/borgkeep-test-sshd-');
  chmodSync(dir, 0o755);
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const kg = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  if (kg.code !== 0) throw new Error(`ssh-keygen failed: ${kg.stderr}`);
  const akc = join(dir, 'authorized-keys-command');
  writeFileSync(akc, `#!/bin/sh\nexec "${process.execPath}" "${BORGKEEP}" --data-dir "${dataDir}" authorized-keys --ssh-user root "$@"\n`);
  chmodSync(akc, 0o755);
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      'PidFile none',
      'AuthorizedKeysFile none',
      `AuthorizedKeysCommand ${akc} %u %t %k`,
      'AuthorizedKeysCommandUser root',
      'PermitRootLogin forced-commands-only',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 100:30:200',
      'MaxSessions 100',
      'LogLevel INFO',
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = collect(child);
  await waitFor(
    'sshd listening',
    () => {
      if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}:\n${log()}`);
      return /Server listening on 127\.0\.0\.1 port/.test(log()) ? true : null;
    },
    log,
  );
  return {
    user: 'root',
    port,
    dir,
    log,
    process: child,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited(child);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** The host's public key line (for known_hosts), read from where each front-end keeps it. */
export function hostKeyLine(transport: SshTransport, dataDir: string, front: SshFrontEnd & { dir?: string }): string {
  const file = transport === 'embedded' ? join(dataDir, 'ssh', 'ssh_host_ed25519_key.pub') : join(front.dir!, 'ssh_host_ed25519_key.pub');
  return readFileSync(file, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
}

/**
 * BORG_RSH for the real ssh client: the key file named by $BORGKEEP_TEST_KEY, the source address
 * $BORGKEEP_TEST_ADDR (any of 127/8), strict host key checking against the front-end's key, and
 * the port from `portFile` (the front-end may be restarted on another port).
 */
export function writeSshRsh(root: string, keysDir: string, portFile: string, knownHosts: string): string {
  const rsh = join(root, 'ssh-rsh');
  writeFileSync(
    rsh,
    `#!/bin/sh
exec ssh -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o HostName=127.0.0.1 -o HostKeyAlias=borgkeep-test \\
  -o UserKnownHostsFile="${knownHosts}" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o LogLevel=ERROR \\
  -o ConnectTimeout=20 -b "\${BORGKEEP_TEST_ADDR:-127.0.0.1}" -p "$(cat "${portFile}")" -i "${keysDir}/$BORGKEEP_TEST_KEY" "$@"
`,
  );
  chmodSync(rsh, 0o755);
  return rsh;
}

export function writePortAndHostKey(portFile: string, knownHosts: string, port: number, hostKey: string): void {
  writeFileSync(portFile, `${port}\n`);
  writeFileSync(knownHosts, `borgkeep-test ${hostKey}\n`);
}
