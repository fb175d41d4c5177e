// The kept keys in a temporary directory: config rewritten as ConfigParser writes it, which kept
// key was in effect at a transaction, restores that keep the key they replace.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { parseRepoConfig } from '../repository/repo-config.js';
import { COMMIT_ENTRY } from '../repository/segments.js';
import { currentRepositoryKey, keepCurrentKey, keyFingerprint, keyInEffectAt, lastCommittedTransaction, listKeptKeys, restoreKeptKey, withKey } from './key-history.js';

const ID = 'ab'.repeat(32);
const KEY_A = ['hqlhbGdvcml0aG2mc2hhMjU2pGRhdGHaAN4RCbjJvuL4dLsOUGUc+pL4YR5LXp5tWN83aU', 'LymolLT6gDc7MAd5LZNw8rfRK25VNwrQE51RzRn8zBRuxEWTa49Tf2blGbMyf0uuvOEMsj', 'AAAA'].join('\n');
const KEY_B = ['hqlhbGdvcml0aG2mc2hhMjU2pGRhdGHaAN4BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB', 'BBBB'].join('\n');
const config = (key: string) =>
  `[repository]\nversion = 1\nsegments_per_dir = 1000\nmax_segment_size = 524288000\nappend_only = 0\nstorage_quota = 0\nadditional_free_space = 0\nid = ${ID}\nkey = ${key.split('\n').join('\n\t')}\n\n`;

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function repository(key: string, committedSegments: number[]): { repo: string; kept: string } {
  const root = mkdtempSync(join(tmpdir(), 'key-history-'));
  dirs.push(root);
  const repo = join(root, 'repo');
  mkdirSync(join(repo, 'data', '0'), { recursive: true });
  writeFileSync(join(repo, 'config'), config(key));
  for (const n of committedSegments) writeFileSync(join(repo, 'data', '0', String(n)), Buffer.concat([Buffer.from('BORG_SEG'), COMMIT_ENTRY]));
  return { repo, kept: join(root, 'key-history', 'repo') };
}

describe('key history', () => {
  it('rewrites only the key option, as ConfigParser writes a multi-line value, and borgkeep reads it back', () => {
    const text = withKey(config(KEY_A), KEY_B);
    expect(text).toBe(config(KEY_B));
    expect(parseRepoConfig(text).key).toBe(KEY_B.replace(/\s+/g, ''));
    // A config without a key (keyfile mode) gets one in its section.
    const keyless = config(KEY_A).replace(/key = [^]*$/, '\n');
    expect(parseRepoConfig(withKey(keyless, KEY_A)).key).toBe(KEY_A.replace(/\s+/g, ''));
  });

  it('keeps the current key with the last committed transaction; an uncommitted tail does not count', () => {
    const { repo, kept } = repository(KEY_A, [1, 2, 5]);
    writeFileSync(join(repo, 'data', '0', '6'), Buffer.from('BORG_SEGhalf-written'));
    expect(lastCommittedTransaction(repo)).toBe(5);
    const k = keepCurrentKey(repo, kept, new Date('2026-01-02T03:04:05Z'), 'save_key');
    expect(k).toEqual({ n: 1, at: '2026-01-02T03:04:05.000Z', txn: 5, fingerprint: keyFingerprint(KEY_A), keptFor: 'save_key' });
    expect(listKeptKeys(kept)).toEqual([k]);
    // Listings never carry the blob.
    expect(JSON.stringify(listKeptKeys(kept))).not.toContain(KEY_A.slice(0, 20));
  });

  it('finds the key in effect at a transaction and restores it, keeping the one it replaces', () => {
    const { repo, kept } = repository(KEY_A, [1, 3]);
    keepCurrentKey(repo, kept, new Date(), 'save_key'); // A was in effect through 3
    writeFileSync(join(repo, 'config'), config(KEY_B));
    writeFileSync(join(repo, 'data', '0', '4'), Buffer.concat([Buffer.from('BORG_SEG'), COMMIT_ENTRY]));
    expect(keyInEffectAt(kept, 1)?.n).toBe(1);
    expect(keyInEffectAt(kept, 3)?.n).toBe(1);
    expect(keyInEffectAt(kept, 4)).toBeNull(); // B, the current key, was
    const r = restoreKeptKey(repo, kept, 1, new Date(), 'rollback', 4);
    expect(r?.restored.n).toBe(1);
    expect(r?.replaced).toMatchObject({ n: 2, txn: 4, fingerprint: keyFingerprint(KEY_B), keptFor: 'rollback' });
    expect(currentRepositoryKey(repo)).toBe(KEY_A);
    expect(readFileSync(join(repo, 'config'), 'utf8')).toBe(config(KEY_A));
    // Restoring the key that is already there changes nothing and keeps nothing.
    expect(restoreKeptKey(repo, kept, 1, new Date(), 'restore')).toBeNull();
    expect(listKeptKeys(kept)).toHaveLength(2);
  });
});
