// A pull backup end to end, with every part real: borgkeep's data directory and CLI, a client host
// (a real OpenSSH sshd in a network namespace, from which the server's loopback is unreachable,
// with the real borg), the keyless proxy writing into a real repokey repository whose key the
// vault holds. A manual job (`pull run --wait`, run in the CLI's own process) and a scheduled one
// (`borgkeep serve` running the schedule) each leave an archive that `borg extract` with the
// repository's real key restores byte for byte; the client's private job directory is gone
// afterwards and the client never held the repository's key.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, test } from 'vitest';

import type { BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { createPullInstallation, stateAlerts as pullStateAlerts, type JobRow, type PullInstallation } from '../helpers/pull-installation.js';
import type { PullClientHost } from '../helpers/pull-client-host.js';
import type { SshFrontEnd } from '../helpers/ssh-transports.js';

/** This file's client host number (runner.test.ts uses 11). */
const NET = 21;

let pull: PullInstallation;
let env: BorgkeepEnv;
let client: PullClientHost;
let work: string;
let source: string;

const jobs = (host: string) => pull.jobs(host);

async function borgOk(args: readonly string[], cwd?: string): Promise<string> {
  const r = await env.borg('admin', args, cwd ? { cwd } : {});
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

/** Extracts `archive` with the repository's real key and compares every file with the client's. */
async function expectRestored(archive: string): Promise<void> {
  const to = mkdtempSync(join(work, 'extract-'));
  await borgOk(['extract', `${env.url('main')}::${archive}`], to);
  const restored = join(to, source.slice(1));
  const names = readdirSync(source).sort();
  expect(readdirSync(restored).sort()).toEqual(names);
  for (const name of names) expect(readFileSync(join(restored, name)).equals(readFileSync(join(source, name))), name).toBe(true);
  rmSync(to, { recursive: true, force: true });
}

/** Nothing of any job is left in the client user's temporary directory. */
const jobDirectoriesLeft = (): string[] => readdirSync(client.tmpDir);

beforeAll(async () => {
  // The line `borgkeep pull-key` prints is what the client's admin puts into authorized_keys.
  pull = await createPullInstallation('pull-job', NET);
  ({ env, client, work } = pull);
  // The client's files: readable by its pull user, in a directory of the client host.
  source = join(client.dir, 'data');
  mkdirSync(source, { mode: 0o755 });
  for (let i = 0; i < 4; i++) writeFileSync(join(source, `file-${i}.bin`), randomBytes(256 * 1024 + i * 1000), { mode: 0o644 });
  writeFileSync(join(source, 'notes.txt'), 'what the client keeps\n', { mode: 0o644 });
}, 120_000);

afterAll(() => pull?.cleanup());

test('a manual job (pull run --wait) writes an archive with the repository key that borg extract restores byte for byte', async () => {
  const added = await env.cliOk([
    'host', 'add', 'web1', '--address', `${client.address}:${client.port}`, '--user', client.user, '--repo', 'main',
    '--paths', source, '--archive', '{host}-manual-{now}', '--accept-host-key', client.hostKeyFingerprint,
  ]);
  // The vault holds the key of 'main': no warning that jobs would fail.
  expect(added).not.toContain('no key in the vault');
  const run = await env.cli(['pull', 'run', 'web1', '--wait'], { timeoutMs: 120_000 });
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
  const [job] = await jobs('web1');
  expect(job).toMatchObject({ state: 'done', trigger: 'manual', reason: null });
  expect(job!.archive).toMatch(/^web1-manual-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
  expect(job!.files).toBe(5);
  // The real manifest holds the job's archive, written with the repository's key.
  const archives = (await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean);
  expect(archives).toEqual([job!.archive]);
  await expectRestored(job!.archive!);
  await borgOk(['check', env.url('main')]);
  expect(jobDirectoriesLeft()).toEqual([]);
  // The ledger has the server's own session of kind 'pull' for it.
  const ledger = JSON.parse(await env.cliOk(['ledger', '--json', '--kind', 'pull'])) as { sessions: Array<{ result: string }> };
  expect(ledger.sessions.map((s) => s.result)).toEqual(['ok']);
}, 180_000);

test("a scheduled job runs from borgkeep serve's schedule and leaves a second archive; the client's job directory is gone", async () => {
  // borgkeep serve runs from here to the end of the file (the env stops it).
  const front: SshFrontEnd = await env.frontEnd();
  {
    await env.cliOk([
      'host', 'add', 'web2', '--address', `${client.address}:${client.port}`, '--user', client.user, '--repo', 'main',
      '--paths', source, '--archive', '{host}-{now}', '--accept-host-key', client.hostKeyFingerprint, '--schedule', '*/5 * * * * *',
    ]);
    let done: JobRow | undefined;
    for (let i = 0; i < 120 && !done; i++) {
      done = (await jobs('web2')).find((j) => j.state === 'done' || j.state === 'failed');
      if (!done) await new Promise((r) => setTimeout(r, 500));
    }
    expect(done, `no scheduled job ended:\n${front.log()}`).toBeDefined();
    expect(done, done?.reason ?? '').toMatchObject({ state: 'done', trigger: 'schedule' });
    // Stop the schedule before it queues more.
    await env.cliOk(['host', 'remove', 'web2']);
    await expectRestored(done!.archive!);
    expect(jobDirectoriesLeft()).toEqual([]);
  }
}, 180_000);

const stateAlerts = () => pullStateAlerts(env.dataDir);

test("a client whose host key is not the pinned one is refused before anything runs there: the job fails, host show puts the offered key beside the pinned one, and a critical alert opens", async () => {
  const pinned = `SHA256:${'A'.repeat(43)}`;
  await env.cliOk(['host', 'add', 'moved', '--address', `${client.address}:${client.port}`, '--user', client.user, '--repo', 'main', '--paths', source, '--accept-host-key', pinned]);
  const before = (await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean);
  const run = await env.cli(['pull', 'run', 'moved', '--wait'], { timeoutMs: 60_000 });
  expect(run.code).toBe(1);
  expect(run.stderr).toContain(`it offered ${client.hostKeyFingerprint}, but ${pinned} is pinned`);
  const [job] = await jobs('moved');
  expect(job).toMatchObject({ state: 'failed' });
  expect(await env.cliOk(['host', 'show', 'moved'])).toContain(client.hostKeyFingerprint);
  const alert = (await stateAlerts()).find((a) => a.rule === 'pull-failed');
  expect(alert).toMatchObject({ severity: 'critical', summary: expect.stringContaining("the pull backup of 'moved' was refused: the host key of moved has changed") });
  // Nothing ran on the client and nothing reached the repository.
  expect(jobDirectoriesLeft()).toEqual([]);
  expect((await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean)).toEqual(before);
  await env.cliOk(['host', 'remove', 'moved']);
}, 120_000);
