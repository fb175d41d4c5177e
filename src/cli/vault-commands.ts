// `borgkeep repo key NAME --passphrase-file F [--key-file F]` hands borgkeep a repository's key
// (checked against the repository before it is sealed into the vault, src/vault), and
// `borgkeep repo key NAME --forget` takes it back. Prints one line; never the passphrase, the key
// text or the vault's paths. Also reads the master passphrase for `serve` and this command.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';

import { BorgkeepError, invalidInput } from '../errors.js';
import { withStore, type CliContext } from './cli-context.js';

/** The systemd credential name `serve` reads the master passphrase from (LoadCredential=borgkeep-vault-passphrase:...). */
export const VAULT_CREDENTIAL = 'borgkeep-vault-passphrase';

function readSecret(path: string, what: string, maxBytes: number): string {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw invalidInput(`cannot read the ${what} ${path}: ${code === 'ENOENT' ? 'there is no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (error as Error).message}`);
  }
  if (data.length > maxBytes) throw invalidInput(`the ${what} ${path} is too large (more than ${maxBytes} bytes)`);
  const text = data.toString('utf8');
  if (text.includes('\uFFFD')) throw invalidInput(`the ${what} ${path} is not UTF-8 text`);
  return text;
}

/** A passphrase file's text without the line end an editor or `echo` adds. */
export function readPassphraseFile(path: string, what: string): string {
  const text = readSecret(path, what, 4096).replace(/\r?\n$/, '');
  if (text.length === 0) throw invalidInput(`the ${what} ${path} is empty`);
  return text;
}

/**
 * The vault's master passphrase: from --vault-passphrase-file, else from the systemd credential
 * (`$CREDENTIALS_DIRECTORY/borgkeep-vault-passphrase`) when present; undefined: none (the vault
 * uses its master key file, or opens locked when it is sealed with a passphrase).
 */
export function masterPassphrase(file: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (file !== undefined) return readPassphraseFile(file, 'vault passphrase file');
  const credentials = env.CREDENTIALS_DIRECTORY;
  if (credentials) {
    try {
      return readPassphraseFile(join(credentials, VAULT_CREDENTIAL), 'vault passphrase credential');
    } catch (error) {
      // No such credential: this service was not given one.
      if (error instanceof BorgkeepError && /no such file/.test(error.message)) return undefined;
      throw error;
    }
  }
  return undefined;
}

export function registerVaultCommands(repo: Command, ctx: CliContext): void {
  repo
    .command('key')
    .description("hand borgkeep a repository's key (checked against the repository, then sealed in the data directory's vault), or take it back with --forget")
    .argument('<name>', 'repository name')
    .option('--passphrase-file <file>', "file holding the repository's passphrase")
    .option('--key-file <file>', 'the borg key file, for keyfile-encrypted repositories')
    .option('--forget', 'remove the key borgkeep holds for this repository')
    .option('--vault-passphrase-file <file>', "the vault's master passphrase, when the vault is sealed with one (as given to serve)")
    .action(async (name: string, opts: { passphraseFile?: string; keyFile?: string; forget?: boolean; vaultPassphraseFile?: string }) => {
      if (opts.forget && (opts.passphraseFile !== undefined || opts.keyFile !== undefined)) {
        throw invalidInput('give either --forget or --passphrase-file (with --key-file for a keyfile repository), not both');
      }
      if (!opts.forget && opts.passphraseFile === undefined) {
        throw invalidInput(opts.keyFile !== undefined ? '--key-file needs --passphrase-file too' : 'say what to do: --passphrase-file FILE (with --key-file FILE for a keyfile repository) or --forget');
      }
      // Files first: a bad path is refused before the store or the vault is touched.
      const material = opts.forget
        ? null
        : { passphrase: readPassphraseFile(opts.passphraseFile!, 'passphrase file'), keyFile: opts.keyFile === undefined ? null : readSecret(opts.keyFile, 'key file', 64 * 1024) };
      const master = opts.forget ? undefined : masterPassphrase(opts.vaultPassphraseFile, process.env);
      const [{ openVault }, { createVaultService }] = await Promise.all([import('../vault/vault.js'), import('../vault/vault-service.js')]);
      await withStore(ctx, async (store) => {
        const repository = await store.getRepository(name);
        const vault = createVaultService({ vault: openVault(store.paths.root, master === undefined ? {} : { masterPassphrase: master }), repositoryPath: (d) => store.paths.repository(d) });
        if (material === null) {
          ctx.out.line(vault.forget(repository) ? `borgkeep no longer holds the key of repository '${repository.name}'.` : `borgkeep did not hold the key of repository '${repository.name}'; nothing changed.`);
          return;
        }
        const r = await vault.handOver(repository, material);
        ctx.out.line(`borgkeep now holds the key of repository '${repository.name}' (${r.mode}; it opens the current manifest, ${r.archives} archive${r.archives === 1 ? '' : 's'}).`);
      });
    });
}
