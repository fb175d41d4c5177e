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

/** How many files borg read in full in a job (the runner counts borg's file_status lines). */
const filesRead = (run: JobRun): number => Number(run.log.map((l) => /^borg read (\d+) files? in full/.exec(l)).find(Boolean)?.[1] ?? NaN);

/** Extracts `archive` with the repository's real key and compares every file with the client's. */
async function expectRestored(archive: string, from = source): Promise<void> {
  const to = mkdtempSync(join(work, 'extract-'));
  const r = await env.borg('admin', ['extract', `${env.url('main')}::${archive}`], { cwd: to });
  expect(r.code, r.stderr).toBe(0);
  const restored = join(to, from.slice(1));
  const names = readdirSync(from).sort();
  expect(readdirSync(restored).sort()).toEqual(names);
  for (const name of names) expect(readFileSync(join(restored, name)).equals(readFileSync(join(from, name))), name).toBe(true);
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
  // Without a kept files cache the client reads every file again (it only sends none of them).
  expect(second.log).toContain('borg read 11 files in full');
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

test("a host allowed to keep its files cache: the client reads only new and changed files; after 10 % of the files changed, the client sends about those 10 %; the archive restores byte for byte", async () => {
  const tree = join(client.dir, 'tree');
  mkdirSync(tree, { mode: 0o755 });
  // 20 files of 512 KiB: two changed files are 10 % of the files and of the bytes.
  for (let i = 0; i < 20; i++) writeFileSync(join(tree, `f${String(i).padStart(2, '0')}.bin`), randomBytes(MiB / 2), { mode: 0o644 });
  // borg keeps no files-cache entry for the file(s) with the newest ctime it saw, and the kernel's
  // file times are coarse (a few ms): files written in one burst can share that newest time. One
  // small file written a moment later holds it alone, so the 20 are all kept.
  await new Promise((r) => setTimeout(r, 50));
  writeFileSync(join(tree, 'zz-newest.txt'), 'the newest file\n', { mode: 0o644 });
  const add = ['host', 'add', 'web3', '--address', `${client.address}:${client.port}`, '--user', client.user, '--repo', 'main', '--paths', tree, '--archive', '{host}-{now}', '--accept-host-key', client.hostKeyFingerprint];
  // Without the chunk index a files cache is of no use (borg reads a file whose chunks it does not know): refused.
  const both = await env.cli([...add, '--keep-files-cache', '--no-chunk-index']);
  expect(both.code).not.toBe(0);
  expect(both.stderr.trim()).toBe('borgkeep: a host that gets no chunk index cannot keep a files cache: borg reads every file again when it knows none of their chunks (drop --keep-files-cache or --no-chunk-index)');
  await env.cliOk([...add, '--keep-files-cache']);
  expect(JSON.parse(await env.cliOk(['host', 'show', 'web3', '--json']))).toMatchObject({ keepFilesCache: true, sendChunkIndex: true });
  expect(await env.cliOk(['host', 'show', 'web3'])).toContain('files cache: kept by the client between jobs');
  const before = await pull.archives();

  const first = await runJob('web3');
  expect(first.log).toContain('the client keeps no files cache of this host yet; borg reads every file');
  expect(filesRead(first)).toBe(21);
  expect(first.received).toBeGreaterThan(10 * MiB);

  // Unchanged: borg knows every file from its kept cache, but the newest one (borg does not keep
  // an entry as new as the newest file it saw: its guard against files changing while read).
  const second = await runJob('web3');
  expect(second.log.some((l) => /^the client's kept files cache \(\d+ bytes\) is in place$/.test(l)), second.log.join('\n')).toBe(true);
  expect(filesRead(second), second.log.join('\n')).toBeLessThanOrEqual(1);
  expect(second.received).toBeLessThan(first.received * 0.02);

  for (const i of [3, 11]) writeFileSync(join(tree, `f${String(i).padStart(2, '0')}.bin`), randomBytes(MiB / 2), { mode: 0o644 });
  const third = await runJob('web3');
  // The two changed files, and the newest of the last job (not in its kept cache, see above).
  expect(filesRead(third), third.log.join('\n')).toBeGreaterThanOrEqual(2);
  expect(filesRead(third), third.log.join('\n')).toBeLessThanOrEqual(3);
  const share = third.received / first.received;
  // The figures, for the note: bytes the client sent and files borg read, per job.
  console.info(`pull-cache web3: sent ${first.received} / ${second.received} / ${third.received} bytes (third ${(share * 100).toFixed(1)} % of first); read ${filesRead(first)} / ${filesRead(second)} / ${filesRead(third)} files`);
  expect(share, `first ${first.received}, third ${third.received}`).toBeGreaterThan(0.095);
  expect(share, `first ${first.received}, third ${third.received}`).toBeLessThan(0.12);
  await expectRestored(third.archive, tree);
  await pull.expectConsistent([...before, first.archive, second.archive, third.archive]);
}, 240_000);
