// The two hosts of the pull benchmark (bench/pull.bench.mjs), in plain JS (the benchmarks do not
// compile TypeScript): the same set-up as test/helpers/pull-client-host.ts, reduced to what the
// benchmark needs.
//  * a client host: a network namespace joined by a veth pair (server side 10.213.N.1/30, client
//    side 10.213.N.2/30), a real OpenSSH sshd on the client address, the test user bkpulltest;
//  * the server's own sshd for the push baseline: a real OpenSSH sshd in the root namespace on the
//    veth's server address (port 2022, so reachable from the client), root's login limited by
//    authorized_keys to a forced `borg serve --restrict-to-path REPO`.
// CPU: the server sshd's (root's forced-command sessions) from the listening sshd's cutime/cstime
// in /proc (its connection children and their borg serve are waited for, so their times add up
// there once a connection has ended). A non-root session's processes do not add up there (sshd's
// privilege-separated child is not waited for by that chain), so on the client borg is a wrapper
// first in the user's PATH that appends `times` (borg + its ssh) to a log after the real borg.
// Needs root. Clean-up kills every process in the namespace, removes it and the veth, and stops
// the server sshd, also on exit after an error. It never touches any other namespace.

import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { BORGKEEP, PASSPHRASE, borgClientEnv, runOk, writeGuardRsh } from './common.mjs';

export const PULL_USER = 'bkpulltest';

const names = (n) => ({ netns: `bkpull-${n}`, vethServer: `bkp${n}s`, vethClient: `bkp${n}c` });

function ip(args, ignoreFailure = false) {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    if (!ignoreFailure) throw new Error(`ip ${args.join(' ')} failed: ${String(error.stderr ?? error)}`);
  }
}

function teardown(n) {
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

function ensureUser() {
  const find = () => {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${PULL_USER}:`));
    if (!line) return null;
    const f = line.split(':');
    return { uid: Number(f[2]), gid: Number(f[3]) };
  };
  if (!find()) execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', PULL_USER], { stdio: 'ignore' });
  const shadow = readFileSync('/etc/shadow', 'utf8').split('\n').find((l) => l.startsWith(`${PULL_USER}:`));
  if (shadow?.split(':')[1]?.startsWith('!')) execFileSync('usermod', ['-p', '*', PULL_USER], { stdio: 'ignore' });
  return find();
}

/** The children's CPU seconds of every `times` report in `file` (the log is emptied). */
function takeTimes(file) {
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  writeFileSync(file, '');
  const secs = (t) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  };
  let total = 0;
  // `times` prints the shell's own line, then its children's.
  for (let i = 1; i < lines.length; i += 2) total += lines[i].trim().split(/\s+/).map(secs).reduce((x, y) => x + y, 0);
  return total;
}

/** CPU seconds (user + system) so far of process `pid` itself (`own`) and of its reaped descendants (`reaped`). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "(comm)": state is f[0], so utime (field 14) is f[11], stime f[12], cutime f[13] and
  // cstime f[14], in ticks.
  return { own: (Number(f[11]) + Number(f[12])) / 100, reaped: (Number(f[13]) + Number(f[14])) / 100 };
}

/** CPU seconds (user + system) of the reaped descendants of `pid` so far. */
export const childCpuSeconds = (pid) => cpuSeconds(pid).reaped;

/** Waits until `pid` has no children left (a connection's processes all ended and were reaped). */
export async function waitNoChildren(pid, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  const children = () => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  while (children() !== '') {
    if (Date.now() > until) throw new Error(`sshd ${pid} still has children after ${timeoutMs} ms: ${children()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startSshd(argvPrefix, config, label) {
  const child = spawn(argvPrefix[0], [...argvPrefix.slice(1), '/usr/sbin/sshd', '-D', '-e', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  child.stderr.on('data', (d) => chunks.push(d));
  const log = () => Buffer.concat(chunks).toString();
  const until = Date.now() + 20_000;
  while (!/Server listening on/.test(log())) {
    if (child.exitCode !== null) throw new Error(`${label} sshd exited with ${child.exitCode}:\n${log()}`);
    if (Date.now() > until) throw new Error(`${label} sshd did not start within 20 s:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, log };
}

async function hostKey(dir) {
  const key = join(dir, 'ssh_host_ed25519_key');
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const fingerprint = (await runOk('ssh-keygen', ['-l', '-f', `${key}.pub`])).stdout.split(/\s+/)[1];
  return { key, pub: readFileSync(`${key}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' '), fingerprint };
}

/**
 * Starts client host `n` and the server's push sshd on the veth. `dir` is the benchmark's own
 * directory (mode 0755). Returns what the benchmark needs and close().
 */
export async function startPullHosts(n, dir) {
  const { netns, vethServer, vethClient } = names(n);
  const serverAddress = `10.213.${n}.1`;
  const address = `10.213.${n}.2`;
  teardown(n);
  let serverSshd = null;
  let clientSshd = null;
  const onExit = () => {
    serverSshd?.child.kill('SIGKILL');
    teardown(n);
  };
  process.once('exit', onExit);
  const { uid, gid } = ensureUser();
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  // Under /run, root's: sshd wants the directories above its files unwritable by others.
  const sshDir = mkdtempSync(`/run/bk-pullbench-${n}-`);
  chmodSync(sshDir, 0o755);
  const clientAuthorized = join(sshDir, 'client_authorized_keys');
  const serverAuthorized = join(sshDir, 'server_authorized_keys');
  writeFileSync(clientAuthorized, '', { mode: 0o644 });
  writeFileSync(serverAuthorized, '', { mode: 0o600 });
  // The client user's own files for the push: its key and known_hosts, and a TMPDIR.
  const userDir = join(dir, 'client-user');
  mkdirSync(userDir, { mode: 0o700 });
  const tmpDir = join(userDir, 'tmp');
  mkdirSync(tmpDir, { mode: 0o700 });
  try {
    ip(['netns', 'add', netns]);
    ip(['link', 'add', vethServer, 'type', 'veth', 'peer', 'name', vethClient]);
    ip(['link', 'set', vethClient, 'netns', netns]);
    ip(['addr', 'add', `${serverAddress}/30`, 'dev', vethServer]);
    ip(['link', 'set', vethServer, 'up']);
    ip(['-n', netns, 'addr', 'add', `${address}/30`, 'dev', vethClient]);
    ip(['-n', netns, 'link', 'set', vethClient, 'up']);
    ip(['-n', netns, 'link', 'set', 'lo', 'up']);

    const clientKey = await hostKey(join(sshDir));
    // The client's borg: the real one, then its CPU (and its children's: ssh) appended to a log.
    const wrapDir = join(sshDir, 'client-bin');
    mkdirSync(wrapDir, { mode: 0o755 });
    const borgCpuLog = join(userDir, 'borg-cpu.log');
    const realBorg = execFileSync('sh', ['-c', 'command -v borg']).toString().trim();
    writeFileSync(join(wrapDir, 'borg'), `#!/bin/sh\n${realBorg} "$@"\nstatus=$?\ntimes >> ${borgCpuLog}\nexit $status\n`, { mode: 0o755 });
    const clientPath = `${wrapDir}:/usr/local/bin:/usr/bin:/bin`;
    const clientConfig = join(sshDir, 'client_sshd_config');
    writeFileSync(
      clientConfig,
      [
        `ListenAddress ${address}:22`,
        `HostKey ${clientKey.key}`,
        'PidFile none',
        `AuthorizedKeysFile ${clientAuthorized}`,
        `AllowUsers ${PULL_USER}`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'AllowTcpForwarding remote',
        'PermitListen 127.0.0.1:*',
        'GatewayPorts no',
        'X11Forwarding no',
        'AllowAgentForwarding no',
        `SetEnv TMPDIR=${tmpDir} PATH=${clientPath}`,
        '',
      ].join('\n'),
    );
    clientSshd = await startSshd(['ip', 'netns', 'exec', netns], clientConfig, 'client');

    const serverDir = join(sshDir, 'server');
    mkdirSync(serverDir, { mode: 0o755 });
    const serverKey = await hostKey(serverDir);
    const serverConfig = join(sshDir, 'server_sshd_config');
    writeFileSync(
      serverConfig,
      [
        `ListenAddress ${serverAddress}:2022`,
        `HostKey ${serverKey.key}`,
        'PidFile none',
        `AuthorizedKeysFile ${serverAuthorized}`,
        'AllowUsers root',
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        '',
      ].join('\n'),
    );
    serverSshd = await startSshd(['env'], serverConfig, 'server');

    // The client user's key for pushing to the server's sshd, and its known_hosts.
    const pushKey = join(userDir, 'id_push');
    await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'push@bench-client', '-f', pushKey]);
    writeFileSync(join(userDir, 'known_hosts'), `[${serverAddress}]:2022 ${serverKey.pub}\n`);
    for (const f of [userDir, tmpDir, pushKey, `${pushKey}.pub`, join(userDir, 'known_hosts')]) chownSync(f, uid, gid);
    const pushPub = readFileSync(`${pushKey}.pub`, 'utf8').trim();
    const serveHome = join(sshDir, 'serve-home');
    const serveCpuLog = join(sshDir, 'serve-cpu.log');
    mkdirSync(serveHome, { mode: 0o700 });

    return {
      netns,
      address,
      serverAddress,
      user: PULL_USER,
      uid,
      gid,
      clientHostKeyFingerprint: clientKey.fingerprint,
      clientSshdPid: clientSshd.child.pid,
      serverSshdPid: serverSshd.child.pid,
      clientLog: clientSshd.log,
      serverLog: serverSshd.log,
      tmpDir,
      clientPath,
      /** Bytes the server's end of the veth received so far: everything the client host sent it. */
      serverRxBytes: () => Number(readFileSync(`/sys/class/net/${vethServer}/statistics/rx_bytes`, 'utf8').trim()),
      /** CPU seconds of the client's borg runs (with their ssh) since the last call. */
      takeClientBorgCpu: () => takeTimes(borgCpuLog),
      /** CPU seconds of the push's borg serve runs on the server since the last call. */
      takeServeCpu: () => takeTimes(serveCpuLog),
      /** The client user's BORG_RSH for the push. */
      pushRsh: `ssh -i ${pushKey} -o IdentitiesOnly=yes -o UserKnownHostsFile=${join(userDir, 'known_hosts')} -o StrictHostKeyChecking=yes -o BatchMode=yes`,
      /** Lets the client's key in, limited to plain `borg serve --restrict-to-path REPO`. */
      allowPushTo(repo) {
        // A script, so that borg serve's own CPU can be appended to a log (`times`) after it.
        const script = join(sshDir, 'push-serve');
        writeFileSync(
          script,
          `#!/bin/sh\nenv -i PATH=${process.env.PATH} LANG=C.UTF-8 HOME=${serveHome} BORG_BASE_DIR=${serveHome} borg serve --restrict-to-path ${repo}\nstatus=$?\ntimes >> ${serveCpuLog}\nexit $status\n`,
          { mode: 0o755 },
        );
        writeFileSync(serverAuthorized, `command="${script}",restrict ${pushPub}\n`, { mode: 0o600 });
      },
      /**
       * A new repokey repository at `repo` (made by root with BORG_BASE_DIR `initBase`) that the
       * client may push to, and the client user's BORG_BASE_DIR `base` (0700): returns the argv
       * prefix (`env -i ...`) its borg runs under, with its own cache kept in `base`.
       */
      async preparePush(repo, initBase, base) {
        await runOk('borg', ['init', '-e', 'repokey', repo], { env: borgClientEnv(initBase, 'false') });
        this.allowPushTo(repo);
        await runOk('runuser', ['-u', PULL_USER, '--', 'mkdir', '-m', '700', base]);
        return [
          'env', '-i', `PATH=${clientPath}`, `HOME=${base}`, 'LANG=C.UTF-8', `BORG_BASE_DIR=${base}`, `BORG_RSH=${this.pushRsh}`,
          `BORG_PASSPHRASE=${PASSPHRASE}`, 'BORG_RELOCATED_REPO_ACCESS_IS_OK=yes',
        ];
      },
      setClientAuthorizedKeys(lines) {
        writeFileSync(clientAuthorized, lines.map((l) => `${l}\n`).join(''));
        chmodSync(clientAuthorized, 0o644);
      },
      /** argv running `argv` in the namespace as the client user. */
      asClient(argv) {
        return ['ip', 'netns', 'exec', netns, 'runuser', '-u', PULL_USER, '--', ...argv];
      },
      async close() {
        for (const s of [serverSshd, clientSshd]) {
          if (s && s.child.exitCode === null && s.child.signalCode === null) {
            const gone = new Promise((r) => s.child.once('exit', r));
            s.child.kill('SIGTERM');
            await gone;
          }
        }
        teardown(n);
        process.off('exit', onExit);
        if (existsSync(sshDir)) rmSync(sshDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    onExit();
    process.off('exit', onExit);
    rmSync(sshDir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * The server's side of a pull benchmark on borgkeep's data directory `dataDir`: a full key for
 * initialising repositories through the guard, the pull identity in the client's authorized_keys,
 * and the repositories' passphrase file. Returns `cli` (borgkeep on that data directory) and
 * `vaultedRepo(name)`, which makes a repokey repository through the guard with its key in the vault.
 */
export async function preparePullServer(dir, dataDir, hosts) {
  const cli = (args) => runOk(process.execPath, [BORGKEEP, '--data-dir', dataDir, ...args]);
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'admin@bench', '-f', join(dir, 'admin-key')]);
  await cli(['key', 'add', 'admin-key', '--file', join(dir, 'admin-key.pub')]);
  const keyLine = (await cli(['pull-key'])).stdout.split('\n').find((l) => l.includes('ssh-ed25519')).trim();
  hosts.setClientAuthorizedKeys([keyLine]);
  const passFile = join(dir, 'passphrase');
  writeFileSync(passFile, `${PASSPHRASE}\n`, { mode: 0o600 });
  return {
    cli,
    async vaultedRepo(name) {
      await cli(['repo', 'create', name]);
      await cli(['grant', 'admin-key', name, '--role', 'full']);
      const rsh = writeGuardRsh(dir, dataDir, BORGKEEP, `guard-rsh-${name}`);
      await runOk('borg', ['init', '-e', 'repokey', `ssh://borgkeep-bench/./${name}`], { env: borgClientEnv(join(dir, `init-${name}`), rsh, { BENCH_KEY: 'admin-key' }) });
      await cli(['repo', 'key', name, '--passphrase-file', passFile]);
    },
  };
}
