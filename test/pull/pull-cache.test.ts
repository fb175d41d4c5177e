// Deduplication without a client cache (issue 17, point 1), every part real: borgkeep's CLI and
// data directory, a client host (a real sshd in a network namespace, the real borg 1.2), the
// keyless proxy into a real repokey repository. Before each job the server builds a borg cache in
// borg's own format (the repository's chunks, in sync with the job's synthetic manifest) and
// writes it into the job's private BORG_BASE_DIR: the stock client takes it without
// resynchronising, so a second pull of unchanged data sends almost nothing; a host set to get no
// chunk index uploads everything every time. The bytes are those the proxy read from the client.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, test } from 'vitest';

import type { BorgkeepEnv } from '../helpers/borgkeep-env.js';
import type { PullClientHost } from '../helpers/pull-client-host.js';
import { createPullInstallation, type PullInstallation } from '../helpers/pull-installation.js';

/** This file's client host number (others: 11, 111, 21, 31, 32, 33, 41; bench 201). */
const NET = 51;
const MiB = 1024 * 1024;

let pull: PullInstallation;
let env: BorgkeepEnv;
let client: PullClientHost;
let work: string;
let source: string;

interface JobRun {
  archive: string;
  received: number;
  log: string[];
}

/** Runs one job of `host` now and waits for it: its archive, the bytes the client sent, its log. */
async function runJob(host: string): Promise<JobRun> {
  const run = await env.cli(['pull', 'run', host, '--wait'], { timeoutMs: 120_000 });
  const [job] = await pull.jobs(host);
  const log = (JSON.parse(await env.cliOk(['pull', 'log', String(job!.id), '--json'])) as { lines: Array<{ line: string }> }).lines.map((l) => l.line);
  expect(run.code, `${run.stdout}\n${run.stderr}\n${log.join('\n')}`).toBe(0);
  expect(job).toMatchObject({ state: 'done', reason: null });
  const sent = log.map((l) => /^the client sent (\d+) bytes to the job$/.exec(l)).find(Boolean);
  expect(sent, log.join('\n')).toBeTruthy();
  return { archive: job!.archive!, received: Number(sent![1]), log };
}

/** Extracts `archive` with the repository's real key and compares every file with the client's. */
async function expectRestored(archive: string): Promise<void> {
  const to = mkdtempSync(join(work, 'extract-'));
  const r = await env.borg('admin', ['extract', `${env.url('main')}::${archive}`], { cwd: to });
  expect(r.code, r.stderr).toBe(0);
  const restored = join(to, source.slice(1));
  const names = readdirSync(source).sort();
  expect(readdirSync(restored).sort()).toEqual(names);
  for (const name of names) expect(readFileSync(join(restored, name)).equals(readFileSync(join(source, name))), name).toBe(true);
  rmSync(to, { recursive: true, force: true });
}

/** Anything borg says when it rebuilds its cache instead of taking the one it was given. */
const RESYNC = /synchroniz|syncing chunks cache|cache rebuild|discarding incompatible cache|integrity data not available|previously located|newer than repository/i;

beforeAll(async () => {
  pull = await createPullInstallation('pull-cache', NET);
  ({ env, client, work } = pull);
  source = join(client.dir, 'data');
  mkdirSync(source, { mode: 0o755 });
  // 24 MiB of incompressible data in files of several borg chunks each, and a few small ones.
  for (let i = 0; i < 6; i++) writeFileSync(join(source, `big-${i}.bin`), randomBytes(4 * MiB - i * 1000), { mode: 0o644 });
  for (let i = 0; i < 5; i++) writeFileSync(join(source, `small-${i}.txt`), `small file ${i}\n`.repeat(100 + i), { mode: 0o644 });
}, 120_000);

afterAll(() => pull?.cleanup());

test('a second pull of unchanged data sends under 2 % of the first: the stock client takes the server-built cache without resynchronising; the archive restores byte for byte', async () => {
  await pull.addHost('web1', source);
  const first = await runJob('web1');
  expect(first.received).toBeGreaterThan(23 * MiB);
  const second = await runJob('web1');
  expect(second.log.some((l) => /^gave the client a chunk index of \d+ chunks/.test(l)), second.log.join('\n')).toBe(true);
  expect(second.log.filter((l) => RESYNC.test(l))).toEqual([]);
  expect(second.received, `first ${first.received}, second ${second.received}`).toBeLessThan(first.received * 0.02);
  await expectRestored(second.archive);
  await pull.expectConsistent([first.archive, second.archive]);
}, 180_000);

test('a host added with --no-chunk-index gets no chunk index: its second pull of the same data uploads everything again, and its archive restores byte for byte', async () => {
  await env.cliOk([
    'host', 'add', 'web2', '--address', `${client.address}:${client.port}`, '--user', client.user, '--repo', 'main',
    '--paths', source, '--archive', '{host}-{now}', '--accept-host-key', client.hostKeyFingerprint, '--no-chunk-index',
  ]);
  expect(JSON.parse(await env.cliOk(['host', 'show', 'web2', '--json']))).toMatchObject({ sendChunkIndex: false });
  expect(await env.cliOk(['host', 'show', 'web2'])).toContain('chunk index: not given to the client');
  const before = await pull.archives();
  const first = await runJob('web2');
  const second = await runJob('web2');
  for (const run of [first, second]) {
    expect(run.log.filter((l) => /chunk index/.test(l))).toEqual([]);
    // Everything again, although the repository holds every chunk of it (web1's jobs).
    expect(run.received).toBeGreaterThan(23 * MiB);
  }
  await expectRestored(second.archive);
  await pull.expectConsistent([...before, first.archive, second.archive]);
}, 180_000);
