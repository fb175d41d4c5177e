// What every fault test needs: the ledger as the CLI prints it, the repository checked and
// listed straight from the disk (no gateway involved, as an admin on the server would), slow
// backups to be in the middle of, process trees, RSS, and tmpfs mounts that are always undone.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

import { run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { waitForSession } from '../helpers/ledger-wait.js';

export interface LedgerSession {
  id: number;
  result: string;
  detail: string | null;
  pid: number | null;
  keyName: string | null;
  repositoryName: string | null;
  bytesIn: number;
  bytesOut: number;
  transactions: Array<{ state: string; borgTransactionId: number | null }>;
  denials: Array<{ method: string; reason: string; message: string }>;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two initialised repositories: `main` with the keys and roles given (`admin` with `full` among
 * them), and `side`, which `admin` may do anything with and the key `server` appends to: the
 * other client whose backups must go on while the fault hits `main`.
 */
export async function twoRepositories(env: BorgkeepEnv, main: string, roles: Readonly<Record<string, 'read' | 'append' | 'prune' | 'full'>>, side: string): Promise<void> {
  await env.repoWithKeys(main, roles);
  await env.cliOk(['repo', 'create', side]);
  await env.addKey('server');
  await env.cliOk(['grant', 'admin', side, '--role', 'full']);
  await env.cliOk(['grant', 'server', side, '--role', 'append']);
  for (const repo of [main, side]) {
    const init = await env.borg('admin', ['init', '-e', 'repokey', env.url(repo)]);
    expect(init.code, init.stderr).toBe(0);
  }
}

/** Bytes in a repository's segment files (they grow while a transaction is uploaded). */
export function segmentBytes(repoPath: string): number {
  const walk = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((sum, e) => sum + (e.isDirectory() ? walk(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);
  return walk(join(repoPath, 'data'));
}

export function faultKit(env: () => BorgkeepEnv) {
  const ledger = async (repo?: string): Promise<LedgerSession[]> =>
    (JSON.parse(await env().cliOk(['ledger', '--json', '--limit', '500', ...(repo ? ['--repo', repo] : [])])) as { sessions: LedgerSession[] }).sessions;

  const kit = {
    ledger,
    /** `borg check` and `borg list` on the repository's directory; fails the test unless check passes. */
    async onDisk(repo: string): Promise<string[]> {
      const path = await env().repoPath(repo);
      const check = await run('borg', ['check', '--lock-wait', '30', path], { env: env().borgEnv('admin') });
      expect(check.code, `borg check ${repo}: ${check.stderr}`).toBe(0);
      const list = await run('borg', ['list', '--short', path], { env: env().borgEnv('admin') });
      expect(list.code, list.stderr).toBe(0);
      return list.stdout.split('\n').filter(Boolean).sort();
    },
    /** A `borg create` of `source` uploading at 2 MiB/s, so a test can act in its middle. */
    slowBackup(key: string, repo: string, name: string, source: string): ChildProcess & { result: Promise<{ code: number | null; stderr: string }> } {
      const child = spawn('borg', ['create', '--upload-ratelimit', '2048', '--compression', 'none', `${env().url(repo)}::${name}`, source], {
        env: env().borgEnv(key),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const result = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
      return Object.assign(child, { result });
    },
    /** Waits for an open session with `minBytes` in; fails at once if `backup` ends before it is seen. */
    openSessionOf: (repo: string, minBytes = 0, backup?: ChildProcess) =>
      waitForSession(
        () => ledger(repo),
        (all) => {
          const open = all.find((s) => s.result === 'open' && s.bytesIn >= minBytes);
          if (!open && backup && backup.exitCode !== null) throw new Error(`the backup on ${repo} ended before its session was seen open with ${minBytes} bytes in`);
          return open;
        },
        `an open session on ${repo}`,
      ),
    closedSession: (id: number, tries = 300) =>
      waitForSession(() => ledger(), (all) => all.find((s) => s.id === id && s.result !== 'open'), `session ${id} closed`, tries),
    /** Fails the test if any session is still open in the ledger. */
    async noneOpen(): Promise<void> {
      expect((await ledger()).filter((s) => s.result === 'open').map((s) => s.id)).toEqual([]);
    },
  };
  return kit;
}

/** A directory holding one file of `bytes` random (incompressible, never deduplicated) bytes. */
export function randomTree(dir: string, bytes: number): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'random.bin'), randomBytes(bytes));
  return dir;
}

/** Direct children of a process (all its threads). */
export function childPids(pid: number): number[] {
  if (!existsSync(`/proc/${pid}/task`)) return [];
  return readdirSync(`/proc/${pid}/task`).flatMap((t) => {
    try {
      return readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
}

/** The command line of a process, or null once it is gone. */
export function cmdline(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

/** Resident memory of a process in MB (VmRSS of /proc/PID/status). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

/** Mounts a tmpfs of `sizeMb` at `dir` (created if missing); returns the unmount. Needs root. */
export function mountTmpfs(dir: string, sizeMb: number): () => void {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount -t tmpfs on ${dir} failed (the fault tests need root): ${r.stderr}`);
  let mounted = true;
  return () => {
    if (!mounted) return;
    // Lazy: a borg serve or the gateway may still hold a file open for a moment.
    spawnSync('umount', ['-l', dir]);
    mounted = false;
  };
}

/** Bytes free on the filesystem holding `dir`. */
export function freeBytes(dir: string): number {
  const r = spawnSync('df', ['--output=avail', '-B1', dir], { encoding: 'utf8' });
  return Number(r.stdout.trim().split('\n')[1]);
}

/** Fills the filesystem of `dir` with `file` until fewer than `leaveBytes` are free. */
export function fillUp(file: string, leaveBytes: number): void {
  const want = freeBytes(file.slice(0, file.lastIndexOf('/'))) - leaveBytes;
  if (want <= 0) return;
  // tmpfs supports fallocate; the last pages may be taken by metadata, so step back until it fits.
  let size = want;
  while (size > 0 && spawnSync('fallocate', ['-l', String(size), file]).status !== 0) size -= 64 * 1024;
  if (size <= 0) throw new Error(`could not fill the filesystem of ${file}`);
  // Every last page too (dd stops at ENOSPC).
  if (leaveBytes === 0) spawnSync('dd', ['if=/dev/zero', `of=${file}.last`, 'bs=4096']);
}
