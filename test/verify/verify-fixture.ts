// What the verify tests share: running `borgkeep verify`, finding the objects of a file in an
// archive (through the browse readers, with the key the test knows), and damaging them on disk
// the ways bit rot or a hostile writer would: a flipped bit (with the entry's CRC made right
// again, so only the MAC or the id check can notice), and another valid object's bytes stored
// under an id.

import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { expect } from 'vitest';

import { itemChunkIds, openArchive } from '../../src/browse/archive-reader.js';
import { openObjectReader } from '../../src/browse/object-reader.js';
import { unlockKey, type BorgKey } from '../../src/repository/borg-key.js';
import { latestIndexTransaction, openCommittedIndex } from '../../src/repository/hash-index.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import { PASSPHRASE, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

export interface VerifyJson {
  repository: string;
  verdict: 'intact' | 'damaged';
  scope: 'changed' | 'all';
  fromTxn: number | null;
  throughTxn: number;
  objectsRead: number;
  bytesRead: number;
  archivesChecked: string[];
  findings: Array<{ kind: string; id: string | null; sentence: string; archives: string[] | null }>;
  affectedArchives: string[];
  archivesUnreadable: string | null;
}

/** `borgkeep verify NAME [...args] --json`, its exit code and its report. */
export async function verifyJson(env: BorgkeepEnv, name: string, args: string[] = []): Promise<{ code: number; report: VerifyJson; stderr: string }> {
  const r = await env.cli(['verify', name, ...args, '--json']);
  expect(r.code, r.stderr).not.toBe(2);
  return { code: r.code, report: JSON.parse(r.stdout) as VerifyJson, stderr: r.stderr };
}

/** The repository's key as borg unlocks it (null for mode none). */
export function repositoryKey(repoPath: string): BorgKey | null {
  const config = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
  return config.key ? unlockKey(config.key, PASSPHRASE, config.id) : null;
}

/** The chunk ids of the file whose path ends with `suffix` in `archive`. */
export async function chunksOf(repoPath: string, archive: string, suffix: string): Promise<Buffer[]> {
  const key = repositoryKey(repoPath);
  const objects = await openObjectReader(repoPath, key);
  try {
    const a = await openArchive(objects, key, archive);
    for await (const item of a.items()) if (item.path.toString().endsWith(suffix)) return itemChunkIds(item);
    throw new Error(`no ${suffix} in ${archive}`);
  } finally {
    await objects.close();
  }
}

/** Where the committed index places `id`: the segment file and the entry's offset. */
export function locate(repoPath: string, id: Buffer): { path: string; offset: number } {
  const index = openCommittedIndex(repoPath, latestIndexTransaction(repoPath)!);
  try {
    const at = index.lookup(id);
    if (!at) throw new Error(`${id.toString('hex')} is not in the index`);
    return { path: join(repoPath, 'data', String(Math.floor(at.segment / 1000)), String(at.segment)), offset: at.offset };
  } finally {
    index.close();
  }
}

function readEntry(path: string, offset: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(9);
    readSync(fd, header, 0, 9, offset);
    const entry = Buffer.alloc(header.readUInt32LE(4));
    readSync(fd, entry, 0, entry.length, offset);
    return entry;
  } finally {
    closeSync(fd);
  }
}

function writeEntry(path: string, offset: number, entry: Buffer): void {
  entry.writeUInt32LE(crc32(entry.subarray(4)), 0); // a CRC that fits again
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, entry, 0, entry.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Flips one bit in the middle of the object's stored bytes, and makes its entry's CRC right again. */
export function flipBit(repoPath: string, id: Buffer): void {
  const { path, offset } = locate(repoPath, id);
  const entry = readEntry(path, offset);
  entry[41 + Math.floor((entry.length - 41) / 2)] ^= 0x10;
  writeEntry(path, offset, entry);
}

/** Stores the bytes of object `other` under `id` (same stored size), CRC made right: a valid object under a wrong id. */
export function swapContent(repoPath: string, id: Buffer, other: Buffer): void {
  const a = locate(repoPath, id);
  const b = locate(repoPath, other);
  const entry = readEntry(a.path, a.offset);
  const source = readEntry(b.path, b.offset);
  expect(source.length).toBe(entry.length);
  source.copy(entry, 41, 41);
  writeEntry(a.path, a.offset, entry);
}
