// Deleting a repository never destroys its files: its directory moves to <data-dir>/trash/ under
// its random name and the time. Shared by `borgkeep repo delete` and the HTTP API, which hand it
// to RepositoryStore.deleteRepository so a failed move leaves the registration in place.

import { existsSync, lstatSync, mkdirSync, renameSync } from 'node:fs';
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
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INTERNAL', `cannot move ${source} to the trash: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { to: target, undo: async () => renameSync(target, source) };
}
