// A "client host" for pull-backup tests (issue 16): a network namespace joined to the root
// namespace by a veth pair (server side 10.213.N.1/30, client side 10.213.N.2/30), a real OpenSSH
// sshd listening on the client address inside it, a test user with its own home, the pull
// identity's authorized_keys line, and the system's borg. From inside the namespace only the
// veth's /30 is reachable: the server's loopback services are not, so a job that works proves the
// remote-forwarding path. N is chosen per test file so files can run side by side.
//
// Needs root (CI runs as root). Clean-up kills every process in the namespace and removes the
// namespace (which takes its veth end along) and the root-side veth, also when a test failed or
// the worker exits without running its hooks.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { run } from './borgkeep-env.js';

/** The user that plays the client host's backup user (created once per machine if missing). */
export const PULL_TEST_USER = 'bkpulltest';

export interface PullClientHost {
  /** The namespace's name (`ip netns exec NAME ...`). */
  readonly netns: string;
  /** The client's address, as the server connects to it. */
  readonly address: string;
  /** The server side of the veth (reachable from the client; nothing of the server listens there). */
  readonly serverAddress: string;
  /** sshd's port on `address`. */
  readonly port: number;
  /** A second sshd port whose sessions have a PATH without borg (`Match LocalPort`). */
  readonly portWithoutBorg: number;
  /** A third sshd port that allows no TCP forwarding. */
  readonly portWithoutForwarding: number;
  /** A fourth sshd port whose sessions have a TMPDIR with a space in its name (`oddTmpDir`). */
  readonly portWithOddTmpDir: number;
  readonly oddTmpDir: string;
  /** The listening sshd (its per-connection children are other processes in the namespace). */
  readonly sshdPid: number;
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** The test's own directory on the "client" (mode 0755, root's). */
  readonly dir: string;
  /** The user's TMPDIR in its sessions (sshd SetEnv): job directories are made here. */
  readonly tmpDir: string;
  /** The SHA256 fingerprint of sshd's host key, as `ssh-keygen -l` prints it. */
  readonly hostKeyFingerprint: string;
  /** sshd's log so far. */
  log(): string;
  /** Runs a command inside the namespace (as root). */
  exec(cmd: string, args: readonly string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Replaces the authorized_keys lines of the test user. */
  setAuthorizedKeys(lines: readonly string[]): void;
  /**
   * Limits what the client host sends to `mbit` megabits a second (a token bucket on its veth end),
   * or lifts the limit (null): a job that must still be sending when the test acts on it, on a
   * machine that sends 64 MiB in a second.
   */
  limitUpload(mbit: number | null): void;
  close(): Promise<void>;
}

const names = (n: number) => ({ netns: `bkpull-${n}`, vethServer: `bkp${n}s`, vethClient: `bkp${n}c` });

function ip(args: readonly string[], ignoreFailure = false): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    if (!ignoreFailure) throw new Error(`ip ${args.join(' ')} failed: ${String((error as { stderr?: Buffer }).stderr ?? error)}`);
  }
}

/** Kills what runs in the namespace and removes it and the veth (idempotent, synchronous). */
function teardown(n: number): void {
  const { netns, vethServer } = names(n);
  try {
    const pids = execFileSync('ip', ['netns', 'pids', netns], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace
  }
  ip(['netns', 'del', netns], true);
  ip(['link', 'del', vethServer], true);
}

function ensureUser(): { uid: number; gid: number } {
  const find = (): { uid: number; gid: number } | null => {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${PULL_TEST_USER}:`));
    if (!line) return null;
    const f = line.split(':');
    return { uid: Number(f[2]), gid: Number(f[3]) };
  };
  if (!find()) {
    try {
      execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', PULL_TEST_USER], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      // Another test file may have made it at the same moment.
      if (!find()) throw new Error(`useradd ${PULL_TEST_USER} failed: ${String((error as { stderr?: Buffer }).stderr ?? error)}`);
    }
  }
  // useradd leaves the account locked ('!'), which sshd refuses without PAM: '*' is "no password
  // login" without the lock, as a backup user's account is.
  const shadow = readFileSync('/etc/shadow', 'utf8').split('\n').find((l) => l.startsWith(`${PULL_TEST_USER}:`));
  if (shadow?.split(':')[1]?.startsWith('!')) execFileSync('usermod', ['-p', '*', PULL_TEST_USER], { stdio: 'ignore' });
  return find()!;
}

function collect(child: ChildProcess): () => string {
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => chunks.push(d));
  child.stderr?.on('data', (d: Buffer) => chunks.push(d));
  return () => Buffer.concat(chunks).toString();
}

/**
 * Starts a client host numbered `n` (1..250, unique per test file): addresses 10.213.n.1/.2.
 * `authorizedKeys` are the test user's authorized_keys lines (e.g. authorizedKeysLine(identity)).
 */
export async function startPullClientHost(n: number, authorizedKeys: readonly string[]): Promise<PullClientHost> {
  if (!Number.isInteger(n) || n < 1 || n > 250) throw new Error('a client host number is 1..250');
  const { netns, vethServer, vethClient } = names(n);
  const serverAddress = `10.213.${n}.1`;
  const address = `10.213.${n}.2`;
  teardown(n); // what a crashed earlier run left
  const onExit = (): void => teardown(n);
  process.once('exit', onExit);

  const { uid, gid } = ensureUser();
  // Under /run: sshd wants the directories above its files unwritable by others (not /tmp), and
  // the test user must be able to read its authorized_keys and use its TMPDIR.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(`/run/bk-pull-${n}-`);
  chmodSync(dir, 0o755);
  const tmpDir = join(dir, 'tmp');
  mkdirSync(tmpDir, { mode: 0o700 });
  chownSync(tmpDir, uid, gid);
  const oddTmpDir = join(dir, 'tmp dir');
  mkdirSync(oddTmpDir, { mode: 0o700 });
  chownSync(oddTmpDir, uid, gid);
  // The PATH of the port without borg: the tools the job's commands use (uname: the platform for a
  // standalone borg), but no borg.
  const noBorgBin = join(dir, 'bin-without-borg');
  mkdirSync(noBorgBin);
  for (const tool of ['sh', 'mktemp', 'cat', 'rm', 'env', 'ssh', 'chmod', 'mkdir', 'printf', 'test', 'uname']) {
    for (const d of ['/usr/bin', '/bin']) {
      try {
        symlinkSync(join(d, tool), join(noBorgBin, tool));
        break;
      } catch {
        // try the next directory
      }
    }
  }
  const authorizedKeysFile = join(dir, 'authorized_keys');
  const setAuthorizedKeys = (lines: readonly string[]): void => {
    writeFileSync(authorizedKeysFile, lines.map((l) => `${l}\n`).join(''));
    chmodSync(authorizedKeysFile, 0o644);
  };
  setAuthorizedKeys(authorizedKeys);

  let sshd: ChildProcess | null = null;
  try {
    ip(['netns', 'add', netns]);
    ip(['link', 'add', vethServer, 'type', 'veth', 'peer', 'name', vethClient]);
    ip(['link', 'set', vethClient, 'netns', netns]);
    ip(['addr', 'add', `${serverAddress}/30`, 'dev', vethServer]);
    ip(['link', 'set', vethServer, 'up']);
    ip(['-n', netns, 'addr', 'add', `${address}/30`, 'dev', vethClient]);
    ip(['-n', netns, 'link', 'set', vethClient, 'up']);
    ip(['-n', netns, 'link', 'set', 'lo', 'up']);

    const hostKey = join(dir, 'ssh_host_ed25519_key');
    const kg = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    if (kg.code !== 0) throw new Error(`ssh-keygen failed: ${kg.stderr}`);
    const fp = await run('ssh-keygen', ['-l', '-f', `${hostKey}.pub`]);
    const hostKeyFingerprint = fp.stdout.split(/\s+/)[1];
    const port = 22;
    const portWithoutBorg = 2222;
    const portWithoutForwarding = 2223;
    const portWithOddTmpDir = 2224;
    const config = join(dir, 'sshd_config');
    writeFileSync(
      config,
      [
        `ListenAddress ${address}:${port}`,
        `ListenAddress ${address}:${portWithoutBorg}`,
        `ListenAddress ${address}:${portWithoutForwarding}`,
        `ListenAddress ${address}:${portWithOddTmpDir}`,
        `HostKey ${hostKey}`,
        'PidFile none',
        `AuthorizedKeysFile ${authorizedKeysFile}`,
        `AllowUsers ${PULL_TEST_USER}`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        // The files are root's under /run, not the user's home.
        'StrictModes no',
        // What a client host's admin sets for borgkeep: remote forwarding to its own loopback only.
        'AllowTcpForwarding remote',
        'PermitListen 127.0.0.1:*',
        'GatewayPorts no',
        'X11Forwarding no',
        'AllowAgentForwarding no',
        `SetEnv TMPDIR=${tmpDir}`,
        'LogLevel VERBOSE',
        `Match LocalPort ${portWithoutBorg}`,
        `  SetEnv TMPDIR=${tmpDir} PATH=${noBorgBin}`,
        `Match LocalPort ${portWithoutForwarding}`,
        '  AllowTcpForwarding no',
        `Match LocalPort ${portWithOddTmpDir}`,
        `  SetEnv "TMPDIR=${oddTmpDir}"`,
        '',
      ].join('\n'),
    );
    sshd = spawn('ip', ['netns', 'exec', netns, '/usr/sbin/sshd', '-D', '-e', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = collect(sshd);
    const until = Date.now() + 20_000;
    while ((log().match(/Server listening on/g) ?? []).length < 4) {
      if (sshd.exitCode !== null) throw new Error(`sshd exited with ${sshd.exitCode}:\n${log()}`);
      if (Date.now() > until) throw new Error(`sshd did not start listening within 20 s:\n${log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const child = sshd;
    return {
      netns,
      address,
      serverAddress,
      port,
      portWithoutBorg,
      portWithoutForwarding,
      portWithOddTmpDir,
      oddTmpDir,
      sshdPid: sshd.pid!,
      user: PULL_TEST_USER,
      uid,
      gid,
      dir,
      tmpDir,
      hostKeyFingerprint,
      log,
      exec: (cmd, args, timeoutMs = 30_000) => run('ip', ['netns', 'exec', netns, cmd, ...args], { timeoutMs }),
      setAuthorizedKeys,
      limitUpload(mbit) {
        if (mbit === null) ip(['netns', 'exec', netns, 'tc', 'qdisc', 'del', 'dev', vethClient, 'root'], true);
        else ip(['netns', 'exec', netns, 'tc', 'qdisc', 'replace', 'dev', vethClient, 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', '64kb', 'latency', '100ms']);
      },
      async close() {
        if (child.exitCode === null && child.signalCode === null) {
          const gone = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await gone;
        }
        teardown(n);
        process.off('exit', onExit);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    sshd?.kill('SIGKILL');
    teardown(n);
    process.off('exit', onExit);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
