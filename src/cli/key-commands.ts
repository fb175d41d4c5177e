// `borgkeep key add|list|revoke`: the SSH public keys borgkeep knows. Keys are added from a
// .pub file or stdin, never generated here (the private half stays on the client).

import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { invalidInput } from '../errors.js';
import { checkRole } from '../store/grant-terms.js';
import { checkName } from '../store/names.js';
import { MAX_KEY_LINE_LENGTH, parseSshPublicKey } from '../store/ssh-public-key.js';
import { withStore, type CliContext } from './cli-context.js';
import { formatTable, formatTime, plural } from './output.js';
import { keyJson } from '../api/presenters.js';

export function registerKeyCommands(program: Command, ctx: CliContext): void {
  const key = program.command('key').description('add, list and revoke SSH public keys');

  key
    .command('add')
    .description('register an SSH public key (from --file, or "-" for stdin), optionally granting it a role on a repository')
    .argument('<name>', 'a name for the key, e.g. the machine it is on')
    .argument('[-]', 'read the public key line from stdin')
    .option('--file <pubkey>', 'the public key file (the .pub file)')
    .option('--repo <repo>', 'also grant the key a role on this repository (needs --role)')
    .option('--role <role>', 'the role to grant on --repo: read, append, prune or full')
    .usage('NAME (--file PUBKEY | -) [--repo REPO --role ROLE]')
    .action(async (name: string, dash: string | undefined, opts: { file?: string; repo?: string; role?: string }) => {
      if (dash !== undefined && dash !== '-') {
        throw invalidInput(`unexpected argument '${dash}'; give the public key with --file PUBKEY, or '-' to read stdin`);
      }
      if ((dash === undefined) === (opts.file === undefined)) {
        throw invalidInput("give the public key either with --file PUBKEY or as '-' to read it from stdin");
      }
      if ((opts.repo === undefined) !== (opts.role === undefined)) {
        throw invalidInput('give --repo and --role together');
      }
      checkName('key', name); // before asking for a key on stdin
      const source = opts.file ?? '-';
      const publicKey = parseSshPublicKey(source === '-' ? await readStdin(ctx) : readKeyFile(source));
      const grant =
        opts.repo !== undefined && opts.role !== undefined
          ? { repositoryName: opts.repo, role: checkRole(opts.role), writesPerDay: null, fromCidrs: null, expiresAt: null }
          : undefined;
      const added = await withStore(ctx, (store) => store.addKey({ name, publicKey, ...(grant && { grant }) }));
      const k = added.key;
      ctx.out.line(`added key '${k.name}' (id ${k.id}, ${k.type} ${k.bits} bits, ${k.fingerprint}).`);
      if (added.grant) {
        ctx.out.line(`granted ${added.grant.role} on repository '${opts.repo}'.`);
      } else {
        ctx.out.line(`Give it access with: borgkeep grant ${k.name} REPO --role read|append|prune|full`);
      }
    });

  key
    .command('list')
    .description('list keys: id, type, bits, fingerprint, comment, whether revoked')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const keys = await withStore(ctx, (store) => store.listKeys());
      if (opts.json) {
        ctx.out.json({ keys: keys.map(keyJson) });
        return;
      }
      if (keys.length === 0) {
        ctx.out.line('no keys yet; add one with: borgkeep key add NAME --file KEY.pub');
        return;
      }
      ctx.out.line(
        formatTable(
          ['ID', 'NAME', 'TYPE', 'BITS', 'FINGERPRINT', 'STATUS', 'COMMENT'],
          keys.map((k) => [
            String(k.id),
            k.name,
            k.type,
            String(k.bits),
            k.fingerprint,
            k.revokedAt ? `revoked ${formatTime(k.revokedAt)}` : 'active',
            k.comment ?? '',
          ]),
        ),
      );
    });

  key
    .command('revoke')
    .description('revoke a key for good: its grants are removed and its sessions refused')
    .argument('<key>', 'key name or id')
    .action(async (ref: string) => {
      const revocation = await withStore(ctx, (store) => store.revokeKey(ref));
      const k = revocation.key;
      if (revocation.alreadyRevoked) {
        ctx.out.line(`key '${k.name}' (id ${k.id}) was already revoked at ${formatTime(k.revokedAt)}.`);
        return;
      }
      ctx.out.line(
        `revoked key '${k.name}' (id ${k.id}) and removed its ${plural(revocation.grantsRemoved, 'grant')}; sessions with it are refused from now on.`,
      );
    });
}

function readKeyFile(file: string): string {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw invalidInput(`${file} is not a file; give the public key file (the .pub file)`);
    if (stat.size > MAX_KEY_LINE_LENGTH) {
      throw invalidInput(`${file} is ${stat.size} bytes long; a public key file is one line of at most a few KB`);
    }
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw invalidInput(`cannot read the key file ${file}: there is no such file`);
    if (code === 'EACCES') throw invalidInput(`cannot read the key file ${file}: permission denied`);
    throw error;
  }
}

async function readStdin(ctx: CliContext): Promise<string> {
  if (ctx.stdin.isTTY) ctx.prompt.write('Paste the public key line, then press Ctrl-D:\n');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > MAX_KEY_LINE_LENGTH) {
      throw invalidInput(`the input is more than ${MAX_KEY_LINE_LENGTH} bytes long; a public key is one line of at most a few KB`);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
