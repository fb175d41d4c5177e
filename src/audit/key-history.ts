// The repository keys borgkeep kept before anything replaced them. borg's `save_key` rewrites the
// `key` option of the repository's config and erases the previous file, so a repokey repository
// whose key is overwritten (a stolen full key, a mistaken `borg key change-passphrase`) loses every
// archive unless the old blob was kept somewhere else: here, in the data directory (never the
// repository), <data-dir>/key-history/<repository dir name>/<n>.json, mode 0700/0600, each with
// the blob, when it was kept and the repository's last committed transaction at that moment.
//
// `rollback --to T` and `repo key-history --restore N` write a kept blob back into config, under
// borg's lock, atomically (a temporary file renamed over config), after keeping the one they
// replace. Nothing here prints, logs or returns a blob to a caller that shows it: only its
// fingerprint (the first 16 hex digits of SHA-256 over the decoded blob).

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { COMMIT_ENTRY, listSegments } from '../repository/segments.js';
import { parseIni } from '../repository/repo-config.js';

export type KeyKeptFor = 'save_key' | 'restore' | 'rollback';

/** One kept key as the CLI shows it: never the blob. */
export interface KeptKey {
  readonly n: number;
  readonly at: string;
  /** The repository's last committed transaction when the key was kept (it was in effect then). */
  readonly txn: number | null;
  readonly fingerprint: string;
  /** What replaced it: a client's save_key, a key-history restore, or a rollback. */
  readonly keptFor: KeyKeptFor;
}

interface KeptKeyFile extends KeptKey {
  /** The `key` option's value as config held it: base64 lines joined by "\n". */
  readonly key: string;
}

export function keyHistoryDir(dataRoot: string, repositoryDirName: string): string {
  return join(dataRoot, 'key-history', repositoryDirName);
}

export function keyFingerprint(blob: string): string {
  return createHash('sha256').update(Buffer.from(blob.replace(/\s+/g, ''), 'base64')).digest('hex').slice(0, 16);
}

/** The repository's current key blob (config's `key` option, lines joined by "\n"), or null in keyfile and none modes. */
export function currentRepositoryKey(repoPath: string): string | null {
  const value = parseIni(readFileSync(join(repoPath, 'config'), 'utf8')).get('repository')?.get('key');
  return value === undefined || value.trim() === '' ? null : value;
}

/** The last committed transaction: the newest segment that ends with a commit, as borg finds it. */
export function lastCommittedTransaction(repoPath: string): number | null {
  const segments = listSegments(repoPath);
  for (let i = segments.length - 1; i >= 0; i--) {
    const { path, segment, size } = segments[i]!;
    if (size < COMMIT_ENTRY.length) continue;
    const fd = openSync(path, 'r');
    try {
      const tail = Buffer.alloc(COMMIT_ENTRY.length);
      readSync(fd, tail, 0, tail.length, size - COMMIT_ENTRY.length);
      if (tail.equals(COMMIT_ENTRY)) return segment;
    } finally {
      closeSync(fd);
    }
  }
  return null;
}

function readKept(dir: string): KeptKeyFile[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => /^\d+\.json$/.test(name))
    .map((name) => JSON.parse(readFileSync(join(dir, name), 'utf8')) as KeptKeyFile)
    .sort((a, b) => a.n - b.n);
}

const shown = ({ n, at, txn, fingerprint, keptFor }: KeptKey): KeptKey => ({ n, at, txn, fingerprint, keptFor });

/** The kept keys, oldest first, without their blobs. */
export function listKeptKeys(dir: string): KeptKey[] {
  return readKept(dir).map(shown);
}

/** Writes `text` to `path` through a temporary file renamed over it, flushed to disk first. */
function writeAtomically(path: string, text: string, mode: number): void {
  const tmp = `${path}.borgkeep-tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dirFd = openSync(join(path, '..'), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/**
 * Keeps the repository's current key before something replaces it; null when it has none to keep
 * (keyfile and none modes). `now` and the transaction are recorded with it.
 */
export function keepCurrentKey(repoPath: string, dir: string, now: Date, keptFor: KeyKeptFor, txn = lastCommittedTransaction(repoPath)): KeptKey | null {
  const key = currentRepositoryKey(repoPath);
  if (key === null) return null;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const kept = readKept(dir);
  const entry: KeptKeyFile = {
    n: (kept.at(-1)?.n ?? 0) + 1,
    at: now.toISOString(),
    txn,
    fingerprint: keyFingerprint(key),
    keptFor,
    key,
  };
  writeAtomically(join(dir, `${entry.n}.json`), `${JSON.stringify(entry, null, 2)}\n`, 0o600);
  return shown(entry);
}

/**
 * The key that was in effect when transaction `txn` was committed: the one kept by the first
 * replacement made at or after it; null when none was replaced since (the current key was).
 */
export function keyInEffectAt(dir: string, txn: number): KeptKey | null {
  const found = readKept(dir).find((k) => k.txn !== null && k.txn >= txn);
  return found ? shown(found) : null;
}

/**
 * Replaces config's `key` option with kept key `n`, keeping the current one first (as in effect at
 * `txn`: a rollback knows the transaction it leaves); null when that already is the key.
 */
export function restoreKeptKey(
  repoPath: string,
  dir: string,
  n: number,
  now: Date,
  keptFor: KeyKeptFor,
  txn?: number | null,
): { restored: KeptKey; replaced: KeptKey | null } | null {
  const entry = readKept(dir).find((k) => k.n === n);
  if (!entry) throw new Error(`there is no kept key ${n}`);
  const current = currentRepositoryKey(repoPath);
  if (current !== null && keyFingerprint(current) === entry.fingerprint) return null;
  const replaced = txn === undefined ? keepCurrentKey(repoPath, dir, now, keptFor) : keepCurrentKey(repoPath, dir, now, keptFor, txn);
  writeAtomically(join(repoPath, 'config'), withKey(readFileSync(join(repoPath, 'config'), 'utf8'), entry.key), 0o600);
  return { restored: shown(entry), replaced };
}

/** config's text with its `key` option set to `key`, written as ConfigParser writes a multi-line value. */
export function withKey(config: string, key: string): string {
  const lines = config.split('\n');
  const value = `key = ${key.split('\n').join('\n\t')}`;
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const head = /^\[([^\]]+)\]\s*$/.exec(lines[i]!);
    if (head) {
      section = head[1]!;
      continue;
    }
    if (section === 'repository' && /^key\s*[=:]/i.test(lines[i]!)) {
      let end = i + 1;
      while (end < lines.length && /^\s+\S/.test(lines[end]!)) end++;
      lines.splice(i, end - i, value);
      return lines.join('\n');
    }
  }
  const at = lines.findIndex((l) => /^\[repository\]\s*$/.test(l));
  if (at < 0) throw new Error('config has no [repository] section');
  let end = at + 1;
  while (end < lines.length && !/^\[/.test(lines[end]!) && lines[end]!.trim() !== '') end++;
  lines.splice(end, 0, value);
  return lines.join('\n');
}
