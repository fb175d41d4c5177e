// A borg repository's `nonce` file (fact sheet B.11): the next unreserved AES-CTR counter as 16
// hex digits (8 bytes, big-endian), written by `commit_nonce_reservation`. Reading only: the
// guard judges a reservation against it; borgkeep never writes it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The repository's nonce, null when it has no nonce file, 'unreadable' when it is not what borg writes. */
export function readRepositoryNonce(repoPath: string): bigint | null | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(join(repoPath, 'nonce'), 'latin1');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? null : 'unreadable';
  }
  // borg reads it with unhexlify(): no whitespace, an even number of hex digits; it writes 16.
  return /^[0-9a-fA-F]{16}$/.test(text) ? BigInt(`0x${text}`) : 'unreadable';
}
