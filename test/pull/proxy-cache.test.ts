// The client cache a pull job is given (issue 17, point 1), checked against borg itself, without
// SSH (the runner's part; test/pull/pull-cache.test.ts has the whole path): the chunk index the
// server builds is the one borg's own resynchronisation builds; the stock client (run with --info,
// so it says when it resynchronises) takes the cache as it is and uploads only what the
// repository lacks; and a cache that lists chunks the repository lost before the job opened is
// not served as in sync, so the client uploads everything and the archive is whole.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import type { GuardDeps } from '../../src/guard/guard.js';
import { repositoryChunks } from '../../src/pull/client-cache.js';
import { createPullJobSession } from '../../src/pull/pull-proxy.js';
import type { ClientCacheFiles, PullJobSession, PullSessionOutcome } from '../../src/pull/types.js';
import type { BorgKey } from '../../src/repository/borg-key.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import type { Store } from '../../src/store/database.js';
import type { Repository } from '../../src/store/types.js';
import { runPython } from '../support/python.js';
import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { runBorgAgainstSession, shWord as word, vaultedRepository } from '../helpers/pull-job-bridge.js';

const MiB = 1024 * 1024;
let env: BorgkeepEnv;
let store: Store;
let guard: GuardDeps;
let repository: Repository;
let repoPath: string;
let repoKey: BorgKey;
let work: string;
let jobs = 0;


async function borgOk(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: Buffer } = {}): Promise<string> {
  const r = await env.borg('admin', args, opts);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return `${r.stdout}${r.stderr}`;
}

/** borg run on the repository's directory itself (not through borgkeep), with its real key. */
function localBorg(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const base = join(work, 'local-borg');
    mkdirSync(base, { recursive: true });
    const child = spawn('borg', args, {
      env: { PATH: process.env.PATH, HOME: base, BORG_BASE_DIR: base, LANG: 'C.UTF-8', BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const err: Buffer[] = [];
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('close', (code) => resolve({ code: code ?? 2, stderr: Buffer.concat(err).toString() }));
  });
}

function tree(name: string, files: number, size: number): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(dir, `f${i}.bin`), randomBytes(size + i * 333));
  writeFileSync(join(dir, 'small.txt'), `${name}\n`.repeat(50));
  return dir;
}

/** Writes the cache files where borg looks for them under BORG_BASE_DIR. */
function writeCache(base: string, cache: ClientCacheFiles): void {
  const dir = join(base, '.cache', 'borg', cache.dirName);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const f of cache.files) {
    if (f.content === null) mkdirSync(join(dir, f.path), { mode: 0o700 });
    else writeFileSync(join(dir, f.path), f.content, { mode: 0o600 });
  }
}

/** Serves one job session on a unix socket and runs the stock `borg create --info` against it, with `cache` in its base dir. */
async function runJob(
  session: PullJobSession,
  cache: ClientCacheFiles | null,
  archive: string,
  cwd: string,
  /** Its output is what borg backs up (`-`), e.g. written slowly so borg writes a checkpoint. */
  stdinScript?: string,
): Promise<{ code: number; stderr: string; outcome: PullSessionOutcome | null }> {
  const args = ['create', '--info', ...(stdinScript ? ['--checkpoint-interval', '1'] : []), `ssh://borgkeep@job/./job::${archive}`, stdinScript ? '-' : '.'];
  const r = await runBorgAgainstSession(session, args, {
    cwd,
    work,
    ...(stdinScript !== undefined && { stdinScript }),
    ...(cache && { prepareBase: (base: string) => writeCache(base, cache) }),
  });
  session.dispose();
  return { code: r.code, stderr: r.stderr, outcome: r.outcome };
}

async function expectRestored(archive: string, source: string): Promise<void> {
  const to = mkdtempSync(join(work, 'extract-'));
  await borgOk(['extract', `${env.url('main')}::${archive}`], { cwd: to });
  const names = readdirSync(source).sort();
  expect(readdirSync(to).sort()).toEqual(names);
  for (const n of names) expect(readFileSync(join(to, n)).equals(readFileSync(join(source, n))), n).toBe(true);
  rmSync(to, { recursive: true, force: true });
}

const newSession = (archiveName: string): PullJobSession => createPullJobSession({ guard }, { jobId: ++jobs, repository, archiveName });

let treeA: string;

beforeAll(async () => {
  env = createBorgkeepEnv('pullcache-proxy');
  work = mkdtempSync(join(tmpdir(), 'bk-pullcache-proxy-'));
  await env.repoWithKeys('main', { admin: 'full' });
  await borgOk(['init', '-e', 'repokey', env.url('main')]);
  treeA = tree('a', 3, 2 * MiB);
  const treeB = tree('b', 2, MiB);
  // Two pushed archives sharing tree A's chunks: refcounts above 1, item streams of several items.
  await borgOk(['create', `${env.url('main')}::pushed-a`, '.'], { cwd: treeA });
  writeFileSync(join(treeB, 'copy-of-a0.bin'), readFileSync(join(treeA, 'f0.bin')));
  await borgOk(['create', `${env.url('main')}::pushed-b`, '.'], { cwd: treeB });
  ({ store, guard, repository, repoPath, repoKey } = await vaultedRepository(env, work, 'main'));
}, 120_000);

afterAll(async () => {
  await store?.close();
  await env?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the server's chunk index is the one borg's own resynchronisation builds: the same chunks, refcounts, sizes and stored sizes", async () => {
  // borg with the real key and an empty cache directory builds its chunk index from the archives.
  const cacheDir = join(work, 'borg-own-cache');
  await borgOk(['info', env.url('main')], { env: { BORG_CACHE_DIR: cacheDir } });
  const repoId = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8')).id.toString('hex');
  const borgs = JSON.parse(
    runPython(
      'import sys, json\nfrom borg.hashindex import ChunkIndex\nidx = ChunkIndex.read(sys.argv[1])\nprint(json.dumps({k.hex(): list(v) for k, v in idx.iteritems()}))',
      undefined,
      [join(cacheDir, repoId, 'chunks')],
    ).toString(),
  ) as Record<string, [number, number, number]>;
  const mine = await repositoryChunks(repoPath, repoKey);
  const ours: Record<string, [number, number, number]> = {};
  for (const [hex, e] of mine.entries) ours[hex] = [e.refcount, e.size, e.csize];
  expect(Object.keys(borgs).length).toBeGreaterThan(8);
  expect(Object.values(borgs).some(([refcount]) => refcount > 1)).toBe(true);
  expect(ours).toEqual(borgs);
}, 60_000);

test('the stock client takes the cache without resynchronising and uploads only what the repository lacks', async () => {
  const session = newSession('pulled-a');
  const cache = await session.clientCache!();
  expect(cache.files.map((f) => f.path).sort()).toEqual(['README', 'chunks', 'chunks.archive.d', 'config', 'files', 'pre12-meta']);
  // Every chunk the repository holds, each with a reference count of 1: how many archives refer to it is not the client's to know.
  const chunksPath = join(work, 'served-chunks');
  writeFileSync(chunksPath, cache.files.find((f) => f.path === 'chunks')!.content!);
  const served = JSON.parse(
    runPython('import sys, json\nfrom borg.hashindex import ChunkIndex\nprint(json.dumps({k.hex(): list(v) for k, v in ChunkIndex.read(sys.argv[1]).iteritems()}))', undefined, [chunksPath]).toString(),
  ) as Record<string, [number, number, number]>;
  const held = (await repositoryChunks(repoPath, repoKey)).entries;
  expect(Object.keys(served).sort()).toEqual([...held.keys()].sort());
  expect(Object.entries(served).every(([hex, [refcount, size, csize]]) => refcount === 1 && size === held.get(hex)!.size && csize === held.get(hex)!.csize)).toBe(true);
  const r = await runJob(session, cache, 'pulled-a', treeA);
  expect(r.code, r.stderr).toBe(0);
  expect(r.outcome).toMatchObject({ committed: true, refusal: null });
  // borg --info says "Synchronizing chunks cache..." when it rebuilds its index.
  expect(r.stderr).not.toMatch(/synchroniz|cache rebuild|integrity data not available|previously located/i);
  expect(r.outcome!.received!).toBeLessThan(0.02 * 6 * MiB);
  await expectRestored('pulled-a', treeA);
}, 60_000);

test('a cache listing chunks the repository lost before the job opened is not served as in sync: the client uploads everything and the archive is whole', async () => {
  const treeC = tree('c', 2, MiB);
  await borgOk(['create', `${env.url('main')}::pushed-c`, '.'], { cwd: treeC });
  const session = newSession('pulled-c');
  const cache = await session.clientCache!();
  // Now tree C's chunks go from the repository (borg on its directory, not through borgkeep).
  for (const args of [['delete', `${repoPath}::pushed-c`], ['compact', repoPath]]) {
    const d = await localBorg(args);
    expect(d.code, d.stderr).toBe(0);
  }
  const r = await runJob(session, cache, 'pulled-c', treeC);
  expect(r.code, r.stderr).toBe(0);
  expect(r.outcome).toMatchObject({ committed: true, refusal: null });
  expect(r.stderr).toMatch(/Synchronizing chunks cache/);
  expect(r.outcome!.received!).toBeGreaterThan(2 * MiB);
  await expectRestored('pulled-c', treeC);
  await borgOk(['check', env.url('main')]);
}, 90_000);

test("a job with a cache that writes a checkpoint (borg drops the checkpoint's own objects again) ends with its one archive, whole", async () => {
  const fresh = join(work, 'fresh.bin');
  writeFileSync(fresh, randomBytes(3 * MiB));
  // Pushed as a stream first: the job's stream starts with the same bytes, so its chunks up to the
  // last cut before they end (borg cuts one at 8 MiB at the latest) are the repository's.
  const known = join(work, 'known.bin');
  writeFileSync(known, randomBytes(12 * MiB));
  await borgOk(['create', `${env.url('main')}::pushed-stream`, '-'], { input: readFileSync(known) });
  const session = newSession('pulled-stream');
  const cache = await session.clientCache!();
  // What the repository holds first (tree A's file), a pause (a checkpoint), then new data.
  const r = await runJob(session, cache, 'pulled-stream', work, `cat ${word(known)}; sleep 2; cat ${word(fresh)}`);
  expect(r.code, r.stderr).toBe(0);
  expect(r.outcome).toMatchObject({ committed: true, refusal: null });
  expect(r.stderr).not.toMatch(/synchroniz/i);
  const sessions = await store.listSessions({ repositoryId: repository.id, limit: 20 });
  expect(sessions.find((x) => x.id === r.outcome!.sessionId)!.transactions.filter((t) => t.state === 'committed').length).toBeGreaterThanOrEqual(2);
  // The new data went up, and at least borg's smallest chunk (512 KiB) of what the repository held did not.
  expect(r.outcome!.received!).toBeGreaterThan(3 * MiB);
  expect(r.outcome!.received!).toBeLessThan(15 * MiB - 512 * 1024);
  const listed = (await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean);
  expect(listed.filter((n) => n.startsWith('pulled-stream'))).toEqual(['pulled-stream']);
  const out = mkdtempSync(join(work, 'extract-'));
  await borgOk(['extract', `${env.url('main')}::pulled-stream`], { cwd: out });
  expect(readFileSync(join(out, 'stdin')).equals(Buffer.concat([readFileSync(known), readFileSync(fresh)]))).toBe(true);
  await borgOk(['check', env.url('main')]);
}, 90_000);
