// `borgkeep authorized-keys USER KEYTYPE KEYBLOB`: sshd's AuthorizedKeysCommand (%u %t %k). Prints
// the key's line with its forced command when USER is borgkeep's SSH user and the key is
// registered and not revoked; prints nothing otherwise (sshd then refuses the key), and exits 0
// either way, so sshd never mistakes "not ours" for a failure. See docs/openssh.md.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';

import { withStore, type CliContext } from './cli-context.js';

/** bin/borgkeep of this installation (this file is dist/cli/*.{js,mjs}). */
function borgkeepBin(): string {
  return join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), 'bin', 'borgkeep');
}

export function registerAuthorizedKeysCommand(program: Command, ctx: CliContext): void {
  program
    .command('authorized-keys')
    .description("for sshd's AuthorizedKeysCommand (%u %t %k): print the forced-command line of a registered key")
    .argument('<user>', 'the user sshd is authenticating (%u)')
    .argument('<keytype>', 'the key type offered (%t)')
    .argument('<keyblob>', 'the base64 key offered (%k)')
    .option('--ssh-user <name>', 'the system user borg clients log in as (env BORGKEEP_SSH_USER, default borg)')
    .action(async (user: string, keyType: string, keyBlob: string, opts: { sshUser?: string }) => {
      const sshUser = opts.sshUser ?? process.env.BORGKEEP_SSH_USER ?? 'borg';
      if (user !== sshUser || !/^[A-Za-z0-9+/]+={0,2}$/.test(keyBlob) || !/^[a-z0-9@.-]+$/.test(keyType)) return;
      const { authorizedKeyLine } = await import('../gateway/authorized-keys.js');
      const line = await withStore(ctx, async (store) => {
        const key = await store.findKeyByBlob(keyType, keyBlob);
        if (!key) return null;
        // A revoked key still in use may be a stolen one: counted, and repeated tries raise an alert.
        if (key.revokedAt) await store.recordAuthFailure({ keyId: key.id, address: null, reason: `key '${key.name}' is revoked` });
        const grants = (await store.listGrants({ keyId: key.id })).map((v) => v.grant);
        return authorizedKeyLine(key, grants, { node: process.execPath, borgkeep: borgkeepBin(), dataDir: ctx.getDataDir() });
      });
      if (line) ctx.out.line(line);
    });
}
