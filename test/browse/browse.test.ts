// `borgkeep archives/ls/restore/diff` against one repokey-blake2 repository written by the real
// borg client with every compressor borg 1.2 offers (lz4, zstd, zlib, lzma, none) and small
// chunks: the listing is what `borg list --json-lines` lists, a restored file is what
// `borg extract --stdout` gives, a restored folder's tar unpacks to what `borg extract` makes
// (symlinks, hardlinks, a fifo, a device when root, a sparse file, long and non-UTF-8 names),
// the diff's paths and change kinds are borg diff's, each restore is in the ledger, and bad input
// is one sentence that never names the repository's folder on the server.

import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { BAD_NAME, SMALL_CHUNKS, borgOk, borgShown, borgkeepBytes, changeTree, expectRefusal, expectSameTree, isRoot, makeTreeWithSpecials, runBytes, snapshot } from './browse-fixture.js';

let env: BorgkeepEnv;
let repoPath = '';
let work = '';
const ARCHIVES = [
  ['v1-lz4', 'lz4'],
  ['v1-zstd', 'zstd,3'],
  ['v2-zlib', 'zlib,6'],
  ['v2-lzma', 'lzma,1'],
  ['v2-none', 'none'],
] as const;

beforeAll(async () => {
  env = createBorgkeepEnv('browse');
  await env.cliOk(['repo', 'create', 'main']);
  await env.cliOk(['repo', 'create', 'nokey']);
  repoPath = await env.repoPath('main');
  work = join(env.root, 'work');
  mkdirSync(work);
  await makeTreeWithSpecials(work);
  await borgOk(env, ['init', '-e', 'repokey-blake2', repoPath]);
  for (const [name, compression] of ARCHIVES) {
    if (name === 'v2-zlib') changeTree(work);
    await borgOk(env, ['create', '-C', compression, '--chunker-params', SMALL_CHUNKS, `${repoPath}::${name}`, 'src'], work);
  }
  await borgOk(env, ['init', '-e', 'repokey', await env.repoPath('nokey')]);
  writeFileSync(join(env.root, 'passphrase'), `${PASSPHRASE}\n`);
  await env.cliOk(['repo', 'key', 'main', '--passphrase-file', join(env.root, 'passphrase')]);
}, 120_000);
afterAll(() => env?.cleanup());

const json = async <T>(args: string[]): Promise<T> => JSON.parse(await env.cliOk(args)) as T;

interface Entry {
  name: string;
  path: string;
  type: string;
  mode: string;
  user: string;
  group: string;
  uid: number;
  gid: number;
  size: number;
  mtime: string;
  linkTarget: string | null;
  implied: boolean;
}

describe('borgkeep archives', () => {
  test('lists every archive with its client time, host, command line and totals, as borg info tells them', async () => {
    const r = await env.cli(['archives', 'main', '--json']);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { archives: Array<{ name: string; time: string; hostname: string; username: string; commandLine: string[]; files: number; size: number; deduplicatedSize: number | null; authentication: string }> };
    expect(out.archives.map((a) => a.name)).toEqual(ARCHIVES.map(([n]) => n));
    const info = JSON.parse(await borgOk(env, ['info', '--json', `${repoPath}::v2-lzma`])) as { archives: Array<{ start: string; stats: { nfiles: number; original_size: number; deduplicated_size: number } }> };
    const lzma = out.archives.find((a) => a.name === 'v2-lzma')!;
    expect(lzma.files).toBe(info.archives[0]!.stats.nfiles);
    expect(lzma.size).toBe(info.archives[0]!.stats.original_size);
    expect(lzma.deduplicatedSize).toBe(info.archives[0]!.stats.deduplicated_size);
    expect(lzma.time.slice(0, 19)).toBe(info.archives[0]!.start.slice(0, 19));
    expect(lzma.hostname).toBe(hostname());
    expect(lzma.commandLine).toContain('create');
    expect(lzma.commandLine).toContain('./main::v2-lzma');
    // The repository's folder on the server never shows, not even from a command line.
    expect(r.stdout).not.toContain(repoPath);
    const text = await env.cliOk(['archives', 'main']);
    expect(text).toMatch(/^NAME +TIME +FIRST SEEN +SIZE +DEDUPLICATED +FILES +HOST +CHECKS +COMMAND\n/);
  });
});

describe('borgkeep ls', () => {
  test.each(ARCHIVES.map(([n]) => n))('lists what borg list lists in each folder of %s', async (archive) => {
    // Every folder of the first archive; the others differ by compressor: their top folder.
    for (const folder of archive === 'v1-lz4' ? ['src', 'src/dir', 'src/dir/deeper'] : ['src']) {
      const lines = (await borgOk(env, ['list', '--json-lines', `${repoPath}::${archive}`, folder])).split('\n').filter(Boolean);
      const borg = lines
        .map((l) => JSON.parse(l) as { path: string; mode: string; user: string; group: string; uid: number; gid: number; size: number; mtime: string; linktarget: string })
        .filter((e) => e.path.slice(0, e.path.lastIndexOf('/')) === folder);
      const ours = (await json<{ folder: string; entries: Entry[] }>(['ls', 'main', archive, folder, '--json'])).entries;
      expect(ours.every((e) => !e.implied)).toBe(true);
      const shape = (e: { path: string; mode: string; user: string; group: string; uid: number; gid: number; size: number; mtime: string; linktarget: string }) => ({
        ...e,
        path: borgShown(e.path),
        mtime: e.mtime.slice(0, 26),
        // borg 1.2.4 lists a later hardlink with size 0; borgkeep gives its content's size.
        size: e.mode.startsWith('h') ? 'hardlink' : e.size,
      });
      expect(ours.map((e) => shape({ path: e.path, mode: e.mode, user: e.user, group: e.group, uid: e.uid, gid: e.gid, size: e.size, mtime: e.mtime, linktarget: e.linkTarget ?? '' })).sort((a, b) => a.path.localeCompare(b.path))).toEqual(
        borg.map((e) => shape({ path: e.path, mode: e.mode, user: e.user, group: e.group, uid: e.uid, gid: e.gid, size: e.size, mtime: e.mtime, linktarget: e.linktarget })).sort((a, b) => a.path.localeCompare(b.path)),
      );
      const hard = ours.find((e) => e.type === 'hardlink');
      if (hard) expect(hard.size).toBe('linked content\n'.length * 50);
    }
  });

  test('the top of an archive, implied folders, and a path naming a file', async () => {
    expect((await json<{ entries: Entry[] }>(['ls', 'main', 'v1-lz4', '--json'])).entries.map((e) => [e.name, e.type])).toEqual([['src', 'directory']]);
    const one = (await json<{ entries: Entry[] }>(['ls', 'main', 'v1-lz4', '/src/dir/a.txt', '--json'])).entries;
    expect(one.map((e) => [e.path, e.size, e.mtime])).toEqual([['src/dir/a.txt', 600, '2001-02-03T04:05:06.789000Z']]);
    const text = await env.cliOk(['ls', 'main', 'v1-lz4', 'src']);
    expect(text).toContain('link -> dir/a.txt');
    expect(text).toContain('bad?name');
  });
});

describe('borgkeep restore', () => {
  test.each(ARCHIVES.map(([n]) => n))("a file's bytes are borg extract's (%s)", async (archive) => {
    const files = ['src/big.bin', 'src/dir/a.txt', 'src/dir/hard2', 'src/sparse', 'src/empty', `src/${BAD_NAME.toString('utf8')}`];
    for (const file of archive === 'v1-lz4' ? files : files.slice(0, 1)) {
      const ours = await borgkeepBytes(env, ['restore', 'main', archive, file]);
      expect(ours.stderr).toBe('');
      expect(ours.code).toBe(0);
      const borgPath = file.includes('\ufffd') ? Buffer.concat([Buffer.from('src/'), BAD_NAME]).toString('latin1') : file;
      const theirs = await runBytes('borg', ['extract', '--stdout', `${repoPath}::${archive}`, borgPath], { env: { ...env.borgEnv('admin'), LANG: 'C.UTF-8' } });
      if (file.includes('\ufffd')) {
        // borg takes the raw name only through its surrogate escapes: compare with the source instead.
        expect(ours.stdout.toString()).toBe('not utf-8 name\n');
        continue;
      }
      expect(theirs.code, theirs.stderr).toBe(0);
      expect(ours.stdout.equals(theirs.stdout), file).toBe(true);
    }
  });

  test.each([
    ['v1-lz4', 'src'],
    ['v2-lzma', 'src'],
    ['v1-zstd', 'src/dir'],
    ['v2-none', '/'],
  ])("%s: the tar of '%s' unpacks to what borg extract makes", async (archive, path) => {
    const dir = join(env.root, `tar-${archive}-${path.replace(/\//g, '_')}`);
    const [mine, theirs] = [join(dir, 'borgkeep'), join(dir, 'borg')];
    mkdirSync(mine, { recursive: true });
    mkdirSync(theirs, { recursive: true });
    const tarFile = join(dir, 'out.tar');
    await env.cliOk(['restore', 'main', archive, path, '--to', tarFile]);
    const t = await run('tar', ['-x', '-p', '--same-owner', '-f', tarFile, '-C', mine]);
    expect(t.code, t.stderr).toBe(0);
    await borgOk(env, ['extract', `${repoPath}::${archive}`, ...(path === '/' ? [] : [path])], theirs);
    const expected = snapshot(theirs);
    const got = snapshot(mine);
    if (path === 'src/dir') {
      // The folders above the restored one are not in the tar: tar and borg make them each their own way.
      expected.delete('src');
      got.delete('src');
    }
    expectSameTree(got, expected);
    // The kinds the tree holds came out (not just the same nothing on both sides).
    const kinds = new Set([...expected.values()].map((n) => n.type));
    if (path !== 'src/dir') {
      expect(kinds).toEqual(new Set(['dir', 'file', 'symlink', 'fifo', ...(isRoot ? ['chr'] : [])]));
      expect([...expected.keys()].filter((k) => expected.get(k)!.linkSet).length).toBe(2);
      expect(expected.has(`src/${BAD_NAME.toString('latin1')}`)).toBe(true);
    } else {
      // Its hardlink's first copy is outside the folder: the link carries the content itself.
      expect(expected.get('src/dir/hard2')?.content).toBe(Buffer.from('linked content\n'.repeat(50)).toString('base64'));
    }
  });

  test('each restore is in the ledger: who, what, how many bytes', async () => {
    const out = join(env.root, 'ledger-check.bin');
    await env.cliOk(['restore', 'main', 'v2-none', 'src/big.bin', '--to', out, '--as', 'alice']);
    const ledger = await json<{ sessions: Array<{ keyName: string | null; repositoryName: string | null; result: string; detail: string | null; bytesOut: number; runKind: string }> }>(['ledger', '--repo', 'main', '--json']);
    const s = ledger.sessions.find((x) => x.keyName === '(restore by alice)');
    expect(s).toBeDefined();
    expect(s!.result).toBe('ok');
    expect(s!.bytesOut).toBe(1_500_000);
    expect(s!.detail).toBe("alice restored '/src/big.bin' of archive 'v2-none' as a file (1 item, 1500000 bytes)");
    expect(s!.runKind).toBe('list-extract');
  });
});

describe('borgkeep diff', () => {
  const borgDiff = async (a: string, b: string) =>
    new Map(
      (await borgOk(env, ['diff', '--json-lines', `${repoPath}::${a}`, b]))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { path: string; changes: Array<{ type: string }> })
        .map((e) => [borgShown(e.path), e.changes.map((c) => c.type).sort()]),
    );
  const ours = async (a: string, b: string) =>
    new Map((await json<{ changes: Array<{ path: string; changes: Array<{ type: string }> }> }>(['diff', 'main', a, b, '--json'])).changes.map((e) => [e.path, e.changes.map((c) => c.type).sort()]));

  test.each([
    ['v1-lz4', 'v1-zstd'],
    ['v1-zstd', 'v2-zlib'],
    ['v2-lzma', 'v1-lz4'],
  ])('%s to %s: the paths and kinds of change borg diff shows', async (a, b) => {
    const expected = await borgDiff(a, b);
    expect(await ours(a, b)).toEqual(expected);
    if (a === 'v1-zstd') {
      expect(expected.get('src/dir/a.txt')).toContain('modified');
      expect(expected.get('src/new.txt')).toEqual(['added']);
      expect(expected.get('src/dir/b.txt')).toEqual(['removed']);
      expect(expected.get('src/link')).toContain('changed link');
      expect(expected.get('src/empty')).toContain('mode');
    }
  });
});

describe('bad input', () => {
  test('unknown repository, archive or path, no key held, an existing --to file: one sentence, exit 1', async () => {
    expectRefusal(await env.cli(['ls', 'nosuch', 'v1-lz4']), /no repository named 'nosuch'/, repoPath);
    expectRefusal(await env.cli(['ls', 'main', 'nosuch']), /repository 'main' has no archive named 'nosuch'/, repoPath);
    expectRefusal(await env.cli(['ls', 'main', 'v1-lz4', 'src/missing']), /archive 'v1-lz4' of repository 'main' has nothing at '\/src\/missing'/, repoPath);
    expectRefusal(await env.cli(['restore', 'main', 'v1-lz4', 'src/missing', '--to', join(env.root, 'x')]), /has nothing at/, repoPath);
    expectRefusal(await env.cli(['archives', 'nokey']), /no key is held for repository 'nokey'.*borgkeep repo key nokey/, repoPath);
    expectRefusal(await env.cli(['diff', 'main', 'v1-lz4', 'nosuch']), /has no archive named 'nosuch'/, repoPath);
    writeFileSync(join(env.root, 'exists'), 'x');
    expectRefusal(await env.cli(['restore', 'main', 'v1-lz4', 'src/empty', '--to', join(env.root, 'exists')]), /exists already/, repoPath);
  });
});
