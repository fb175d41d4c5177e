// What the archives of a repository reference, for `borgkeep verify`: which archives depend on a
// damaged or missing object (its metadata object, its item-metadata chunks, or a file's chunk),
// and which chunks that new archives reference the committed index does not hold. Built on the
// browse readers (src/browse/object-reader.ts, archive-reader.ts): no walker of its own.
// Read-only, no lock; errors name objects and archives, never a path or the key.

import { openArchive, listManifestArchives, itemChunkIds } from '../browse/archive-reader.js';
import { openObjectReader, type ObjectReader } from '../browse/object-reader.js';
import type { BorgKey, KeyMode } from '../repository/borg-key.js';
import type { ArchiveReferences } from './verify-service.js';

const hex = (id: Buffer) => id.toString('hex');

/**
 * Every object id an archive uses, in order: its metadata object, its item-metadata chunks, then
 * its files' chunks. An object that cannot be read (damaged, missing) ends the walk of that
 * archive: `onUnreadable` says which, and what follows it is not known.
 */
async function walkArchive(objects: ObjectReader, key: BorgKey | null, name: string, archiveId: Buffer, visit: (id: Buffer) => void, onUnreadable: (why: string) => void): Promise<void> {
  visit(archiveId);
  let archive;
  try {
    archive = await openArchive(objects, key, name);
  } catch (error) {
    onUnreadable((error as Error).message);
    return;
  }
  for (const id of archive.info.itemsChunkIds) visit(id);
  try {
    for await (const item of archive.items()) for (const id of itemChunkIds(item)) visit(id);
  } catch (error) {
    onUnreadable((error as Error).message);
  }
}

/** The seam verify-service.ts takes, over the repository's committed state. */
export async function browseArchiveReferences(repoPath: string, _mode: KeyMode, key: BorgKey | null): Promise<ArchiveReferences> {
  const objects = await openObjectReader(repoPath, key, { verifyIds: true });
  return {
    async archivesUsing(ids) {
      const using = new Map<string, string[]>();
      if (ids.size === 0) return using;
      for (const a of listManifestArchives(objects)) {
        const found = new Set<string>();
        await walkArchive(
          objects,
          key,
          a.name,
          Buffer.from(a.id, 'hex'),
          (id) => {
            const h = hex(id);
            if (ids.has(h)) found.add(h);
          },
          // The walk stops at a damaged object of the archive, which is one of `ids` (found
          // above when it is the metadata or an item-metadata chunk) or damage of its own.
          () => undefined,
        );
        for (const h of found) using.set(h, [...(using.get(h) ?? []), a.name]);
      }
      return using;
    },

    async missingChunks(isNew) {
      const checked: string[] = [];
      const missing = new Map<string, string[]>();
      for (const a of listManifestArchives(objects)) {
        const archiveId = Buffer.from(a.id, 'hex');
        if (!isNew(archiveId)) continue;
        checked.push(a.name);
        const absent = new Set<string>();
        await walkArchive(
          objects,
          key,
          a.name,
          archiveId,
          (id) => {
            if (!objects.has(id)) absent.add(hex(id));
          },
          () => undefined,
        );
        for (const h of absent) missing.set(h, [...(missing.get(h) ?? []), a.name]);
      }
      return { checked, missing };
    },

    bytesRead: () => objects.bytesRead,
    close: () => objects.close(),
  };
}
