// Sessions that end badly are recorded as aborted, never left open, and leave the repository
// as it was: borg rolls back what was not committed.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { waitForSession } from '../helpers/ledger-wait.js';

interface LedgerSession {
  id: number;
  result: string;
  bytesIn: number;
  detail: string | null;
  pid: number | null;
  transactions: Array<{ state: string }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sessions that end badly', () => {
  let env: BorgkeepEnv;
  let big: string;

  const ledger = async (): Promise<LedgerSession[]> =>
    (JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '100'])) as { sessions: LedgerSession[] }).sessions;
  const archives = async (): Promise<string[]> => {
    const r = await env.borg('admin', ['list', '--short', env.url('main')]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.split('\n').filter(Boolean).sort();
  };

  beforeAll(async () => {
    env = createBorgkeepEnv('aborts');
    await env.repoWithKeys('main', { admin: 'full', laptop: 'append' });
    expect((await env.borg('admin', ['init', '-e', 'repokey', env.url('main')])).code).toBe(0);
    const small = makeSourceTree(join(env.root, 'small'), 1);
    expect((await env.borg('laptop', ['create', `${env.url('main')}::first`, small])).code).toBe(0);
    big = join(env.root, 'big');
    mkdirSync(big);
    writeFileSync(join(big, 'random.bin'), randomBytes(24 * 1024 * 1024));
  });
  afterAll(() => env?.cleanup());

  /** Starts a slow backup (rate-limited upload) and returns the running borg client. */
  function slowBackup(name: string, source = big, kibPerSecond = 2048) {
    return spawn('borg', ['create', '--upload-ratelimit', String(kibPerSecond), '--compression', 'none', `${env.url('main')}::${name}`, source], {
      env: env.borgEnv('laptop'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  const waitForOpenSession = () => waitForSession(ledger, (all) => all.find((s) => s.result === 'open'), 'an open session');
  const waitUntilClosed = (id: number) => waitForSession(ledger, (all) => all.find((s) => s.id === id && s.result !== 'open'), `session ${id} closed`);

  test('a running backup writes its progress to the ledger while it runs, and its totals at the end', async () => {
    // Data of its own: the other tests need backups of `big` that are still slow (not deduplicated).
    const own = join(env.root, 'watched');
    mkdirSync(own);
    writeFileSync(join(own, 'random.bin'), randomBytes(20 * 1024 * 1024));
    // 20 MiB at 1 MiB/s: about ten progress writes (every 2 s) before the end, so one is still to
    // come after the first is seen also when a loaded machine notices that first one late (CI
    // once saw the 12 MiB of before end first, and the wait ran into the test's time-out).
    const client = slowBackup('watched', own, 1024);
    const exited = new Promise<number | null>((resolve) => client.on('exit', resolve));
    // A backup that ended before it was seen running never will be: say so at once.
    const stillRunning = <T>(found: T | undefined): T | undefined => {
      if (!found && client.exitCode !== null) throw new Error(`the backup ended (exit ${client.exitCode}) before the ledger showed it running`);
      return found;
    };
    const running = await waitForSession(ledger, (all) => stillRunning(all.find((s) => s.result === 'open' && s.bytesIn > 1024 * 1024)), 'an open session with bytes in');
    const later = await waitForSession(ledger, (all) => stillRunning(all.find((s) => s.id === running.id && s.result === 'open' && s.bytesIn > running.bytesIn)), 'more bytes in the same session');
    expect(await exited).toBe(0);
    const done = await waitUntilClosed(running.id);
    expect(done.result).toBe('ok');
    expect(done.bytesIn).toBeGreaterThan(20 * 1024 * 1024);
    expect(done.bytesIn).toBeGreaterThan(later.bytesIn);
  });

  test('a client killed with SIGKILL mid-backup: session aborted, nothing committed, repository checks clean', async () => {
    const before = await archives();
    const client = slowBackup('killed-client');
    const session = await waitForOpenSession();
    await sleep(2500); // well into the upload
    client.kill('SIGKILL');
    const closed = await waitUntilClosed(session.id);
    expect(closed.result).toBe('aborted');
    expect(closed.transactions.every((t) => t.state === 'rolled_back')).toBe(true);
    // The lock borg serve held is gone once it saw the EOF: a full check can take it.
    const check = await env.borg('admin', ['check', env.url('main')]);
    expect(check.code, check.stderr).toBe(0);
    expect(await archives()).toEqual(before);
  });

  test('borg-serve itself killed with SIGKILL: the next session closes it as aborted', async () => {
    const client = slowBackup('killed-guard');
    const session = await waitForOpenSession();
    await sleep(1500);
    expect(session.pid).toBeGreaterThan(0);
    process.kill(session.pid as number, 'SIGKILL');
    const r = await new Promise<number | null>((resolve) => client.on('close', resolve));
    expect(r).not.toBe(0);
    // The orphaned borg serve child sees EOF and exits, releasing its lock; any later session
    // (here a list) closes the dead session.
    let listed = await env.borg('admin', ['list', '--short', '--lock-wait', '30', env.url('main')]);
    for (let i = 0; i < 3 && listed.code !== 0; i++) {
      await sleep(1000);
      listed = await env.borg('admin', ['list', '--short', '--lock-wait', '30', env.url('main')]);
    }
    expect(listed.code, listed.stderr).toBe(0);
    const closed = (await ledger()).find((s) => s.id === session.id);
    expect(closed?.result).toBe('aborted');
    expect(closed?.detail).toMatch(/process ended/);
    const check = await env.borg('admin', ['check', '--lock-wait', '30', env.url('main')]);
    expect(check.code, check.stderr).toBe(0);
    expect(listed.stdout).not.toContain('killed-guard');
  });

  test('SIGTERM to borg-serve mid-backup: borg rolls back, the session is aborted', async () => {
    const before = await archives();
    const client = slowBackup('terminated');
    const session = await waitForOpenSession();
    await sleep(1500);
    process.kill(session.pid as number, 'SIGTERM');
    const code = await new Promise<number | null>((resolve) => client.on('close', resolve));
    expect(code).not.toBe(0);
    const closed = await waitUntilClosed(session.id);
    expect(closed.result).toBe('aborted');
    expect(closed.detail).toMatch(/stopped on the server/);
    const check = await run('borg', ['check', '--lock-wait', '30', env.url('main')], { env: env.borgEnv('admin') });
    expect(check.code, check.stderr).toBe(0);
    expect(await archives()).toEqual(before);
  });
});
