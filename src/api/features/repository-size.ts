// How much disk a repository directory uses, for the dashboard's quota bar. Walking a big
// repository's segments takes a while, so each answer is kept for a minute; a directory that does
// not exist (not initialised yet) is null.

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const SIZE_CACHE_MS = 60_000;

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
  const cache = new Map<string, { at: number; size: Promise<number | null> }>();
  return {
    sizeOf(path: string): Promise<number | null> {
      const t = now().getTime();
      const hit = cache.get(path);
      if (hit && t - hit.at < SIZE_CACHE_MS) return hit.size;
      const size = measure(path).catch(() => null);
      cache.set(path, { at: t, size });
      return size;
    },
  };
}
