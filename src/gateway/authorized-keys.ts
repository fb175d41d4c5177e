// The line `borgkeep authorized-keys` prints for sshd's AuthorizedKeysCommand: the key with a
// forced command that runs the guard for exactly this key, `restrict` (no pty, no forwarding, no
// ~/.ssh/rc), and `from="..."` when every grant of the key is limited to address ranges, so sshd
// turns such clients away before borgkeep even starts. Unknown and revoked keys get no line.

import type { Grant, SshKey } from '../store/types.js';

export interface ForcedCommand {
  /** Absolute path of node. */
  readonly node: string;
  /** Absolute path of bin/borgkeep. */
  readonly borgkeep: string;
  /** Absolute path of the data directory. */
  readonly dataDir: string;
}

/** Characters that would break out of command="..." or from="..." in an authorized_keys line. */
const UNSAFE = /["\\\n\r\0]/;

export function authorizedKeyLine(key: SshKey, grants: readonly Grant[], command: ForcedCommand): string | null {
  if (key.revokedAt) return null;
  for (const path of [command.node, command.borgkeep, command.dataDir]) {
    if (UNSAFE.test(path) || /\s/.test(path)) throw new Error(`the path '${path}' cannot be used in a forced command (it has spaces, quotes or backslashes)`);
  }
  const options = ['restrict', `command="${command.node} ${command.borgkeep} --data-dir ${command.dataDir} borg-serve --key ${key.id}"`];
  const cidrs = new Set<string>();
  let limited = grants.length > 0;
  for (const g of grants) {
    if (!g.fromCidrs || g.fromCidrs.length === 0) limited = false;
    else for (const c of g.fromCidrs) cidrs.add(c);
  }
  if (limited) {
    const list = [...cidrs];
    if (list.some((c) => UNSAFE.test(c) || /[\s,]/.test(c))) throw new Error('a grant has an address range that cannot be written into from="..."');
    options.push(`from="${list.join(',')}"`);
  }
  return `${options.join(',')} ${key.type} ${key.blob}`;
}
