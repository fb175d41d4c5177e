// How much disk a repository directory uses, for the dashboard's quota bar and the quota alerts.
// Walking a big repository's segments takes a while, so each answer is kept for ten minutes, and
// an answer older than that is still given at once while a fresh walk runs behind it (a few walks
// at a time): the dashboard of a thousand repositories never waits on a thousand walks, except
// for the very first look. For a repository written since its answer, the walk goes first in the
// queue and the request waits for it at most SIZE_WRITE_WAIT_MS (a backup's size shows in the
// answer right after it, as an admin watching it expects), else gets the answer held: the request
// path waits longer on a walk only when no answer was ever made (the first look after start). A
// directory that does not exist (not initialised yet) is null. Never throws: a directory that
// cannot be read is null too. Never: runs more than SIZE_REFRESH_CONCURRENCY walks in the
// background, or holds a request that has an answer longer than SIZE_WRITE_WAIT_MS.

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

// Ten minutes, not one: a write through borgkeep (its last write moves) has the repository walked
// again at once anyway, so this period only catches what changed on disk otherwise, and walking a
// thousand repositories every minute cost a loaded server a tenth of its CPU (issue 15).
export const SIZE_CACHE_MS = 10 * 60_000;
/**
 * A repository written again soon after a walk for an earlier write waits this long for its next
 * walk: a backup's first write is walked at once (its size shows right after it), but one that
 * writes every few seconds (checkpoints, a busy ledger) is not walked at each answer, which cost
 * a loaded server a twentieth of its CPU (bench/api.bench.mjs, twenty backups writing).
 */
export const SIZE_REWALK_AFTER_WRITE_MS = 15_000;
/** How long a request for a repository written since its answer waits for the walk after the write. */
export const SIZE_WRITE_WAIT_MS = 100;
/** Walks running at once when refreshing answers in the background. */
export const SIZE_REFRESH_CONCURRENCY = 2;

/** A repository directory's size in bytes (null: not there); `changedAt`: its last write, so an older answer is not given. */
export type SizeOf = (path: string, changedAt?: Date | null) => Promise<number | null>;

export async function directorySize(path: string): Promise<number | null> {
  let total = 0;
  try {
    const entries = await readdir(path, { withFileTypes: true });
    for (const entry of entries) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) total += (await directorySize(child)) ?? 0;
      else if (entry.isFile()) total += (await lstat(child)).size;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  return total;
}

export function createRepositorySizer({ now, measure = directorySize }: { now: () => Date; measure?: (path: string) => Promise<number | null> }) {
  // `at`: when the walk that gave `size` started (a write during a walk is not in it);
  // `writeWalkAt`: when the last walk started for a write (null: none yet).
  // `next`: the walk queued or running for the entry, with its answer once done.
  const cache = new Map<string, { at: number; size: Promise<number | null>; refreshing: boolean; writeWalkAt: number | null; next?: Promise<number | null> }>();
  const done = new Map<string, (size: number | null) => void>();
  const queue: string[] = [];
  let running = 0;

  const refreshNext = (): void => {
    while (running < SIZE_REFRESH_CONCURRENCY && queue.length > 0) {
      const path = queue.shift()!;
      running++;
      const at = now().getTime();
      const writeWalkAt = cache.get(path)?.writeWalkAt ?? null;
      void measure(path)
        .catch(() => null)
        .then((size) => {
          cache.set(path, { at, size: Promise.resolve(size), refreshing: false, writeWalkAt });
          done.get(path)?.(size);
          done.delete(path);
        })
        .finally(() => {
          running--;
          refreshNext();
        });
    }
  };

  return {
    /** `changedAt`: when the repository last changed (its last write); for an answer older, its walk goes first and is waited for up to SIZE_WRITE_WAIT_MS. */
    sizeOf(path: string, changedAt?: Date | null): Promise<number | null> {
      const t = now().getTime();
      const hit = cache.get(path);
      if (!hit) {
        const size = measure(path).catch(() => null);
        cache.set(path, { at: t, size, refreshing: false, writeWalkAt: null });
        return size;
      }
      if (!hit.refreshing) {
        if (changedAt && hit.at < changedAt.getTime() && (hit.writeWalkAt === null || t - hit.writeWalkAt >= SIZE_REWALK_AFTER_WRITE_MS)) {
          // Written since: first in line, ahead of the ten-minute-old answers.
          hit.refreshing = true;
          hit.writeWalkAt = t;
          hit.next = new Promise((resolve) => done.set(path, resolve));
          queue.unshift(path);
          refreshNext();
        } else if (t - hit.at >= SIZE_CACHE_MS) {
          hit.refreshing = true;
          queue.push(path);
          refreshNext();
        }
      }
      if (hit.next && changedAt && hit.at < changedAt.getTime()) {
        // Written since the answer held, its walk queued or running: wait a little for it.
        const next = hit.next;
        return Promise.race([next, new Promise<void>((r) => setTimeout(r, SIZE_WRITE_WAIT_MS).unref()).then(() => hit.size)]);
      }
      return hit.size;
    },
  };
}
