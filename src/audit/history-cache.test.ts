import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, expect, test } from 'vitest';

import { MANIFEST_ID } from '../repository/manifest.js';
import { committedSegment, del, objectId as id, put } from '../repository/segment-fixture.js';
import { openHistoryCache } from './history-cache.js';
import { readHistory, type RepositoryHistory } from './history.js';

const root = mkdtempSync(join(tmpdir(), 'history-cache-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let repo = '';
let cacheBase = '';
let n = 0;
beforeEach(() => {
  repo = join(root, `repo-${++n}`);
  cacheBase = join(root, 'cache', `repo-${n}`);
  mkdirSync(join(repo, 'data', '0'), { recursive: true });
});

const segmentPath = (segment: number) => join(repo, 'data', '0', String(segment));
const write = (segment: number, data: Buffer) => writeFileSync(segmentPath(segment), data);
/** Transaction `segment`: puts objects `puts`, deletes `dels`, writes a manifest naming it. */
const txn = (segment: number, puts: number[], dels: number[] = []) =>
  write(segment, committedSegment(...puts.map((p) => put(id(p))), ...dels.map((d) => del(id(d))), put(MANIFEST_ID, `manifest of ${segment}`)));

/** What a reader of the history sees: every field but the functions, and every manifest's bytes. */
async function seen(h: RepositoryHistory) {
  const manifests = await Promise.all(h.transactions.map(async (t) => (t.manifest ? (await h.readManifest(t)).toString() : null)));
  const { readManifest: _, ...rest } = h;
  return { ...rest, manifests };
}
const uncached = async () => seen(await readHistory(repo));
const cached = async () => seen(await readHistory(repo, openHistoryCache(cacheBase)));

test('an audit that starts from the checkpoint reads only new segments and sees what a full walk sees', async () => {
  txn(1, [1, 2, 3]);
  utimesSync(segmentPath(1), 1_700_000_000, 1_700_000_000); // a time the test can give back exactly
  txn(2, [4], [1]);
  const first = await cached();
  expect(first).toEqual(await uncached());
  expect(first.transactions.map((t) => [t.id, t.objectsPut, t.deletedOlder])).toEqual([
    [1, 3, 0],
    [2, 1, 1],
  ]);

  // Change segment 1 in place and give it back its size and mtime: a walk from the checkpoint
  // does not read it again (that is the point), a full walk does.
  const changed = readFileSync(segmentPath(1));
  changed[changed.length - 20] ^= 0xff; // inside the manifest's data
  writeFileSync(segmentPath(1), changed);
  utimesSync(segmentPath(1), 1_700_000_000, 1_700_000_000);
  txn(3, [5, 2], [4]); // an overwrite of 2 and a delete of 4, known only from the checkpoint's live objects
  const resumed = await readHistory(repo, openHistoryCache(cacheBase));
  expect(resumed.transactions.map((t) => [t.id, t.objectsPut, t.objectsOverwritten, t.deletedOlder, t.deletedOlderFrom])).toEqual([
    [1, 3, 0, 0, []],
    [2, 1, 0, 1, [1]],
    [3, 1, 1, 1, [2]],
  ]);
  // The manifests are read from the segments, CRC-checked: the damage shows when one is read.
  await expect(readHistory(repo, openHistoryCache(cacheBase)).then((h) => h.readManifest(h.transactions[0]))).rejects.toThrow(
    /segment 1 at offset \d+: CRC mismatch in a PUT entry/,
  );
  expect((await readHistory(repo)).problems).toHaveLength(1);
});

test('after new backups, a rollback, a compaction and a broken cache file, the cached walk agrees with a full walk', async () => {
  txn(1, [1, 2, 3]);
  txn(2, [4]);
  txn(3, [5], [2]);
  expect(await cached()).toEqual(await uncached());
  txn(4, [6]);
  txn(5, [7], [6]);
  expect(await cached()).toEqual(await uncached());
  // A rollback to 3 moves 4 and 5 away: the checkpoint covers segments that are gone.
  unlinkSync(segmentPath(4));
  unlinkSync(segmentPath(5));
  const rolledBack = await cached();
  expect(rolledBack).toEqual(await uncached());
  expect(rolledBack.transactions.map((t) => t.id)).toEqual([1, 2, 3]);
  // borg reuses the numbers for the next transactions: other files, read anew.
  txn(4, [8]);
  txn(5, [9], [1]);
  expect(await cached()).toEqual(await uncached());
  // A compaction: segment 1 emptied, its live objects moved to 6.
  write(1, Buffer.alloc(0));
  write(6, committedSegment(put(id(3))));
  const compacted = await cached();
  expect(compacted).toEqual(await uncached());
  expect(compacted.compactedBefore).toBe(2);
  // Cache files cut short or overwritten with garbage are ignored, then replaced.
  writeFileSync(`${cacheBase}.history`, readFileSync(`${cacheBase}.history`).subarray(0, 30));
  writeFileSync(`${cacheBase}.audit`, 'not a cache');
  txn(7, [10]);
  expect(await cached()).toEqual(await uncached());
  expect(await cached()).toEqual(await uncached());
});

test('an uncommitted tail is never cached: once committed it is read', async () => {
  txn(1, [1]);
  write(2, committedSegment(put(id(2))).subarray(0, -9)); // no COMMIT yet
  const before = await cached();
  expect(before).toEqual(await uncached());
  expect(before.uncommittedSegments).toEqual([2]);
  txn(2, [2, 3]);
  const after = await cached();
  expect(after).toEqual(await uncached());
  expect(after.transactions.map((t) => [t.id, t.objectsPut])).toEqual([
    [1, 1],
    [2, 2],
  ]);
});
