// How much disk a repository directory uses, for the dashboard's quota bar and the quota alerts.
// Walking a big repository's segments takes a while, so each answer is kept for a minute, and an
// answer older than that is still given at once while a fresh walk runs behind it (a few walks
// at a time): the dashboard of a thousand repositories never waits on a thousand walks, except
// for the very first look. An answer from before the repository's last write is not given: that
// repository is walked again at once, so a backup's size shows as soon as it is listed. A
// directory that does not exist (not initialised yet) is null. Never throws: a directory that
// cannot be read is null too.

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const SIZE_CACHE_MS = 60_000;
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
  const cache = new Map<string, { at: number; size: Promise<number | null>; refreshing: boolean }>();
  const queue: string[] = [];
  let running = 0;

  const refreshNext = (): void => {
    while (running < SIZE_REFRESH_CONCURRENCY && queue.length > 0) {
      const path = queue.shift()!;
      running++;
      void measure(path)
        .catch(() => null)
        .then((size) => {
          cache.set(path, { at: now().getTime(), size: Promise.resolve(size), refreshing: false });
        })
        .finally(() => {
          running--;
          refreshNext();
        });
    }
  };

  return {
    /** `changedAt`: when the repository last changed (its last write); an answer older is measured anew. */
    sizeOf(path: string, changedAt?: Date | null): Promise<number | null> {
      const t = now().getTime();
      const hit = cache.get(path);
      if (!hit || (changedAt && hit.at < changedAt.getTime())) {
        const size = measure(path).catch(() => null);
        cache.set(path, { at: t, size, refreshing: false });
        return size;
      }
      if (t - hit.at >= SIZE_CACHE_MS && !hit.refreshing) {
        hit.refreshing = true;
        queue.push(path);
        refreshNext();
      }
      return hit.size;
    },
  };
}
