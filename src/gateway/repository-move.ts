// `borgkeep repo move NAME --to NODE` (issue 19): a repository's files go from the node that holds
// it to another, under borg's own lock, verified, and only then does the repository switch nodes.
//
// 1. The repository is marked as moving: gateways refuse its new sessions with a sentence saying so.
// 2. The source node takes borg's exclusive lock (waiting for a running session of it to end) and
//    streams every file of the repository, with its key history and kept manifests, each followed
//    by its SHA-256 (exportRepository). The lock is held until the move is decided.
// 3. The target node writes them into a folder of its own, checks every file's SHA-256, runs
//    `borg check --repository-only` on the copy and only then puts it in place (importRepository).
// 4. The store switches the repository to the target node; the source is told, moves its copy to
//    its trash (never destroyed) and lets go of the lock. Any failure before the switch leaves the
//    repository where it was, unchanged, and the target's partial copy is removed.
//
// The ledger, transactions and audit history are rows of the database, keyed by the repository:
// they stay as they are. Sessions and their bytes go through whoever runs the command (node to it,
// it to node), so run it near the nodes.

import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable, Writable } from 'node:stream';

import { keyHistoryDir } from '../audit/key-history.js';
import { keptDir } from '../audit/kept-manifests.js';
import { BorgkeepError } from '../errors.js';
import { dataDirPaths } from '../store/data-dir.js';

export const EXPORT_COMMAND = 'borgkeep-export';
export const IMPORT_COMMAND = 'borgkeep-import';
/** What the mover tells the source once the target holds the repository. */
export const SWITCHED = 'switched\n';

/** A repository's random directory name: the only thing these commands take from their caller. */
const DIR_NAME = /^[A-Za-z0-9_-]{8,128}$/;

/** The folders of one repository in a data directory, by the prefix they travel under. */
function foldersOf(root: string, dirName: string): Array<[prefix: string, dir: string]> {
  return [
    ['repo', dataDirPaths(root).repository(dirName)],
    ['key-history', keyHistoryDir(root, dirName)],
    ['kept', keptDir(root, { dirName })],
  ];
}

/** The directory name a move command names, or null when it is not that command. */
export function moveCommandTarget(command: string, word: string): string | null {
  const [w, dirName, ...rest] = command.trim().split(' ');
  return w === word && dirName !== undefined && rest.length === 0 && DIR_NAME.test(dirName) ? dirName : null;
}

/** Every regular file under `dir`, relative to it, in a stable order; borg's lock files left out. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, entry.name);
      const rel = relative(dir, p);
      if (rel === 'lock.exclusive' || rel === 'lock.roster') continue;
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) out.push(rel);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** One record of the stream: a 4-byte length, then that much JSON. */
function record(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(json.length);
  return Buffer.concat([head, json]);
}

const write = (out: Writable, data: Buffer): Promise<void> =>
  new Promise((resolve, reject) => {
    if (out.write(data)) return resolve();
    const onDrain = (): void => {
      out.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      out.off('drain', onDrain);
      reject(new Error('the other side went away'));
    };
    out.once('drain', onDrain);
    out.once('close', onClose);
  });

/**
 * The source's part: under borg's exclusive lock (waited for up to `lockWaitMs`), streams the
 * repository's files to `out`, then waits for the verdict on `verdict`: SWITCHED moves the files
 * to the trash, anything else (or the end) keeps them. The lock is let go either way.
 */
export async function exportRepository(root: string, dirName: string, out: Writable, verdict: Readable, opts: { lockWaitMs: number; now: () => Date }): Promise<'moved' | 'kept'> {
  const repo = dataDirPaths(root).repository(dirName);
  if (!existsSync(join(repo, 'config'))) throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'this node holds no such repository');
  const lock = join(repo, 'lock.exclusive');
  const deadline = Date.now() + opts.lockWaitMs;
  for (;;) {
    try {
      if (existsSync(join(repo, 'lock.roster'))) throw Object.assign(new Error('locked'), { code: 'EEXIST' });
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() > deadline) throw new BorgkeepError('BK_ERR_INVALID_INPUT', `the repository stayed locked by a running session for ${Math.round(opts.lockWaitMs / 1000)} seconds; try again when it has finished`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  // A host id that is not this host's, so borg never takes the lock for a stale one of its own.
  closeSync(openSync(join(lock, `borgkeep-move@0.${process.pid}-0`), 'w'));
  const said = new Promise<string>((resolve) => {
    let text = '';
    verdict.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) resolve(text);
    });
    verdict.once('end', () => resolve(text));
    verdict.once('close', () => resolve(text));
  });
  // A verdict before the end of the stream calls the move off (the target failed): stop sending.
  let calledOff = false;
  void said.then(() => (calledOff = true));
  try {
    const sums: Array<{ path: string; sha256: string; size: number }> = [];
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    for (const [prefix, dir] of foldersOf(root, dirName)) {
      for (const rel of filesUnder(dir)) {
        if (calledOff) return 'kept';
        const file = join(dir, rel);
        const size = lstatSync(file).size;
        const path = `${prefix}/${rel.split(sep).join('/')}`;
        await write(out, record({ path, size }));
        const hash = createHash('sha256');
        const fd = openSync(file, 'r');
        try {
          let left = size;
          while (left > 0) {
            const n = readSync(fd, buffer, 0, Math.min(buffer.length, left), size - left);
            if (n === 0) throw new Error(`${path} became shorter while it was copied`);
            const piece = Buffer.from(buffer.subarray(0, n));
            hash.update(piece);
            await write(out, piece);
            left -= n;
          }
        } finally {
          closeSync(fd);
        }
        sums.push({ path, sha256: hash.digest('hex'), size });
      }
    }
    await write(out, record({ end: true, files: sums }));
    if ((await said) !== SWITCHED) return 'kept';
    const paths = dataDirPaths(root);
    const stamp = opts.now().toISOString().replace(/[-:]/g, '').replace(/\.[0-9]{3}Z$/, 'Z');
    mkdirSync(paths.trash, { recursive: true, mode: 0o700 });
    for (const [prefix, dir] of foldersOf(root, dirName)) {
      if (!existsSync(dir)) continue;
      if (prefix === 'repo') rmSync(lock, { recursive: true, force: true });
      renameSync(dir, join(paths.trash, `${dirName}-${prefix}-moved-${stamp}`));
    }
    return 'moved';
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * The target's part: reads the stream into a folder of its own, checks every file against its
 * SHA-256 and the copy with `borg check --repository-only`, then puts it in place. Nothing is in
 * place unless all of that held.
 */
export async function importRepository(root: string, dirName: string, input: Readable, opts: { borg: string; env: NodeJS.ProcessEnv }): Promise<{ files: number; bytes: number }> {
  const folders = foldersOf(root, dirName);
  for (const [, dir] of folders) {
    if (existsSync(dir)) throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'this node already holds files of that repository; nothing was copied');
  }
  const staging = join(root, 'incoming', `${dirName}-${randomBytes(4).toString('hex')}`);
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  try {
    const files = await receive(staging, input);
    const repo = join(staging, 'repo');
    await new Promise<void>((resolve, reject) => {
      // borg's own files of this check (security, cache) go into the staging folder, not the node's home.
      const env = { ...opts.env, BORG_BASE_DIR: join(staging, 'borg-base'), BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
      execFile(opts.borg, ['check', '--repository-only', repo], { env, maxBuffer: 1024 * 1024 }, (error, _stdout, stderr) =>
        error ? reject(new BorgkeepError('BK_ERR_INVALID_INPUT', `borg check of the copy failed: ${String(stderr).trim().split('\n').pop() ?? error.message}`)) : resolve(),
      );
    });
    for (const [prefix, dir] of folders) {
      const from = join(staging, prefix);
      if (!existsSync(from)) continue;
      mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
      renameSync(from, dir);
    }
    return { files: files.count, bytes: files.bytes };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Writes the stream's files under `staging`; checks them against the closing list. */
function receive(staging: string, input: Readable): Promise<{ count: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    let file: { path: string; fd: number; left: number; hash: ReturnType<typeof createHash>; size: number } | null = null;
    const got = new Map<string, { sha256: string; size: number }>();
    let finished = false;
    let bytes = 0;
    const fail = (message: string): void => {
      if (finished) return;
      finished = true;
      if (file) closeSync(file.fd);
      input.destroy();
      reject(new BorgkeepError('BK_ERR_INVALID_INPUT', message));
    };
    const safePath = (p: unknown): string | null => {
      if (typeof p !== 'string' || !/^(repo|key-history|kept)\/[A-Za-z0-9._/-]+$/.test(p) || p.split('/').some((part) => part === '..' || part === '.' || part === '')) return null;
      return p;
    };
    input.on('data', (chunk: Buffer) => {
      if (finished) return;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length > 0 && !finished) {
        if (file) {
          const n = Math.min(file.left, pending.length);
          const piece = pending.subarray(0, n);
          writeSync(file.fd, piece);
          file.hash.update(piece);
          file.left -= n;
          bytes += n;
          pending = pending.subarray(n);
          if (file.left === 0) {
            fsyncSync(file.fd);
            closeSync(file.fd);
            got.set(file.path, { sha256: file.hash.digest('hex'), size: file.size });
            file = null;
          }
          continue;
        }
        if (pending.length < 4) return;
        const length = pending.readUInt32BE(0);
        if (length > 64 * 1024 * 1024) return fail('the copy stream is not one borgkeep sends');
        if (pending.length < 4 + length) return;
        let head: { path?: unknown; size?: unknown; end?: unknown; files?: unknown };
        try {
          head = JSON.parse(pending.subarray(4, 4 + length).toString('utf8')) as typeof head;
        } catch {
          return fail('the copy stream is not one borgkeep sends');
        }
        pending = pending.subarray(4 + length);
        if (head.end === true) {
          const list = Array.isArray(head.files) ? (head.files as Array<{ path: string; sha256: string; size: number }>) : [];
          if (list.length !== got.size) return fail(`the copy has ${got.size} files where the source sent ${list.length}`);
          for (const f of list) {
            const mine = got.get(f.path);
            if (!mine || mine.sha256 !== f.sha256 || mine.size !== f.size) return fail(`the copy of ${f.path} differs from the source`);
          }
          finished = true;
          return resolve({ count: got.size, bytes });
        }
        const path = safePath(head.path);
        if (!path || !Number.isSafeInteger(head.size) || (head.size as number) < 0 || got.has(path)) return fail('the copy stream names a file it may not');
        const target = join(staging, ...path.split('/'));
        mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
        file = { path, fd: openSync(target, 'wx', 0o600), left: head.size as number, hash: createHash('sha256'), size: head.size as number };
        if (file.left === 0) {
          closeSync(file.fd);
          got.set(path, { sha256: file.hash.digest('hex'), size: 0 });
          file = null;
        }
      }
    });
    input.once('end', () => fail('the copy stream ended early: the source node stopped sending'));
    input.once('error', (error: Error) => fail(`the copy stream failed: ${error.message}`));
  });
}

export interface MoveChannels {
  /** The source's export: its stdout is the stream, its stdin takes the verdict. */
  readonly source: MoveChannel;
  /** The target's import: its stdin takes the stream, its stdout says what it received. */
  readonly target: MoveChannel;
}

export interface MoveChannel extends NodeJS.ReadWriteStream {
  readonly stderr: NodeJS.ReadableStream;
  on(event: 'exit', listener: (code: number | null) => void): this;
  on(event: string, listener: (...args: unknown[]) => void): this;
}

/** The exit code and the texts of a channel, once it closed; its stdout only when `readStdout` (not one piped elsewhere). */
function ended(channel: MoveChannel, readStdout = true): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    let code: number | null = null;
    let stdout = '';
    let stderr = '';
    channel.on('exit', (c: unknown) => {
      code = typeof c === 'number' ? c : null;
    });
    channel.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    if (readStdout) {
      channel.on('data', (d: unknown) => {
        if (stdout.length < 4096) stdout += String(d);
      });
    }
    channel.on('close', () => resolve({ code, stdout, stderr }));
  });
}

/**
 * The mover's part: streams the source's export into the target's import, and once the target
 * holds a verified copy, calls `switchOver` (the store's change of node) and then tells the
 * source, which moves its copy to the trash. A failure before the switch tells the source to
 * keep everything. Returns what the target received, and whether the source trashed its copy.
 */
export async function moveBetween(channels: MoveChannels, switchOver: () => Promise<void>): Promise<{ files: number; bytes: number; sourceCleared: boolean }> {
  const { source, target } = channels;
  const targetDone = ended(target);
  // The source's stdout goes to the target: ended() must not read it too.
  const sourceDone = ended(source, false);
  source.on('error', () => undefined);
  target.on('error', () => undefined);
  source.pipe(target);
  const imported = await targetDone;
  // Whatever the source still sends goes nowhere now; read, its channel can close.
  source.unpipe(target);
  source.resume();
  /** Tells the source the verdict ("keep": it stops sending and keeps everything); what it said once it ended. */
  const tell = (verdict: string) => {
    source.end(verdict);
    return sourceDone;
  };
  const sentence = (text: string): string => text.trim().replace(/^borgkeep: /, '').split('\n').pop() ?? '';
  if (imported.code !== 0) {
    const said = await tell('keep\n');
    const why = sentence(said.stderr) || sentence(imported.stderr) || 'the copy did not complete';
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', `the repository was not moved: ${why}; it stays where it was, unchanged`);
  }
  let received: { files: number; bytes: number };
  try {
    received = JSON.parse(imported.stdout) as { files: number; bytes: number };
  } catch {
    await tell('keep\n');
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'the repository was not moved: the target node did not say what it received');
  }
  await switchOver().catch(async (error: unknown) => {
    await tell('keep\n');
    throw error;
  });
  return { ...received, sourceCleared: (await tell(SWITCHED)).code === 0 };
}
