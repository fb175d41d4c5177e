// The standalone borg binaries of the config file (pullBorgBinaries: client platform -> a file on
// this server), checked when `borgkeep serve` starts: a file that is missing, unreadable or not a
// regular file stops the start with one sentence, rather than failing every job of that platform
// later. A job opens the file again when it uploads it (pull-runner.ts), so a file replaced by a
// newer borg is taken without a restart.
//
// Must never read more than the first byte (the check runs at every start, the files are ~30 MB).

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

import { BorgkeepError, invalidInput } from '../errors.js';

/** Throws one sentence for the first configured binary that cannot be uploaded. */
export function checkBorgBinaries(binaries: Readonly<Record<string, string>>): void {
  for (const [platform, path] of Object.entries(binaries)) {
    const where = `config file, pullBorgBinaries.${platform}`;
    let fd: number | null = null;
    try {
      fd = openSync(path, 'r');
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw invalidInput(`${where}: ${path} is not a regular file`);
      if (stat.size === 0) throw invalidInput(`${where}: ${path} is empty`);
      // Reading is what an upload does (a file may open and still not read, e.g. on a broken mount).
      readSync(fd, Buffer.alloc(1), 0, 1, 0);
    } catch (error) {
      if (error instanceof BorgkeepError) throw error;
      const e = error as NodeJS.ErrnoException;
      const why = e.code === 'ENOENT' ? 'there is no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
      throw invalidInput(`${where}: cannot read ${path}: ${why}`);
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }
}
