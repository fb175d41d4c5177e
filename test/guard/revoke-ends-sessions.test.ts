// Revoking a key, removing a grant, or a grant's expiry passing ends the key's running sessions
// on that repository within about a second, wherever the session runs (sshd's forced command, a
// process of its own; the embedded gateway of `borgkeep serve`) and wherever the revocation comes
// from (the CLI, the HTTP API the console uses): the session is 'aborted' in the ledger with the
// reason, the client is told why on stderr, borg rolls back the unfinished backup (no archive),
// and `borg check` passes. A session of the same key on another repository goes on.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { waitForSession } from '../helpers/ledger-wait.js';
import { startEmbedded, type SshFrontEnd } from '../helpers/ssh-transports.js';

interface LedgerSession {
  id: number;
  keyName: string | null;
  repositoryName: string | null;
  result: string;
  bytesIn: number;
  detail: string | null;
  startedAt: string;
  endedAt: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The session must be over within this long after the revocation was written (checked every 500 ms). */
const ENDS_WITHIN_MS = 2000;
const PASSWORD = 'a console password for tests';

interface Running {
  client: ChildProcess;
  exited: Promise<{ code: number | null; at: number; stderr: string }>;
  session: LedgerSession;
}

interface Installation {
  env: BorgkeepEnv;
  big: string;
  ledger(): Promise<LedgerSession[]>;
  /** A new key with `role` on each repository (a revoked key never comes back, so one per test). */
  key(name: string, repos: readonly string[], role?: 'append' | 'full', extra?: readonly string[]): Promise<void>;
  /** Starts a backup of 24 MiB rate-limited to `kib` KiB/s (12 s at 2048) and waits until its upload runs. */
  backup(key: string, repo: string, archive: string, kib?: number): Promise<Running>;
  /** Starts several backups at once and waits until each one's upload runs. */
  backups(runs: ReadonlyArray<{ key: string; repo: string; archive: string; kib?: number }>): Promise<Running[]>;
  archives(repo: string): Promise<string[]>;
  check(repo: string): Promise<void>;
  /** The HTTP API of a `borgkeep serve` on this data directory, logged in as an operator. */
  api(method: string, path: string): Promise<number>;
}

async function createInstallation(label: string, transport: 'forced-command' | 'embedded'): Promise<Installation & { cleanup(): Promise<void> }> {
  const env = createBorgkeepEnv(label, transport);
  await env.cliOk(['repo', 'create', 'main']);
  await env.cliOk(['repo', 'create', 'other']);
  await env.addKey('admin');
  for (const repo of ['main', 'other']) {
    await env.cliOk(['grant', 'admin', repo, '--role', 'full']);
    const init = await env.borg('admin', ['init', '-e', 'repokey', env.url(repo)]);
    expect(init.code, init.stderr).toBe(0);
  }
  const passwordFile = join(env.root, 'password');
  writeFileSync(passwordFile, `${PASSWORD}\n`);
  await env.cliOk(['user', 'add', 'ops', '--role', 'operator', '--password-file', passwordFile]);
  const big = join(env.root, 'big');
  mkdirSync(big);
  writeFileSync(join(big, 'random.bin'), randomBytes(24 * 1024 * 1024));

  // The API: the embedded installation's own `borgkeep serve`; for the forced command, a
  // `borgkeep serve` of its own on the same data directory (as in production: the console's
  // process is not the one that runs the session).
  let served: SshFrontEnd | null = null;
  let login: { url: string; cookie: string; csrf: string } | null = null;
  const apiLogin = async () => {
    if (login) return login;
    const front = transport === 'embedded' ? await env.frontEnd() : (served = await startEmbedded(env.dataDir));
    let url: string | undefined;
    for (let i = 0; i < 100 && !url; i++) {
      url = /HTTP API listening on (\S+)\/api\/v1/.exec(front.log())?.[1];
      if (!url) await sleep(100);
    }
    if (!url) throw new Error(`no HTTP API in the log of borgkeep serve:\n${front.log()}`);
    const r = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ops', password: PASSWORD }) });
    expect(r.status).toBe(200);
    const cookie = /^bk_session=[^;]*/.exec(r.headers.get('set-cookie') ?? '')?.[0] ?? '';
    login = { url, cookie, csrf: ((await r.json()) as { csrfToken: string }).csrfToken };
    return login;
  };

  const ledger = async (): Promise<LedgerSession[]> =>
    (JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '50'])) as { sessions: LedgerSession[] }).sessions;

  const inst: Installation & { cleanup(): Promise<void> } = {
    env,
    big,
    ledger,
    async key(name, repos, role = 'append', extra = []) {
      await env.addKey(name);
      for (const repo of repos) await env.cliOk(['grant', name, repo, '--role', role, ...extra]);
    },
    async backup(key, repo, archive, kib = 2048) {
      return (await inst.backups([{ key, repo, archive, kib }]))[0]!;
    },
    async backups(runs) {
      if (transport === 'embedded') await env.frontEnd();
      const started = runs.map(({ key, repo, archive, kib = 2048 }) => {
        const client = spawn('borg', ['create', '--upload-ratelimit', String(kib), '--compression', 'none', `${env.url(repo)}::${archive}`, big], {
          env: env.borgEnv(key),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        client.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<{ code: number | null; at: number; stderr: string }>((resolve) =>
          client.on('exit', (code) => setTimeout(() => resolve({ code, at: Date.now(), stderr }), 50)),
        );
        return { client, exited };
      });
      // Well into the upload: more than a MiB through the guard (the ledger's progress).
      return Promise.all(
        runs.map(async ({ key, repo }, i) => {
          const { client } = started[i]!;
          let stderr = '';
          client.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
          const session = await waitForSession(
            ledger,
            (all) => {
              const found = all.find((x) => x.keyName === key && x.repositoryName === repo && x.result === 'open' && x.bytesIn > 1024 * 1024);
              // A backup that ended before its upload was seen under way never will be: say so at once.
              if (!found && client.exitCode !== null) throw new Error(`${key}'s backup to ${repo} ended (exit ${client.exitCode}) before it was seen under way:\n${stderr}`);
              return found;
            },
            `${key}'s backup to ${repo} under way`,
          );
          return { ...started[i]!, session };
        }),
      );
    },
    async archives(repo) {
      const r = await env.borg('admin', ['list', '--short', env.url(repo)]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.split('\n').filter(Boolean);
    },
    async check(repo) {
      const r = await env.borg('admin', ['check', env.url(repo)]);
      expect(r.code, r.stderr).toBe(0);
    },
    async api(method, path) {
      const l = await apiLogin();
      const r = await fetch(`${l.url}/api/v1${path}`, { method, headers: { cookie: l.cookie, 'x-csrf-token': l.csrf } });
      return r.status;
    },
    async cleanup() {
      await served?.stop();
      await env.cleanup();
    },
  };
  return inst;
}

/** The session ended promptly as aborted with `why`, the client was told, and nothing was kept. */
async function expectEnded(inst: Installation, run: Running, revokedAt: number, repo: string, archive: string, why: RegExp): Promise<LedgerSession> {
  const exit = await Promise.race([run.exited, sleep(15_000).then(() => null)]);
  expect(exit, 'the backup was still running 15 s after the revocation').not.toBeNull();
  expect(exit!.at - revokedAt, `the client ran on ${exit!.at - revokedAt} ms after the revocation`).toBeLessThan(ENDS_WITHIN_MS);
  expect(exit!.code, `the backup ended with exit code 0 (it finished before the revocation?):\n${exit!.stderr}`).not.toBe(0);
  expect(exit!.stderr).toMatch(/borgkeep: session ended: |borgkeep ended this session: /);
  expect(exit!.stderr).toMatch(why);
  const done = await waitForSession(inst.ledger, (all) => all.find((s) => s.id === run.session.id && s.result !== 'open'), `session ${run.session.id} closed`);
  expect(done.result).toBe('aborted');
  expect(done.detail).toMatch(why);
  expect(done.detail).toContain('borg rolled back what it had not committed');
  expect(await inst.archives(repo)).not.toContain(archive);
  await inst.check(repo);
  return done;
}

/** Runs `fn` (a revocation) and returns when its change was written: when the command returned. */
async function revoke(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  return Date.now();
}

describe.each(['forced-command', 'embedded'] as const)('sessions through the %s transport', (transport) => {
  let inst: Awaited<ReturnType<typeof createInstallation>>;
  beforeAll(async () => {
    inst = await createInstallation(`revoke-${transport}`, transport);
  });
  afterAll(() => inst?.cleanup());

  test('borgkeep key revoke (CLI) ends the key\'s running backup within a second or two; nothing of it is kept', async () => {
    await inst.key('cli-revoked', ['main']);
    const run = await inst.backup('cli-revoked', 'main', 'revoked-by-cli');
    const at = await revoke(() => inst.env.cliOk(['key', 'revoke', 'cli-revoked']));
    const done = await expectEnded(inst, run, at, 'main', 'revoked-by-cli', /the key 'cli-revoked' was revoked at \d{4}-\d\d-\d\dT/);
    // The ledger's own times: ended within a second or two of the revocation it names.
    const revokedAt = new Date(/revoked at (\S+?);/.exec(done.detail ?? '')![1]!).getTime();
    expect(new Date(done.endedAt!).getTime() - revokedAt).toBeLessThan(ENDS_WITHIN_MS);
  });

  test('revoking the key through the HTTP API (the console) ends its running backup', async () => {
    await inst.key('api-revoked', ['main']);
    const run = await inst.backup('api-revoked', 'main', 'revoked-by-api');
    const at = await revoke(async () => expect(await inst.api('DELETE', '/keys/api-revoked')).toBe(200));
    await expectEnded(inst, run, at, 'main', 'revoked-by-api', /the key 'api-revoked' was revoked at /);
  });

  test('removing a grant (CLI) ends the backup on that repository only; the same key\'s backup elsewhere completes', async () => {
    await inst.key('two-repos', ['main', 'other']);
    // Both at 1.5 MiB/s (16 s each), started together: neither is near its end at the removal.
    // The one that must complete is checked to be still running then (else it would prove
    // nothing); the test waits for its end, so a slower rate only makes the test longer.
    const [here, there] = await inst.backups([
      { key: 'two-repos', repo: 'main', archive: 'grant-removed', kib: 1536 },
      { key: 'two-repos', repo: 'other', archive: 'still-granted', kib: 1536 },
    ]);
    const at = await revoke(() => inst.env.cliOk(['revoke', 'two-repos', 'main']));
    expect(there.client.exitCode, 'the backup to other had ended before the grant on main was removed').toBeNull();
    await expectEnded(inst, here, at, 'main', 'grant-removed', /the grant of key 'two-repos' on repository 'main' was removed/);
    const other = await there.exited;
    expect(other.code, other.stderr).toBe(0);
    expect(await inst.archives('other')).toContain('still-granted');
  });

  test('removing a grant through the HTTP API ends the backup on that repository', async () => {
    await inst.key('api-grant', ['main']);
    const run = await inst.backup('api-grant', 'main', 'grant-removed-by-api');
    const at = await revoke(async () => expect(await inst.api('DELETE', '/grants/api-grant/main')).toBe(204));
    await expectEnded(inst, run, at, 'main', 'grant-removed-by-api', /the grant of key 'api-grant' on repository 'main' was removed/);
  });

  test('a grant whose expiry passes mid-backup ends the backup', async () => {
    // Long enough for the backup to get under way on a loaded machine: CI once took more than
    // 10 s, the grant expired first, and the wait for an open session ran into the test's timeout.
    const expires = new Date(Date.now() + 20_000);
    await inst.key('expiring', ['main'], 'append', ['--expires', expires.toISOString()]);
    const run = await inst.backup('expiring', 'main', 'expired-mid-backup', 768); // 32 s
    expect(Date.now(), 'the backup got under way only after the grant expired').toBeLessThan(expires.getTime());
    await sleep(Math.max(0, expires.getTime() - Date.now()));
    await expectEnded(inst, run, expires.getTime(), 'main', 'expired-mid-backup', /the grant of key 'expiring' on repository 'main' expired at /);
  });
});
