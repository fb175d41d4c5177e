// Fault: the gateway itself (`borgkeep serve`) killed with SIGKILL in the middle of a backup's
// transaction (a crash, the OOM killer), then started again on the same data directory. Its
// session's `borg serve` child is orphaned and must go away by itself (it holds the repository's
// lock); the real borg client must fail (non-zero exit) in bounded time, not hang; the restart
// must close the dead session in the ledger; no committed archive may be lost, the repository
// passes `borg check`, and the next backup through the restarted gateway works without waiting
// for a lock. A backup through a real sshd's forced command at the same
// time (its own process, the same data directory) commits, and the restart leaves its still-open
// session alone.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { hostKeyLine, startOpenSsh, writePortAndHostKey, writeSshRsh, type SshFrontEnd } from '../helpers/ssh-transports.js';
import { childPids, cmdline, faultKit, randomTree, segmentBytes, sleep, twoRepositories } from './fault-kit.js';

const MB = 1024 * 1024;

let env: BorgkeepEnv;
let sshd: (SshFrontEnd & { dir: string }) | undefined;
let sshdRsh: string;
let orphan: number | undefined;
const kit = faultKit(() => env);

/** A process that has exited (a zombie not yet reaped has an empty command line). */
const gone = (pid: number) => (cmdline(pid)?.length ?? 0) === 0;

beforeAll(async () => {
  env = createBorgkeepEnv('fault-gateway', 'embedded');
  await twoRepositories(env, 'victim', { admin: 'full', laptop: 'append' }, 'other');
  for (const [i, name] of ['first', 'second'].entries()) {
    const r = await env.borg('laptop', ['create', `${env.url('victim')}::${name}`, makeSourceTree(join(env.root, `small-${i}`), i)]);
    expect(r.code, r.stderr).toBe(0);
  }
  // A real sshd beside the gateway, on the same data directory: its sessions run as their own
  // `borgkeep borg-serve` processes (the forced command), which the gateway's death must not touch.
  sshd = await startOpenSsh(env.dataDir);
  const clientDir = join(env.root, 'sshd-client');
  mkdirSync(clientDir);
  sshdRsh = writeSshRsh(clientDir, join(env.root, 'ssh-keys'), join(clientDir, 'port'), join(clientDir, 'known_hosts'));
  writePortAndHostKey(join(clientDir, 'port'), join(clientDir, 'known_hosts'), sshd.port, hostKeyLine('openssh', env.dataDir, sshd));
});
afterAll(async () => {
  if (orphan !== undefined && !gone(orphan)) process.kill(orphan, 'SIGKILL'); // only if the test failed on it
  await sshd?.stop();
  await env?.cleanup();
});

/** A rate-limited `borg create` through the real sshd (2 MiB/s, as kit.slowBackup). */
function slowBackupViaSshd(key: string, repo: string, name: string, source: string) {
  const child = spawn('borg', ['create', '--upload-ratelimit', '2048', '--compression', 'none', `ssh://root@borgkeep-test/./${repo}::${name}`, source], {
    env: { ...env.borgEnv(key), BORG_RSH: sshdRsh },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

test('borgkeep serve killed with SIGKILL mid-backup and restarted: the client fails promptly, the session is closed, nothing is lost, no lock is left', async () => {
  const serve = (await env.frontEnd()).process.pid!;
  const victimPath = await env.repoPath('victim');
  const segmentsBefore = segmentBytes(victimPath);
  // 32 MiB each at 2 MiB/s (~16 s): the sshd backup is still running when the gateway restarts.
  const data = randomTree(join(env.root, 'big'), 32 * MB);
  const victim = kit.slowBackup('laptop', 'victim', 'killed', data);
  const bystander = slowBackupViaSshd('server', 'other', 'bystander', randomTree(join(env.root, 'other-data'), 32 * MB));

  // Mid-transaction: the ledger shows the session receiving, and its data is in segment files.
  const session = await kit.openSessionOf('victim', 4 * MB);
  const sshdSession = await kit.openSessionOf('other', MB);
  for (let i = 0; segmentBytes(victimPath) < segmentsBefore + 2 * MB; i++) {
    expect(i, 'the backup wrote no segment data').toBeLessThan(300);
    await sleep(100);
  }
  expect(sshdSession.pid).not.toBe(serve); // its own `borgkeep borg-serve` process
  const orphans = childPids(serve).filter((pid) => cmdline(pid)?.includes(victimPath));
  expect(orphans.length).toBe(1);
  orphan = orphans[0]!;

  process.kill(serve, 'SIGKILL');
  const killedAt = Date.now();

  // The client gives up at once (its ssh connection is reset), it does not wait for a server that
  // is gone. Nothing on the server is left to answer it, so it says what borg 1.2 says when any
  // borg serve dies under a writing client (the same with plain sshd and borg serve): exit 2,
  // `Local Exception` and a BrokenPipeError traceback. Reading at that moment, it would say
  // `Connection closed by remote host`.
  const v = await victim.result;
  const clientSeconds = (Date.now() - killedAt) / 1000;
  expect(clientSeconds).toBeLessThan(30); // 0.2 s on this machine
  expect(v.code).toBe(2);
  expect(v.stderr).toMatch(/BrokenPipeError: \[Errno 32\] Broken pipe|Connection closed by remote host/);
  expect(v.stderr).not.toContain(victimPath);

  // The orphaned borg serve sees its stdin closed, releases the lock and exits.
  for (let i = 0; !gone(orphan); i++) {
    expect(i, 'the orphaned borg serve still runs 20 s after the gateway died').toBeLessThan(200);
    await sleep(100);
  }
  expect(existsSync(join(victimPath, 'lock.exclusive'))).toBe(false);
  expect(existsSync(join(victimPath, 'lock.roster'))).toBe(false);

  // Nothing read the ledger since the kill (`borgkeep ledger` closes dead sessions too): the
  // restart itself closes the dead session, and only it, not the sshd session still running.
  expect(gone(sshdSession.pid!)).toBe(false);
  const front = await env.restartFrontEnd();
  expect(front.log()).toMatch(/closed 1 session left open by a process that died, as aborted/);
  const closed = (await kit.ledger('victim')).find((s) => s.id === session.id);
  expect(closed?.result).toBe('aborted');
  expect(closed?.detail).toBe("the session's process ended without closing it");
  expect(closed?.bytesIn).toBeGreaterThanOrEqual(4 * MB); // its progress up to the kill is kept
  expect(closed?.transactions.filter((t) => t.state === 'committed')).toEqual([]);

  // The sshd session was not disturbed.
  const b = await bystander;
  expect(b.code, b.stderr).toBe(0);
  const other = (await kit.ledger('other')).find((s) => s.id === sshdSession.id);
  expect(other?.result).toBe('ok');
  expect(other?.transactions.map((t) => t.state)).toEqual(['committed']);
  await kit.noneOpen();

  expect(await kit.onDisk('victim')).toEqual(['first', 'second']);
  expect(await kit.onDisk('other')).toEqual(['bystander']);

  // The next backup through the restarted gateway needs no lock wait (borg's default: 1 s).
  const again = await env.borg('laptop', ['create', `${env.url('victim')}::again`, makeSourceTree(join(env.root, 'again'), 7)]);
  expect(again.code, again.stderr).toBe(0);
  expect(await kit.onDisk('victim')).toEqual(['again', 'first', 'second']);
  await kit.noneOpen();
});
