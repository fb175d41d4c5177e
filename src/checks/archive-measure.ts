// Reads one archive for its checks (check-rules.ts): whether its metadata, its items and its chunk
// list read (every chunk a file references must be in the committed index; file content is not
// decrypted: that is `borgkeep verify`'s work), which required path patterns match, its file count
// and original size, and, against the previous archive of the same prefix, how many files are new
// or have new content (by chunk ids, borg diff's notion of a content change: archive-diff.ts) and
// how many of its bytes are in chunks the previous archive did not reference.
//
// On the browse readers (src/browse/): read-only, never borg's lock, never a write into the
// repository. It holds the previous archive's paths (with a 20-byte digest of each file's chunk
// ids) and its chunk ids (16 bytes each) in memory while it compares: about 100 bytes per file
// and per chunk.

import { createHash } from 'node:crypto';

import { itemKind, openArchive, type ArchiveItem } from '../browse/archive-reader.js';
import { BrowseError, type ObjectReader } from '../browse/object-reader.js';
import { contentSize, pathMatcher } from '../browse/browse.js';
import type { BorgKey } from '../repository/borg-key.js';
import type { ArchiveMeasure, CheckRules } from './check-rules.js';

/** The repository changed under the reader (a compaction removed a segment): check again later. */
export class CheckLater extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckLater';
  }
}

const latin1 = (b: Buffer) => b.toString('latin1');
const chunkKey = (id: Buffer) => id.toString('latin1', 0, 16);
const isFile = (item: ArchiveItem) => {
  const kind = itemKind(item);
  return kind === 'file' || (kind === 'hardlink' && (item.mode & 0o170000) === 0o100000);
};

/** A file's content as a short digest: its chunk ids, or for a later hardlink the path it links to. */
function fingerprint(item: ArchiveItem): string {
  if (!item.chunks) return `link:${item.source ? latin1(item.source) : ''}`;
  const h = createHash('sha1');
  for (const c of item.chunks) h.update(c.id);
  return h.digest().toString('latin1');
}

function rethrowIfLater(error: unknown): void {
  if (error instanceof BrowseError && /compacted meanwhile/.test(error.message)) throw new CheckLater(error.message);
  if (!(error instanceof BrowseError)) throw error;
}

interface PreviousFacts {
  readonly files: number;
  readonly size: number;
  readonly paths: Map<string, string> | null;
  readonly chunks: Set<string> | null;
}

async function readPrevious(objects: ObjectReader, key: BorgKey | null, name: string, wantPaths: boolean, wantChunks: boolean): Promise<PreviousFacts> {
  const archive = await openArchive(objects, key, name);
  const paths = wantPaths ? new Map<string, string>() : null;
  const chunks = wantChunks ? new Set<string>() : null;
  let files = 0;
  let size = 0;
  for await (const item of archive.items()) {
    if (chunks && item.chunks) for (const c of item.chunks) chunks.add(chunkKey(c.id));
    if (!isFile(item)) continue;
    files++;
    size += contentSize(item.chunks);
    paths?.set(latin1(item.path), fingerprint(item));
  }
  return { files, size, paths, chunks };
}

interface Required {
  readonly pattern: string;
  readonly matches: (path: string) => boolean;
  readonly foldersOnly: boolean;
  found: boolean;
}

/**
 * Measures archive `name` (and compares it with `previous`, the previous archive of its prefix,
 * when a comparing rule is set). A BrowseError while reading the archive is its `unreadable`; one
 * while reading the previous archive leaves `previous` null with the reason. CheckLater when the
 * repository was compacted under the reader.
 */
export async function measureArchive(objects: ObjectReader, key: BorgKey | null, name: string, previous: string | null, rules: CheckRules): Promise<ArchiveMeasure> {
  const compares = rules.maxCountChange !== null || rules.maxSizeChange !== null || rules.maxChanged !== null || rules.maxNewData !== null;
  let before: PreviousFacts | null = null;
  let previousUnreadable: string | null = null;
  if (previous !== null && compares) {
    try {
      before = await readPrevious(objects, key, previous, rules.maxChanged !== null, rules.maxNewData !== null);
    } catch (error) {
      rethrowIfLater(error);
      previousUnreadable = (error as Error).message;
    }
  }

  const required: Required[] = rules.requiredPaths.map((p) => ({ pattern: p, matches: pathMatcher(p.replace(/\/+$/, '')), foldersOnly: /\/$/.test(p), found: false }));
  let open = required.length;
  // Folders implied by the paths below them (borg stores no item for the parents of what was
  // backed up) count as folders; each is looked at once.
  const folders = new Set<string>();
  const look = (typed: string, isFolder: boolean) => {
    for (const r of required) {
      if (r.found || (r.foldersOnly && !isFolder)) continue;
      if (r.matches(typed)) {
        r.found = true;
        open--;
      }
    }
  };

  let files = 0;
  let size = 0;
  let changedFiles = 0;
  let newDataBytes = 0;
  try {
    const archive = await openArchive(objects, key, name);
    for await (const item of archive.items()) {
      for (const c of item.chunks ?? []) {
        if (!objects.has(c.id)) throw new BrowseError(`chunk ${c.id.subarray(0, 8).toString('hex')} of '${item.path.toString('utf8')}' is missing from the repository`);
        if (before?.chunks && !before.chunks.has(chunkKey(c.id))) newDataBytes += c.size;
      }
      if (open > 0) {
        const typed = item.path.toString('utf8');
        const parts = typed.split('/');
        for (let i = 1; i < parts.length && open > 0; i++) {
          const folder = parts.slice(0, i).join('/');
          if (folders.has(folder)) continue;
          folders.add(folder);
          look(folder, true);
        }
        const isFolder = itemKind(item) === 'directory';
        if (isFolder) folders.add(typed);
        if (open > 0) look(typed, isFolder);
      }
      if (!isFile(item)) continue;
      files++;
      size += contentSize(item.chunks);
      if (before?.paths && before.paths.get(latin1(item.path)) !== fingerprint(item)) changedFiles++;
    }
  } catch (error) {
    rethrowIfLater(error);
    return { unreadable: (error as Error).message, files, size, missingPaths: [], previous: null };
  }
  return {
    unreadable: null,
    files,
    size,
    missingPaths: required.filter((r) => !r.found).map((r) => r.pattern),
    previous: before && previous !== null ? { name: previous, files: before.files, size: before.size, changedFiles, newDataBytes } : null,
    previousUnreadable,
  };
}
