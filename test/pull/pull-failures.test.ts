// Failures of a pull job (issue 16, point 5), with every part real: borgkeep's CLI and data
// directory, a client host in a network namespace with a real sshd and borg, the keyless proxy
// writing into a real repokey repository. Each failure must end the job `failed` with one clear
// sentence and leave the repository consistent: `borg check` with the real key passes, no partial
// archive and no checkpoint of the job is listed, and the archives are those from before.
// A client without borg gets the standalone borg of serve's config file (pullBorgBinaries), and a
// missing one stops serve at start.
//
// Must never leave the client's job directory behind, and never pass on a repository that only
// looks right from borgkeep's side: the checks use the real borg with the repository's real key.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { machine, type } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, test } from 'vitest';

import type { BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { createPullInstallation, type JobRow, type PullInstallation } from '../helpers/pull-installation.js';
import type { PullClientHost } from '../helpers/pull-client-host.js';

/** This file's client host number (runner.test.ts uses 11, pull-job.test.ts 21). */
const NET = 31;

let pull: PullInstallation;
let env: BorgkeepEnv;
let client: PullClientHost;
let keyLine: string;
let small: string;
let large: string;
const jobs = (host: string) => pull.jobs(host);
const borgOk = (args: readonly string[]) => pull.borgOk(args);
const archives = () => pull.archives();
const expectConsistent = (expected: readonly string[]) => pull.expectConsistent(expected);
const addHost = (name: string, paths: string, port?: number, address?: string) => pull.addHost(name, paths, port, address);

/** The client's platform as pullBorgBinaries names it (the client host is a namespace of this machine). */
const platform = `${type()}-${machine()}`.toLowerCase();
/** The stand-in for borg-linux64 in serve's config file: bytes a client without borg gets and runs (the system's borg behind it). */
let standaloneBorg: string;

beforeAll(async () => {
  pull = await createPullInstallation('pull-failures', NET, (e) => {
    // serve's config file on this data directory (DATA/borgkeep.json), there before serve starts.
    standaloneBorg = join(e.root, 'borg-standalone');
    mkdirSync(e.dataDir, { recursive: true });
    writeFileSync(standaloneBorg, `#!/bin/sh\nexec ${execFileSync('sh', ['-c', 'command -v borg']).toString().trim()} "$@"\n`, { mode: 0o600 });
    writeFileSync(join(e.dataDir, 'borgkeep.json'), JSON.stringify({ pullBorgBinaries: { [platform]: standaloneBorg } }));
  });
  ({ env, client, keyLine } = pull);
  small = join(client.dir, 'small');
  mkdirSync(small, { mode: 0o755 });
  writeFileSync(join(small, 'a.txt'), 'a small file\n', { mode: 0o644 });
  // Enough that borg is still sending when the test kills it.
  large = join(client.dir, 'large');
  mkdirSync(large, { mode: 0o755 });
  for (let i = 0; i < 12; i++) writeFileSync(join(large, `part-${i}.bin`), randomBytes(8 * 1024 * 1024), { mode: 0o644 });
}, 120_000);

afterAll(() => pull?.cleanup());

test('a client where nothing listens: pull run --wait fails with one sentence, pull list says why, the repository is untouched', async () => {
  // The client's address, a port no sshd listens on: the namespace answers with a reset.
  await addHost('closed', small, 2999);
  const run = await env.cli(['pull', 'run', 'closed', '--wait'], { timeoutMs: 60_000 });
  expect(run.code).toBe(1);
  const expected = `could not connect to closed (${client.address}:2999): the connection was refused (is sshd running there?)`;
  expect(run.stderr).toContain(expected);
  const [job] = await jobs('closed');
  expect(job).toMatchObject({ state: 'failed', reason: expected });
  await expectConsistent([]);
  await env.cliOk(['host', 'remove', 'closed']);
}, 60_000);

test("a client that refuses the pull key (its line gone from authorized_keys): the job fails saying so, the repository is untouched", async () => {
  await addHost('nokey', small);
  client.setAuthorizedKeys([]);
  try {
    const run = await env.cli(['pull', 'run', 'nokey', '--wait'], { timeoutMs: 60_000 });
    expect(run.code).toBe(1);
    const expected = `nokey refused borgkeep's pull key for user ${client.user} (is the line of borgkeep pull-key in that user's authorized_keys?)`;
    expect(run.stderr).toContain(expected);
    const [job] = await jobs('nokey');
    expect(job).toMatchObject({ state: 'failed', reason: expected });
  } finally {
    client.setAuthorizedKeys([keyLine]);
  }
  await expectConsistent([]);
  await env.cliOk(['host', 'remove', 'nokey']);
}, 60_000);

test("the client's borg killed mid-backup: the job fails, no partial archive or checkpoint is left, borg check passes, the job directory is gone", async () => {
  await addHost('killed', large);
  const running = env.cli(['pull', 'run', 'killed', '--wait'], { timeoutMs: 120_000 });
  let sending: JobRow | undefined;
  for (let i = 0; i < 200 && !sending; i++) {
    sending = (await jobs('killed')).find((j) => j.state === 'running' && j.bytes > 0);
    if (!sending) await new Promise((r) => setTimeout(r, 100));
  }
  expect(sending, 'the job never showed bytes sent').toBeDefined();
  // Only this client host's borg: a network namespace does not separate process ids, and a plain
  // pkill would kill every `borg create` on the machine (other test files', benchmarks').
  const kill = await client.exec('sh', [
    '-c',
    `killed=1; for p in $(ip netns pids ${client.netns}); do tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q 'borg[ ]create ' && kill -KILL $p && killed=0; done; exit $killed`,
  ]);
  expect(kill.code, `no borg create of this client host was running: ${kill.stderr}`).toBe(0);
  const run = await running;
  expect(run.code, run.stdout).toBe(1);
  const [job] = await jobs('killed');
  expect(job!.state).toBe('failed');
  expect(job!.reason).toMatch(/^borg create failed on killed/);
  await expectConsistent([]);
  // The repository takes the next job: a small one commits.
  await env.cliOk(['host', 'remove', 'killed']);
  await addHost('after', small);
  const after = await env.cli(['pull', 'run', 'after', '--wait'], { timeoutMs: 60_000 });
  expect(after.code, `${after.stdout}\n${after.stderr}`).toBe(0);
  const [done] = await jobs('after');
  await expectConsistent([done!.archive!]);
  await env.cliOk(['host', 'remove', 'after']);
}, 120_000);

test("a client without borg gets the standalone borg of serve's config file for its platform: the job uploads it, the archive restores, nothing is left on the client", async () => {
  // (Without one configured, the job fails naming the platform and the key: test/pull/runner.test.ts.)
  // The serve running this installation (its embedded gateway) read the config file at start, and
  // runs the job pull run queues.
  await addHost('bare', small, client.portWithoutBorg);
  const run = await env.cli(['pull', 'run', 'bare', '--wait'], { timeoutMs: 60_000 });
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
  const [job] = await jobs('bare');
  expect(job).toMatchObject({ state: 'done', reason: null, files: 1 });
  expect(await env.cliOk(['pull', 'log', String(job!.id)])).toContain(`uploaded the standalone borg for ${platform} (0.0 MiB)`);
  expect(await borgOk(['extract', '--stdout', `${env.url('main')}::${job!.archive}`, join(small, 'a.txt').slice(1)])).toBe('a small file\n');
  expect(readdirSync(client.tmpDir)).toEqual([]);
  await env.cliOk(['host', 'remove', 'bare']);
}, 120_000);

test('serve refuses to start, in one sentence, when a standalone borg of its config file is missing', async () => {
  const config = join(pull.work, 'missing-borg.json');
  const missing = join(pull.work, 'no-such-borg');
  writeFileSync(config, JSON.stringify({ pullBorgBinaries: { 'linux-x86_64': missing } }));
  const serve = await env.cli(['serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--config', config], { timeoutMs: 30_000 });
  expect(serve.code).not.toBe(0);
  expect(serve.stderr.trim()).toBe(`borgkeep: config file, pullBorgBinaries.linux-x86_64: cannot read ${missing}: there is no such file`);
}, 60_000);
