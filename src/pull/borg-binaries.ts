// The standalone borg binaries of the config file (pullBorgBinaries: client platform -> a file on
// this server), checked when `borgkeep serve` starts: a file that is missing, unreadable or not a
// regular file stops the start with one sentence, rather than failing every job of that platform
// later. A job opens the file again when it uploads it (pull-runner.ts), so a file replaced by a
// newer borg is taken without a restart.
//
// Must never read more than the first bytes (the check runs at every start, the files are ~30 MB).

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

import { BorgkeepError, invalidInput } from '../errors.js';

/** What a file must start with to be run on a client: ELF (Linux, BSD), Mach-O (macOS), a #! script. */
const PROGRAM_MAGIC = [0x7f454c46, 0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe];
export const HEAD_BYTES = 4;

/**
 * Whether a file's first bytes are those of a program the client can run. Catches a wrong file
 * named in the config (borg's newer releases also ship .tgz directories, which cannot run as one
 * file; or a key or a document that must never be sent to a client).
 */
export function looksLikeProgram(head: Uint8Array): boolean {
  if (head.length >= 2 && head[0] === 0x23 && head[1] === 0x21) return true;
  return head.length >= 4 && PROGRAM_MAGIC.includes(Buffer.from(head.buffer, head.byteOffset, 4).readUInt32BE(0));
}

/** The sentence's end for a file that is not a program. */
export const NOT_A_PROGRAM = 'is not a program (an ELF or Mach-O binary, or a #! script): give the single-file borg, e.g. borg-linux64';

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
      const head = Buffer.alloc(HEAD_BYTES);
      const read = readSync(fd, head, 0, HEAD_BYTES, 0);
      if (!looksLikeProgram(head.subarray(0, read))) throw invalidInput(`${where}: ${path} ${NOT_A_PROGRAM}`);
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
