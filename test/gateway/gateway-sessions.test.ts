// The embedded gateway under load and when things go wrong, with real borg and ssh clients:
// 20 clients backing up to 20 repositories at once; 3 clients on one repository taking turns on
// borg's lock; a client killed mid-backup; the gateway stopped with SIGTERM and killed with
// SIGKILL mid-backup. Afterwards every repository passes `borg check`, holds no partial archive,
// and no session is left open in the ledger.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { waitForSession } from '../helpers/ledger-wait.js';

interface LedgerSession {
  id: number;
  result: string;
  detail: string | null;
  keyName: string | null;
  repositoryName: string | null;
  transactions: Array<{ state: string }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLIENTS = 20;

let env: BorgkeepEnv;
let big: string;

const ledger = async (repo?: string): Promise<LedgerSession[]> =>
  (JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '500', ...(repo ? ['--repo', repo] : [])])) as { sessions: LedgerSession[] }).sessions;

/** `borg list` and `borg check` straight on the disk, as an admin on the server would: no gateway involved. */
async function onDisk(repo: string): Promise<string[]> {
  const path = await env.repoPath(repo);
  const check = await run('borg', ['check', '--lock-wait', '30', path], { env: env.borgEnv('admin') });
  expect(check.code, check.stderr).toBe(0);
  const list = await run('borg', ['list', '--short', path], { env: env.borgEnv('admin') });
  expect(list.code, list.stderr).toBe(0);
  return list.stdout.split('\n').filter(Boolean).sort();
}

function slowBackup(key: string, repo: string, name: string): ChildProcess {
  return spawn('borg', ['create', '--upload-ratelimit', '2048', '--compression', 'none', `${env.url(repo)}::${name}`, big], {
    env: env.borgEnv(key),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const openSessionOf = (repo: string) => waitForSession(() => ledger(repo), (all) => all.find((s) => s.result === 'open'), `an open session on ${repo}`);
const closedSession = (id: number) => waitForSession(() => ledger(), (all) => all.find((s) => s.id === id && s.result !== 'open'), `session ${id} closed`);

const exitOf = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.on('close', (code) => resolve(code)));

beforeAll(async () => {
  env = createBorgkeepEnv('gateway-sessions', 'embedded', { serveArgs: ['--shutdown-grace', '1'] });
  await env.addKey('admin');
  await env.cliOk(['repo', 'create', 'shared']);
  await env.cliOk(['grant', 'admin', 'shared', '--role', 'full']);
  for (let i = 0; i < CLIENTS; i++) {
    await env.cliOk(['repo', 'create', `host-${i}`]);
    await env.addKey(`machine-${i}`);
    await env.cliOk(['grant', 'admin', `host-${i}`, '--role', 'full']);
    await env.cliOk(['grant', `machine-${i}`, `host-${i}`, '--role', 'append']);
    await env.cliOk(['grant', `machine-${i}`, 'shared', '--role', 'append']);
  }
  // In batches below the gateway's limit of 10 sessions at once per key.
  const repos = ['shared', ...Array.from({ length: CLIENTS }, (_, i) => `host-${i}`)];
  for (let i = 0; i < repos.length; i += 7) {
    const inits = await Promise.all(repos.slice(i, i + 7).map((repo) => env.borg('admin', ['init', '-e', 'repokey', env.url(repo)])));
    for (const r of inits) expect(r.code, r.stderr).toBe(0);
  }
  big = join(env.root, 'big');
  mkdirSync(big);
  writeFileSync(join(big, 'random.bin'), randomBytes(24 * 1024 * 1024));
}, 600_000);
afterAll(() => env?.cleanup());

describe('embedded gateway sessions', () => {
  test(`${CLIENTS} clients back up to ${CLIENTS} repositories at once`, async () => {
    const results = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => {
        const src = makeSourceTree(join(env.root, `src-${i}`), i, 4);
        return env.borg(`machine-${i}`, ['create', `${env.url(`host-${i}`)}::backup`, src]);
      }),
    );
    results.forEach((r, i) => expect(r.code, `client ${i}: ${r.stderr}`).toBe(0));
    const sessions = await ledger();
    for (let i = 0; i < CLIENTS; i++) {
      const s = sessions.filter((x) => x.repositoryName === `host-${i}` && x.keyName === `machine-${i}`);
      expect(s.map((x) => x.result)).toEqual(['ok']);
      expect(s[0].transactions.map((t) => t.state)).toEqual(['committed']);
    }
    for (const i of [0, CLIENTS - 1]) expect(await onDisk(`host-${i}`)).toEqual(['backup']);
  });

  test('3 clients on one repository take turns on borg\'s lock', async () => {
    const results = await Promise.all(
      [0, 1, 2].map((i) => env.borg(`machine-${i}`, ['create', '--lock-wait', '120', `${env.url('shared')}::turn-${i}`, makeSourceTree(join(env.root, `turn-${i}`), 100 + i, 3)])),
    );
    results.forEach((r, i) => expect(r.code, `client ${i}: ${r.stderr}`).toBe(0));
    expect(await onDisk('shared')).toEqual(['turn-0', 'turn-1', 'turn-2']);
    expect((await ledger('shared')).filter((s) => s.keyName !== 'admin').map((s) => s.result)).toEqual(['ok', 'ok', 'ok']);
  });

  test('a client killed with SIGKILL mid-backup: aborted session, nothing committed', async () => {
    const before = await onDisk('host-1');
    const client = slowBackup('machine-1', 'host-1', 'killed');
    const session = await openSessionOf('host-1');
    await sleep(2500);
    client.kill('SIGKILL');
    const closed = await closedSession(session.id);
    expect(closed.result).toBe('aborted');
    expect(closed.transactions.every((t) => t.state === 'rolled_back')).toBe(true);
    expect(await onDisk('host-1')).toEqual(before);
  });

  test('the gateway stopped with SIGTERM mid-backup: sessions are ended and rolled back, the gateway exits', async () => {
    const before = await onDisk('host-2');
    const client = slowBackup('machine-2', 'host-2', 'terminated');
    const session = await openSessionOf('host-2');
    await sleep(2000);
    const front = await env.frontEnd();
    const t0 = Date.now();
    expect(await front.stop('SIGTERM')).toBe(0);
    // --shutdown-grace 1: the backup would need ~10 s more, so it was ended, not waited for.
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(await exitOf(client)).not.toBe(0);
    const closed = await closedSession(session.id);
    expect(closed.result).toBe('aborted');
    expect(closed.detail).toMatch(/stopped on the server/);
    expect(front.log()).toMatch(/grace period over: ending running sessions/);
    expect(await onDisk('host-2')).toEqual(before);
    await env.restartFrontEnd();
  });

  test('the gateway killed with SIGKILL mid-backup and restarted: the session is closed as aborted', async () => {
    const before = await onDisk('host-3');
    const client = slowBackup('machine-3', 'host-3', 'killed-gateway');
    const session = await openSessionOf('host-3');
    await sleep(2000);
    await (await env.frontEnd()).stop('SIGKILL');
    expect(await exitOf(client)).not.toBe(0);
    const front = await env.restartFrontEnd();
    expect(front.log()).toMatch(/closed 1 session left open by a process that died, as aborted/);
    const closed = await closedSession(session.id);
    expect(closed.result).toBe('aborted');
    // The orphaned borg serve saw EOF and released its lock; the repository is as before.
    expect(await onDisk('host-3')).toEqual(before);
    // And the restarted gateway serves the same client again.
    const again = await env.borg('machine-3', ['create', `${env.url('host-3')}::after-restart`, makeSourceTree(join(env.root, 'again'), 7, 2)]);
    expect(again.code, again.stderr).toBe(0);
    expect(await onDisk('host-3')).toEqual([...before, 'after-restart'].sort());
    expect((await ledger()).filter((s) => s.result === 'open')).toEqual([]);
  });
});
