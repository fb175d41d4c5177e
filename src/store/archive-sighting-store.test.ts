import { afterEach, beforeEach, expect, test } from 'vitest';

import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import type { Store } from './database.js';
import type { ArchiveSightingRecord } from './archive-sighting-store.js';

let t: TempStore;
let store: Store;
beforeEach(async () => {
  t = await openTempStore();
  store = t.store;
});
afterEach(() => t.cleanup());

const seen = (archiveId: string, name: string, at: string, transactionId: number, baseline = false): ArchiveSightingRecord => ({
  archiveId,
  name,
  clientTime: '2026-11-23T10:00:00.000000',
  firstSeenAt: new Date(at),
  transactionId,
  baseline,
});

test('the earliest sighting of an archive id and name is kept; a later or equal one never replaces it', async () => {
  const repo = await store.createRepository({ name: 'photos', quotaBytes: null });
  const other = await store.createRepository({ name: 'mail', quotaBytes: null });
  await store.recordArchiveSightings(repo.id, [seen('aa', 'mon', '2026-11-23T10:00:00Z', 5), seen('bb', 'tue', '2026-11-24T10:00:00Z', 7)]);
  // Seen again by a later audit (same transaction, or a history re-read after a rollback).
  await store.recordArchiveSightings(repo.id, [seen('aa', 'mon', '2026-11-25T10:00:00Z', 9), seen('aa', 'mon', '2026-11-23T10:00:00Z', 5, true)]);
  // An earlier sighting (from before a compaction's baseline) moves it back.
  await store.recordArchiveSightings(repo.id, [seen('bb', 'tue', '2026-11-24T09:00:00Z', 6)]);
  // The same id under another name is a sighting of its own; other repositories are apart.
  await store.recordArchiveSightings(repo.id, [seen('aa', 'mon-renamed', '2026-11-26T10:00:00Z', 11)]);
  await store.recordArchiveSightings(other.id, [seen('aa', 'mon', '2020-01-01T00:00:00Z', 1)]);
  await store.recordArchiveSightings(repo.id, []);
  const list = await store.listArchiveSightings(repo.id);
  expect(list.map((s) => [s.archiveId, s.name, s.firstSeenAt.toISOString(), s.transactionId, s.baseline])).toEqual([
    ['aa', 'mon', '2026-11-23T10:00:00.000Z', 5, false],
    ['bb', 'tue', '2026-11-24T09:00:00.000Z', 6, false],
    ['aa', 'mon-renamed', '2026-11-26T10:00:00.000Z', 11, false],
  ]);
  // A baseline sighting ("then or earlier") gives way to an exact one at the same moment.
  await store.recordArchiveSightings(repo.id, [seen('cc', 'wed', '2026-11-27T10:00:00Z', 12, true)]);
  await store.recordArchiveSightings(repo.id, [seen('cc', 'wed', '2026-11-27T10:00:00Z', 12, false)]);
  expect((await store.listArchiveSightings(repo.id)).find((s) => s.archiveId === 'cc')?.baseline).toBe(false);
});

test('more sightings than one statement can bind are recorded', async () => {
  const repo = await store.createRepository({ name: 'photos', quotaBytes: null });
  const many = Array.from({ length: 5001 }, (_, i) => seen(i.toString(16).padStart(64, '0'), `a${i}`, '2026-11-23T10:00:00Z', i));
  await store.recordArchiveSightings(repo.id, many);
  expect(await store.listArchiveSightings(repo.id)).toHaveLength(5001);
});
