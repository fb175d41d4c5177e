// What the browse tests share: a source tree with every kind of file borg archives (folders,
// symlinks, hardlinks, a fifo, a device when root, a sparse file, empty, long and non-UTF-8
// names, a file of many chunks), the real borg client run on a repository's folder, and a
// comparison of two unpacked trees (what `borg extract` made and what borgkeep's tar made) by
// lstat, content, link targets and hardlink sets, with names as raw bytes.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, utimesSync, writeFileSync, openSync, closeSync, ftruncateSync, writeSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

import { BORGKEEP, run, type BorgkeepEnv, type RunResult } from '../helpers/borgkeep-env.js';

export const isRoot = process.getuid?.() === 0;
/** A file name that is not UTF-8 (latin1 'bad<ff>name'), as raw bytes. */
export const BAD_NAME = Buffer.from('bad\xffname', 'latin1');
/** Small chunks, so a 1.5 MB file is many chunks. */
export const SMALL_CHUNKS = 'buzhash,12,16,14,4095';

const b = (...parts: Array<string | Buffer>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

/** Writes the source tree `dir/src` (version 1). */
export function makeTree(dir: string): void {
  const src = join(dir, 'src');
  mkdirSync(join(src, 'dir', 'deeper'), { recursive: true });
  writeFileSync(join(src, 'dir', 'a.txt'), 'alpha\n'.repeat(100));
  writeFileSync(join(src, 'dir', 'b.txt'), 'bravo\n'.repeat(100));
  writeFileSync(join(src, 'dir', 'deeper', 'c.txt'), 'charlie\n');
  writeFileSync(join(src, 'big.bin'), randomBytes(1_500_000));
  writeFileSync(join(src, 'empty'), '');
  symlinkSync('dir/a.txt', join(src, 'link'));
  writeFileSync(join(src, 'hard1'), 'linked content\n'.repeat(50));
  linkSync(join(src, 'hard1'), join(src, 'dir', 'hard2'));
  const fd = openSync(join(src, 'sparse'), 'w');
  ftruncateSync(fd, 3 * 1024 * 1024);
  writeSync(fd, 'end\n', 3 * 1024 * 1024);
  closeSync(fd);
  writeFileSync(b(src, '/', BAD_NAME), 'not utf-8 name\n');
  writeFileSync(join(src, 'ünïcödé.txt'), 'utf-8 name\n');
  const long = join(src, 'dir', `${'long-name-'.repeat(12)}end.txt`);
  writeFileSync(long, 'a long name\n');
  writeFileSync(join(src, 'setuid'), '#!/bin/sh\n');
  chmodSync(join(src, 'setuid'), 0o4755);
  utimesSync(join(src, 'dir', 'a.txt'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));
}

/** mkfifo and mknod need a moment; the tree is used only after this resolves. */
export async function makeTreeWithSpecials(dir: string): Promise<void> {
  makeTree(dir);
  const src = join(dir, 'src');
  const r = await run('mkfifo', [join(src, 'fifo')]);
  if (r.code !== 0 && !/exists/.test(r.stderr)) throw new Error(r.stderr);
  if (isRoot) {
    const m = await run('mknod', [join(src, 'null-device'), 'c', '1', '3']);
    if (m.code !== 0) throw new Error(m.stderr);
  }
}

/** Version 2 of the tree: one file changed, one added, one removed, a mode, a link target. */
export function changeTree(dir: string): void {
  const src = join(dir, 'src');
  writeFileSync(join(src, 'dir', 'a.txt'), 'alpha changed\n'.repeat(100));
  writeFileSync(join(src, 'new.txt'), 'new\n');
  rmSync(join(src, 'dir', 'b.txt'));
  chmodSync(join(src, 'empty'), 0o600);
  unlinkSync(join(src, 'link'));
  symlinkSync('dir/deeper/c.txt', join(src, 'link'));
}

/** The real borg client on a repository folder (no guard in between: it only needs the files). */
export function borgOn(env: BorgkeepEnv, args: readonly string[], cwd?: string): Promise<RunResult> {
  return run('borg', args, { env: { ...env.borgEnv('admin'), TZ: 'UTC' }, cwd });
}

export async function borgOk(env: BorgkeepEnv, args: readonly string[], cwd?: string): Promise<string> {
  const r = await borgOn(env, args, cwd);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** borg's JSON path (a surrogate per undecodable byte) as borg list shows it in its text: '?' per byte. */
export const borgShown = (p: string): string => p.replace(/[\ud800-\udfff]/g, '?');

export interface TreeNode {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  target?: string;
  content?: string;
  rdev?: number;
  /** Index of the hardlink set (paths sharing an inode), else undefined. */
  linkSet?: string;
}

/** Every path below `root` (raw names, hex-safe keys) with what matters of it. */
export function snapshot(root: string): Map<string, TreeNode> {
  const out = new Map<string, TreeNode>();
  const inodes = new Map<number, string[]>();
  const walk = (dir: Buffer, rel: string) => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const path = Buffer.concat([dir, Buffer.from('/'), name]);
      const key = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
      const st = lstatSync(path);
      const node: TreeNode = {
        type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chr' : st.isBlockDevice() ? 'blk' : 'file',
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        size: st.isFile() ? st.size : 0,
        mtimeMs: st.isSymbolicLink() ? 0 : Math.floor(st.mtimeMs / 1000), // seconds: tar's and borg's agree to the second at least
      };
      if (st.isSymbolicLink()) node.target = readlinkSync(path, { encoding: 'buffer' }).toString('latin1');
      if (st.isFile()) node.content = readFileSync(path).toString('base64');
      if (st.isCharacterDevice() || st.isBlockDevice()) node.rdev = st.rdev;
      if (st.isFile() && st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), key]);
      out.set(key, node);
      if (st.isDirectory()) walk(path, key);
    }
  };
  walk(Buffer.from(root), '');
  for (const keys of inodes.values()) {
    const set = [...keys].sort().join('|');
    for (const k of keys) out.get(k)!.linkSet = set;
  }
  return out;
}

/** The two trees are the same: paths, kinds, modes, owners, sizes, seconds of mtime, content, links. */
export function expectSameTree(actual: Map<string, TreeNode>, expected: Map<string, TreeNode>): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [k, e] of expected) expect(actual.get(k), k).toEqual(e);
}

/** Runs a command and keeps its stdout as bytes. */
export function runBytes(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
  });
}

/** `borgkeep ARGS` of the installation, stdout as bytes. */
export const borgkeepBytes = (env: BorgkeepEnv, args: readonly string[]) =>
  runBytes(process.execPath, [BORGKEEP, '--data-dir', env.dataDir, ...args], { env: { ...process.env, BORGKEEP_DATA_DIR: undefined } });

/** A refusal: exit 1, one line on stderr, nothing on stdout, no server path. */
export function expectRefusal(r: { code: number; stdout: string | Buffer; stderr: string }, pattern: RegExp, serverPath: string): void {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout.length).toBe(0);
  expect(r.stderr).toMatch(/^borgkeep: [^\n]+\n$/);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toContain(serverPath);
}
