// Deleting a repository never destroys its files: its directory moves to <data-dir>/trash/ under
// its random name and the time, with a note beside it (<entry>.json: the name, quota and interval
// it had) from which `borgkeep repo restore` registers it again. Shared by `borgkeep repo delete`
// and the HTTP API, which hand it to RepositoryStore.deleteRepository so a failed move leaves the
// registration in place.

import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BorgkeepError } from '../errors.js';
import type { DataDirPaths } from './data-dir.js';
import type { MovedFiles } from './repository-store.js';
import type { Repository } from './types.js';

/** Moves the repository's directory (if borg ever created it) to trash/<dirName>-<UTC time>. */
export function moveToTrash(paths: DataDirPaths, repository: Repository, now: Date): MovedFiles | null {
  const source = paths.repository(repository.dirName);
  try {
    lstatSync(source);
  } catch {
    return null;
  }
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.[0-9]{3}Z$/, 'Z');
  let target = join(paths.trash, `${repository.dirName}-${stamp}`);
  for (let n = 2; existsSync(target); n += 1) target = join(paths.trash, `${repository.dirName}-${stamp}-${n}`);
  try {
    mkdirSync(paths.trash, { recursive: true, mode: 0o700 });
    renameSync(source, target);
    const note: TrashNote = {
      name: repository.name,
      dirName: repository.dirName,
      quotaBytes: repository.quotaBytes,
      expectedIntervalSeconds: repository.expectedIntervalSeconds,
      deletedAt: now.toISOString(),
    };
    writeFileSync(`${target}.json`, `${JSON.stringify(note)}\n`, { mode: 0o600 });
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INTERNAL', `cannot move ${source} to the trash: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return {
    to: target,
    undo: async () => {
      renameSync(target, source);
      rmSync(`${target}.json`, { force: true });
    },
  };
}

/** What a trash entry's note says of the repository it was. */
export interface TrashNote {
  readonly name: string;
  readonly dirName: string;
  readonly quotaBytes: number | null;
  readonly expectedIntervalSeconds: number;
  readonly deletedAt: string;
}

export interface TrashEntry {
  /** The directory in the trash. */
  readonly path: string;
  readonly note: TrashNote;
}

/** The trash entries of repositories once named `name`, newest first. */
export function findInTrash(paths: DataDirPaths, name: string): TrashEntry[] {
  let files: string[];
  try {
    files = readdirSync(paths.trash);
  } catch {
    return [];
  }
  const found: TrashEntry[] = [];
  for (const f of files) {
    if (!f.endsWith('.json')) continue;
    const path = join(paths.trash, f.slice(0, -'.json'.length));
    try {
      const note = JSON.parse(readFileSync(join(paths.trash, f), 'utf8')) as TrashNote;
      if (note.name === name && typeof note.dirName === 'string' && /^[0-9a-f]{16}$/.test(note.dirName) && lstatSync(path).isDirectory()) found.push({ path, note });
    } catch {
      // a note that cannot be read, or an entry removed by hand: not restorable by name
    }
  }
  return found.sort((a, b) => b.note.deletedAt.localeCompare(a.note.deletedAt));
}

/** Moves a trash entry back to the repositories' folder as `dirName`; the note goes. */
export function moveBackFromTrash(paths: DataDirPaths, entry: TrashEntry, dirName: string): void {
  const target = paths.repository(dirName);
  if (existsSync(target)) throw new BorgkeepError('BK_ERR_CONFLICT', `the repositories' folder already has ${dirName}`);
  renameSync(entry.path, target);
  rmSync(`${entry.path}.json`, { force: true });
}
