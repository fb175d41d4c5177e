// `borgkeep verify REPO [--all] [--json]`: decrypts every object written since the last
// verification (all of them with --all), checks its CRC, MAC and id, and that every object the
// index lists is where it says; findings are printed as sentences naming the archives that depend
// on the object, recorded, and raised as an alert by the running server. Exit 0 intact, 1 damage
// found, 2 could not verify (no key held, the vault sealed, the repository unreadable). Reads the
// committed state without borg's lock and never writes into the repository.

import type { Command } from 'commander';

import type { VerifyReport } from '../verify/verify-service.js';
import { withStore, type CliContext } from './cli-context.js';
import { formatSize, plural } from './output.js';
import { masterPassphrase } from './vault-commands.js';

export const EXIT_VERIFY_INTACT = 0;
export const EXIT_VERIFY_DAMAGED = 1;
export const EXIT_VERIFY_FAILED = 2;

export function formatVerify(r: VerifyReport): string {
  const lines: string[] = [];
  const what = r.scope === 'all' ? 'every object' : `the objects written after transaction ${r.fromTxn}`;
  if (r.restartedBecause) lines.push(`every object was read again: ${r.restartedBecause}.`);
  for (const f of r.findings) {
    const archives = f.archives === null ? '' : f.archives.length > 0 ? ` Archives that depend on it: ${f.archives.join(', ')}.` : ' No archive depends on it.';
    lines.push(`${f.sentence}${archives}`);
  }
  const read = `${plural(r.objectsRead, 'object')} (${formatSize(r.bytesRead)} read) in ${plural(r.segmentsRead, 'segment')}, ${what} through transaction ${r.throughTxn}`;
  if (r.archivesUnreadable) lines.push(`the archives could not be read, so no archive is named: ${r.archivesUnreadable}.`);
  if (r.verdict === 'intact') lines.push(`repository '${r.repository}' is intact: ${read} verified.`);
  else {
    lines.push(`repository '${r.repository}' is damaged: ${plural(r.findings.length, 'finding')} in ${read}.`);
    if (r.affectedArchives.length > 0) lines.push(`archives affected: ${r.affectedArchives.join(', ')}.`);
  }
  return lines.join('\n');
}

export function registerVerifyCommand(program: Command, ctx: CliContext): void {
  program
    .command('verify')
    .description("verify the objects written since the last verification (CRC, MAC, id) and that none the index lists is missing; exit 0 intact, 1 damage, 2 could not verify")
    .argument('<repo>', 'repository name')
    .option('--all', 'verify every object, not only those written since the last verification')
    .option('--json', 'print the report as JSON')
    .option('--vault-passphrase-file <file>', 'the vault master passphrase, when the vault is sealed with one')
    .option('--as <name>', 'who verifies, for the record (default: cli)')
    .action(async (repoName: string, opts: { all?: boolean; json?: boolean; vaultPassphraseFile?: string; as?: string }) => {
      try {
        const master = masterPassphrase(opts.vaultPassphraseFile, process.env);
        const [{ createVerifyService }, { openVault }, { createRepositoryKeySource }, { browseArchiveReferences }] = await Promise.all([
          import('../verify/verify-service.js'),
          import('../vault/vault.js'),
          import('../vault/repository-key.js'),
          import('../verify/archive-references.js'),
        ]);
        const report = await withStore(ctx, (store) => {
          const vault = openVault(store.paths.root, master === undefined ? {} : { masterPassphrase: master });
          const service = createVerifyService({ store, repositoryKey: createRepositoryKeySource(vault), archiveReferences: browseArchiveReferences });
          return service.verify(repoName, { all: opts.all === true, actor: opts.as ?? 'cli' });
        });
        if (opts.json) ctx.out.json(report);
        else ctx.out.line(formatVerify(report));
        process.exitCode = report.verdict === 'intact' ? EXIT_VERIFY_INTACT : EXIT_VERIFY_DAMAGED;
      } catch (error) {
        // Every failure is "could not verify" (2), never mistaken for damage (1).
        process.stderr.write(`borgkeep: could not verify '${repoName}': ${error instanceof Error ? error.message : String(error)}\n`);
        process.exitCode = EXIT_VERIFY_FAILED;
      }
    });
}
