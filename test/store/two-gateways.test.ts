// Two `borgkeep serve` gateways on one PostgreSQL database (issue 19, several gateways), with the
// real borg client and the real ssh client on loopback: a client reaches either and gets the same
// keys and grants; the limits hold across them (a key's sessions at once, backups per day, failed
// logins per address); the console of one shows the live sessions of the other.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { firstAdminPassword } from '../helpers/first-admin.js';
import { waitForSession } from '../helpers/ledger-wait.js';
import { sseReader } from '../helpers/sse-reader.js';
import { startSlowBackup } from '../helpers/slow-backup.js';
import { startEmbedded, writeSshRsh, type SshFrontEnd } from '../helpers/ssh-transports.js';
import { createTestPostgresDatabase } from '../support/temp-store.js';

const LIMITS = ['--max-sessions-per-key', '1', '--auth-failures-per-minute', '3'];

let db: Awaited<ReturnType<typeof createTestPostgresDatabase>>;
let env: BorgkeepEnv;
let a: SshFrontEnd;
let b: SshFrontEnd;
/** BORG_RSH to gateway B (the env's own goes to A). */
let rshB: string;

beforeAll(async () => {
  db = await createTestPostgresDatabase();
  env = createBorgkeepEnv('bk-2gw', 'embedded', { serveArgs: ['--database', db.url, ...LIMITS] });
  a = await env.frontEnd();
  // The second gateway: the same data directory (repositories, host keys) and database.
  b = await startEmbedded(env.dataDir, ['--database', db.url, ...LIMITS]);
  const dirB = join(env.root, 'gateway-b');
  mkdirSync(dirB);
  writeFileSync(join(dirB, 'port'), `${b.port}\n`);
  rshB = writeSshRsh(dirB, join(env.root, 'ssh-keys'), join(dirB, 'port'), join(env.root, 'known_hosts'));
  await env.repoWithKeys('photos', { laptop: 'full' });
  await env.addKey('desk');
  await env.cliOk(['grant', 'desk', 'photos', '--role', 'append', '--writes-per-day', '1']);
}, 120_000);
afterAll(async () => {
  await b?.stop();
  await env?.cleanup();
  await db?.drop();
});

const viaB = (key: string, args: string[], address?: string) => run('borg', args, { env: { ...env.borgEnv(key, address), BORG_RSH: rshB } });
const ledger = async () => (JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'photos', '--limit', '500'])) as { sessions: Array<{ id: number; result: string; keyName: string; bytesIn: number }> }).sessions;

describe('two gateways on one PostgreSQL database', () => {
  it('serve the same keys, grants and repositories: a backup through A, the next through B, the list through either', async () => {
    const init = await env.borg('laptop', ['init', '-e', 'repokey', env.url('photos')]);
    expect(init.code, init.stderr).toBe(0);
    const first = await env.borg('laptop', ['create', `${env.url('photos')}::via-a`, makeSourceTree(join(env.root, 'src-a'), 1)]);
    expect(first.code, first.stderr).toBe(0);
    const second = await viaB('laptop', ['create', `${env.url('photos')}::via-b`, makeSourceTree(join(env.root, 'src-b'), 2)]);
    expect(second.code, second.stderr).toBe(0);
    for (const list of [await env.borg('laptop', ['list', '--short', env.url('photos')]), await viaB('laptop', ['list', '--short', env.url('photos')])]) {
      expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual(['via-a', 'via-b']);
    }
  });

  it("hold a key's sessions at once across them, and B's console shows A's running session live", async () => {
    // B's console, logged in as the admin A created.
    const httpB = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(b.log())?.[1];
    const login = await fetch(`${httpB}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: firstAdminPassword(env.dataDir) }) });
    expect(login.status).toBe(200);
    const events = await fetch(`${httpB}/api/v1/events`, { headers: { cookie: (login.headers.get('set-cookie') ?? '').split(';')[0]! } });
    const reader = sseReader(events);

    // The key may run one session at once: the earlier tests' sessions must have ended in the ledger first.
    // 24 MiB at 1 MiB/s: the backup is killed once the test is done with it, and each read of the
    // ledger is a CLI run that a loaded machine makes slow (a full suite saw a 6 MiB backup end
    // before any read found it running).
    await expect.poll(async () => (await ledger()).filter((s) => s.result === 'open').length, { timeout: 10_000 }).toBe(0);
    const { child: slow, done: slowDone, stderr: slowStderr } = startSlowBackup({ source: join(env.root, 'slow'), mib: 24, target: `${env.url('photos')}::slow`, env: env.borgEnv('laptop') });
    try {
      const running = await waitForSession(ledger, (all) => {
        if (slow.exitCode !== null) throw new Error(`the slow backup ended before its session was seen: ${slowStderr()}`);
        return all.find((s) => s.result === 'open' && s.bytesIn > 0);
      }, 'the slow backup through A');
      // The same key through B: one session at once for the key, over both gateways. The
      // backup is paused meanwhile, so it is surely still running however loaded the machine is
      // (a full suite once saw the 6-second backup end before the second session started).
      slow.kill('SIGSTOP');
      let second;
      try {
        second = await viaB('laptop', ['list', env.url('photos')]);
      } finally {
        slow.kill('SIGCONT');
      }
      expect(second.code).not.toBe(0);
      expect(second.stderr).toContain('borgkeep refused open: the key may run at most 1 session at once; try again later');
      // B's live view: A's session, then its bytes growing.
      await reader.next((m) => m.event === 'session.progress' && m.data.session.id === running.id, "A's session in B's live events", 15_000);
    } finally {
      // SIGTERM, not SIGINT: borg finishes the file it is reading before it stops on SIGINT.
      slow.kill('SIGTERM');
      await slowDone;
      await reader.cancel();
    }
  });

  it('hold the backups per day of a grant across them', async () => {
    const first = await viaB('desk', ['create', `${env.url('photos')}::desk-1`, makeSourceTree(join(env.root, 'desk-1'), 11)]);
    expect(first.code, first.stderr).toBe(0);
    const second = await env.borg('desk', ['create', `${env.url('photos')}::desk-2`, makeSourceTree(join(env.root, 'desk-2'), 12)]);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/1 backup/);
  });

  it('hold the failed logins of an address across them: two failures on A and one on B close both to it', async () => {
    const stranger = join(env.root, 'stranger');
    expect((await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger])).code).toBe(0);
    const attempt = (port: number) =>
      run('ssh', ['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-b', '127.0.0.9', '-i', stranger, '-p', String(port), 'borg@127.0.0.1', 'borg', 'serve']);
    for (const port of [a.port, a.port, b.port]) expect((await attempt(port)).stderr).toMatch(/Permission denied/);
    // Refused before the handshake now, on both, even with a registered key.
    await expect.poll(async () => (await env.borg('laptop', ['list', env.url('photos')], { address: '127.0.0.9' })).stderr, { timeout: 10_000 }).toMatch(/Connection (closed|reset)|kex_exchange_identification/);
    const throughB = await viaB('laptop', ['list', env.url('photos')], '127.0.0.9');
    expect(throughB.code).not.toBe(0);
    expect(throughB.stderr).toMatch(/Connection (closed|reset)|kex_exchange_identification/);
    // Other addresses are not affected.
    expect((await viaB('laptop', ['list', '--short', env.url('photos')])).code).toBe(0);
  });

  it("a gateway on another machine killed with a backup open: the gateway running the jobs closes its session as aborted once its lease runs out, and the key may back up again", async () => {
    // A third gateway, on a machine of its own (asHost): nobody here can ask whether its process
    // lives, as nobody could for a gateway on another host; it never holds the jobs lease (A or B
    // has held it since the start).
    const c = await startEmbedded(env.dataDir, ['--database', db.url, ...LIMITS], { hostname: 'gateway-c.example' });
    const dirC = join(env.root, 'gateway-c');
    mkdirSync(dirC);
    writeFileSync(join(dirC, 'port'), `${c.port}\n`);
    const rshC = writeSshRsh(dirC, join(env.root, 'ssh-keys'), join(dirC, 'port'), join(env.root, 'known_hosts'));
    const { child: orphan, done: orphanDone } = startSlowBackup({ source: join(env.root, 'orphan'), mib: 8, target: `${env.url('photos')}::orphan`, env: { ...env.borgEnv('laptop'), BORG_RSH: rshC } });
    try {
      const running = await waitForSession(ledger, (all) => {
        if (orphan.exitCode !== null) throw new Error('the backup ended before its session was seen');
        return all.find((s) => s.result === 'open' && s.bytesIn > 0);
      }, 'the backup through gateway C');
      await c.stop('SIGKILL');
      // At once the session is still open (a dead gateway cannot be told from a slow one yet),
      // and it counts: the key's one session.
      const refused = await env.borg('laptop', ['list', env.url('photos')]);
      expect(refused.stderr).toContain('borgkeep refused open: the key may run at most 1 session at once');
      await expect.poll(async () => (await ledger()).find((s) => s.id === running.id)?.result, { timeout: 60_000, interval: 1000 }).toBe('aborted');
      const list = await env.borg('laptop', ['list', '--short', env.url('photos')]);
      expect(list.code, list.stderr).toBe(0);
      expect(`${a.log()}${b.log()}`).toMatch(/closed 1 session\(s\) left open by gateway gateway-c\.example \(pid \d+\), which stopped answering, as aborted/);
    } finally {
      orphan.kill('SIGKILL');
      await orphanDone;
      await c.stop('SIGKILL');
    }
  }, 150_000);
});
