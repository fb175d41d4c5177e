// Each archive's deduplicated size, as borg 1.2 `borg info REPO::ARCHIVE` reports it
// (stats.deduplicated_size): the stored (compressed, encrypted) bytes of the chunks that only this
// archive references. borg's Archive.calc_stats counts, with multiplicity, the archive metadata
// object, its item-metadata chunks and every item's content chunks (part files included), and
// sums the repository chunk cache's csize of each chunk whose count in the archive equals its
// count in the whole cache (ChunkIndex.stats_against). The cache's counts are the sum of every
// archive's, so "equal" is "no other archive references it"; that is what is computed here, in
// one pass over all archives, keeping per chunk only its one owner (or "shared") and its csize.
// csize: the stored length from the segment entry's header for the metadata and item-metadata
// objects, and for content chunks the csize their item's chunk list records (what borg put in its
// cache when it stored the chunk, and what a rebuilt cache takes from the same list).
//
// Needing every archive's item stream, it is computed once per set of archives and kept under
// the data directory beside the folder indexes (browse-index/REPOSITORY-ID/deduplicated-sizes.json,
// 0600), keyed by a hash of the manifest's archive ids: an archive id is the MAC of its metadata,
// which names its item chunks, which name its content chunks, so the same ids are the same figures
// whatever the transaction (and a rollback that reuses a transaction id cannot serve stale ones);
// a deletion or a new archive changes the ids and so recomputes. Holds sizes by archive id only:
// never a chunk id, never key material. Never writes into the repository.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { BorgKey } from '../repository/borg-key.js';
import { parseRepoConfig } from '../repository/repo-config.js';
import { MAX_ENTRY_SIZE } from '../repository/segments.js';
import { listManifestArchives, openArchive } from './archive-reader.js';
import { INDEX_FOLDER } from './folder-index.js';
import type { ObjectReader } from './object-reader.js';

const FILE = 'deduplicated-sizes.json';
const FORMAT = 1;
/** A chunk's owner and csize in one number: owner * CSIZE_SPAN + csize (csize < MAX_ENTRY_SIZE). */
const CSIZE_SPAN = 2 ** 27;
const SHARED = -1;
/**
 * How long an API request waits for a computation it started or joined. The API must not make a
 * request wait minutes on a big repository: it answers with the figures kept for the current
 * archives at once; when there are none it starts the computation off the request (one per set of
 * archives, one at a time per process, with a reader of its own) and waits this long for it, so a
 * small repository answers with figures at the first request, and a big one answers with null
 * ("being computed") and has them at a later request. The CLI computes on demand instead.
 */
export const REQUEST_WAIT_MS = 2000;
/** After a failed background computation, the next one for the same archives waits this long. */
const RETRY_AFTER_MS = 60_000;

/** Deduplicated bytes by archive id (hex). */
export type DeduplicatedSizes = ReadonlyMap<string, number>;

/** The key of a set of archives: the SHA-256 of their sorted ids. */
export function archiveSetKey(archiveIds: readonly string[]): string {
  return createHash('sha256').update([...archiveIds].sort().join('\n')).digest('hex');
}

/**
 * Every archive's deduplicated size, from the reader's committed manifest: reads every archive's
 * metadata and item stream (not the content chunks; only the headers of the metadata objects).
 */
export async function computeDeduplicatedSizes(objects: ObjectReader, key: BorgKey | null): Promise<DeduplicatedSizes> {
  if (MAX_ENTRY_SIZE >= CSIZE_SPAN) throw new Error('CSIZE_SPAN must exceed MAX_ENTRY_SIZE');
  const archives = listManifestArchives(objects);
  // Chunk id (latin1) → owner * CSIZE_SPAN + csize, or SHARED once a second archive references it.
  const chunks = new Map<string, number>();
  for (let owner = 0; owner < archives.length; owner++) {
    const reference = (id: Buffer, csize: number): void => {
      const k = id.toString('latin1');
      const seen = chunks.get(k);
      if (seen === undefined) chunks.set(k, owner * CSIZE_SPAN + Math.min(Math.max(csize, 0), CSIZE_SPAN - 1));
      else if (seen !== SHARED && Math.floor(seen / CSIZE_SPAN) !== owner) chunks.set(k, SHARED);
    };
    const archive = await openArchive(objects, key, archives[owner]!.name);
    const archiveId = Buffer.from(archive.info.id, 'hex');
    reference(archiveId, await objects.storedSize(archiveId));
    for (const id of archive.info.itemsChunkIds) reference(id, await objects.storedSize(id));
    for await (const item of archive.items()) for (const c of item.chunks ?? []) reference(c.id, c.csize);
  }
  const totals = archives.map(() => 0);
  for (const v of chunks.values()) if (v !== SHARED) totals[Math.floor(v / CSIZE_SPAN)]! += v % CSIZE_SPAN;
  return new Map(archives.map((a, i) => [a.id, totals[i]!]));
}

/** How the figures of one repository are opened for a computation of its own (the API's). */
export type OpenRepository = () => Promise<{ readonly objects: ObjectReader; readonly key: BorgKey | null }>;

export interface DeduplicatedSizeCache {
  /** The figures of the reader's manifest: kept ones, else computed now with the reader and kept. */
  sizes(repositoryPath: string, objects: ObjectReader, key: BorgKey | null): Promise<DeduplicatedSizes>;
  /**
   * The kept figures for these archives; when there are none, a computation with a reader of its
   * own (`open`, closed after) is started, or joined when one runs, and waited for at most
   * `waitMs`: null when it has not finished by then (it goes on, and keeps its figures), or when
   * it failed (tried again a minute later). Never throws.
   */
  within(repositoryPath: string, archiveIds: readonly string[], open: OpenRepository, waitMs: number): Promise<DeduplicatedSizes | null>;
  /** Computations run by this process (for tests). */
  readonly computations: number;
}

const perRoot = new Map<string, DeduplicatedSizeCache>();

/** The one cache of a data directory in this process (so concurrent requests share a computation). */
export function deduplicatedSizesOf(dataDir: string, now: () => number = Date.now): DeduplicatedSizeCache {
  const root = join(dataDir, INDEX_FOLDER);
  let found = perRoot.get(root);
  if (!found) perRoot.set(root, (found = createDeduplicatedSizeCache(root, now)));
  return found;
}

export function createDeduplicatedSizeCache(root: string, now: () => number = Date.now): DeduplicatedSizeCache {
  const running = new Map<string, Promise<DeduplicatedSizes | null>>();
  const failedAt = new Map<string, number>();
  // One computation at a time in this process: each reads whole item streams.
  let queue: Promise<unknown> = Promise.resolve();
  let computations = 0;

  const dirOf = (repositoryPath: string): string => join(root, parseRepoConfig(readFileSync(join(repositoryPath, 'config'), 'utf8')).id.toString('hex'));

  function read(dir: string, setKey: string): DeduplicatedSizes | null {
    try {
      const kept = JSON.parse(readFileSync(join(dir, FILE), 'utf8')) as { format?: unknown; archives?: unknown; sizes?: unknown };
      if (kept.format !== FORMAT || kept.archives !== setKey || typeof kept.sizes !== 'object' || kept.sizes === null) return null;
      const sizes = new Map<string, number>();
      for (const [id, n] of Object.entries(kept.sizes)) {
        if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return null;
        sizes.set(id, n);
      }
      return sizes;
    } catch {
      // None kept, or not whole: computed again.
      return null;
    }
  }

  function keep(dir: string, setKey: string, transactionId: number, sizes: DeduplicatedSizes): void {
    const temp = join(dir, `${FILE}.tmp-${randomBytes(6).toString('hex')}`);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(temp, JSON.stringify({ format: FORMAT, archives: setKey, transactionId, sizes: Object.fromEntries(sizes) }), { mode: 0o600 });
      renameSync(temp, join(dir, FILE));
    } catch {
      // The data directory cannot hold it (no space, no permission): computed again next time.
      try {
        unlinkSync(temp);
      } catch {
        // Never written.
      }
    }
  }

  async function sizes(repositoryPath: string, objects: ObjectReader, key: BorgKey | null): Promise<DeduplicatedSizes> {
    const dir = dirOf(repositoryPath);
    const setKey = archiveSetKey(listManifestArchives(objects).map((a) => a.id));
    const hit = read(dir, setKey);
    if (hit) return hit;
    computations += 1;
    const computed = await computeDeduplicatedSizes(objects, key);
    keep(dir, setKey, objects.transactionId, computed);
    return computed;
  }

  return {
    sizes,
    async within(repositoryPath, archiveIds, open, waitMs) {
      let dir: string;
      try {
        dir = dirOf(repositoryPath);
      } catch {
        // Not initialised yet (no config): nothing to compute.
        return null;
      }
      const setKey = archiveSetKey(archiveIds);
      const hit = read(dir, setKey);
      if (hit) return hit;
      let shared = running.get(setKey);
      if (!shared) {
        const failed = failedAt.get(setKey);
        if (failed !== undefined && now() - failed < RETRY_AFTER_MS) return null;
        const run = async (): Promise<DeduplicatedSizes | null> => {
          const { objects, key } = await open();
          try {
            const computed = await sizes(repositoryPath, objects, key);
            // The committed manifest may be newer than the list asked about: then not these figures.
            return archiveSetKey([...computed.keys()]) === setKey ? computed : null;
          } finally {
            await objects.close();
          }
        };
        shared = queue
          .then(run, run)
          .catch(() => {
            // A compaction or deletion meanwhile, a damaged object: the figures stay unknown for now.
            failedAt.set(setKey, now());
            return null;
          })
          .finally(() => running.delete(setKey));
        queue = shared;
        running.set(setKey, shared);
      }
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), waitMs);
      });
      try {
        return await Promise.race([shared, late]);
      } finally {
        clearTimeout(timer);
      }
    },
    get computations() {
      return computations;
    },
  };
}
