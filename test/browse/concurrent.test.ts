// Browsing and restoring while a backup to the same repository runs: a real `borg create`
// through borgkeep's guard, slowed with --upload-ratelimit, holds borg's exclusive lock while
// `borgkeep archives`, `ls` and `restore` read the last committed transaction (the running
// archive not in it yet), and the backup still ends well: borgkeep took no lock and wrote nothing.
// Then a damaged object: the restore fails in one sentence and leaves no file behind.

import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { borgkeepBytes, expectRefusal } from './browse-fixture.js';

let env: BorgkeepEnv;
let work = '';
let repoPath = '';

async function borgOk(args: string[]): Promise<void> {
  const r = await env.borg('admin', args, { cwd: work });
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
}

beforeAll(async () => {
  env = createBorgkeepEnv('browse-concurrent');
  await env.repoWithKeys('r', { admin: 'full' });
  repoPath = await env.repoPath('r');
  work = join(env.root, 'work');
  makeSourceTree(join(work, 'src'), 1);
  mkdirSync(join(work, 'big'));
  // Many small files: each is a put of its own, so objects reach the repository all along.
  for (let i = 0; i < 40; i++) writeFileSync(join(work, 'big', `random-${i}.bin`), randomBytes(80 * 1024));
  await borgOk(['init', '-e', 'repokey', env.url('r')]);
  await borgOk(['create', `${env.url('r')}::base`, 'src']);
  writeFileSync(join(env.root, 'passphrase'), `${PASSPHRASE}\n`);
  await env.cliOk(['repo', 'key', 'r', '--passphrase-file', join(env.root, 'passphrase')]);
}, 120_000);
afterAll(() => env?.cleanup());

test('archives, ls and restore read the committed archives while borg create holds the lock', async () => {
  const lock = join(repoPath, 'lock.exclusive');
  const segments = () => readdirSync(join(repoPath, 'data'), { recursive: true }).length;
  const before = segments();
  const backup = env.borg('admin', ['create', '--upload-ratelimit', '256', `${env.url('r')}::during`, 'big'], { cwd: work });
  await expect.poll(() => existsSync(lock), { timeout: 30_000 }).toBe(true);
  // The backup has written objects of its own that no commit lists yet.
  await expect.poll(() => segments() > before, { timeout: 30_000 }).toBe(true);

  const archives = JSON.parse(await env.cliOk(['archives', 'r', '--json'])) as { archives: Array<{ name: string }> };
  expect(archives.archives.map((a) => a.name)).toEqual(['base']);
  const ls = JSON.parse(await env.cliOk(['ls', 'r', 'base', 'src', '--json'])) as { entries: Array<{ name: string }> };
  expect(ls.entries.map((e) => e.name)).toEqual(['file-0.txt', 'file-1.txt', 'file-2.txt', 'file-3.txt', 'file-4.txt']);
  const restored = await borgkeepBytes(env, ['restore', 'r', 'base', 'src/file-4.txt']);
  expect(restored.stderr).toBe('');
  expect(restored.stdout.equals(readFileSync(join(work, 'src', 'file-4.txt')))).toBe(true);
  // All of it happened while the backup held borg's lock.
  expect(existsSync(lock)).toBe(true);

  const done = await backup;
  expect(done.code, done.stderr).toBe(0);
  const after = JSON.parse(await env.cliOk(['archives', 'r', '--json'])) as { archives: Array<{ name: string }> };
  expect(after.archives.map((a) => a.name)).toEqual(['base', 'during']);
  const big = await borgkeepBytes(env, ['restore', 'r', 'during', 'big/random-39.bin']);
  expect(big.stdout.equals(readFileSync(join(work, 'big', 'random-39.bin')))).toBe(true);
}, 120_000);

test('a damaged object: one sentence, exit 1, no file left behind, the restore in the ledger as failed', async () => {
  // The largest segment holds the 'during' archive's random files: flip a byte in its middle.
  const files = readdirSync(join(repoPath, 'data'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  const largest = files.map((e) => join(e.parentPath, e.name)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const fd = openSync(largest, 'r+');
  const at = Math.floor(statSync(largest).size / 2);
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, at);
  byte[0] ^= 0x01;
  writeSync(fd, byte, 0, 1, at);
  closeSync(fd);

  const out = join(env.root, 'restored', 'big.tar');
  mkdirSync(dirname(out), { recursive: true });
  const r = await env.cli(['restore', 'r', 'during', 'big', '--to', out, '--as', 'bob']);
  expectRefusal(r, /^borgkeep: cannot read repository 'r': object [0-9a-f]{16} /, repoPath);
  expect(readdirSync(dirname(out))).toEqual([]);
  const ledger = JSON.parse(await env.cliOk(['ledger', '--repo', 'r', '--json'])) as { sessions: Array<{ keyName: string | null; result: string; detail: string | null }> };
  const s = ledger.sessions.find((x) => x.keyName === '(restore by bob)');
  expect(s?.result).toBe('error');
  expect(s?.detail).toMatch(/^bob failed to restore '\/big' of archive 'during' as a tar stream: object [0-9a-f]{16} /);
});
