// `borgkeep audit REPO [--passphrase-file F] [--key-file F] [--json]`: the history of a repository
// since its last compaction, transaction by transaction, with who made each one and what it did,
// and the first suspicious and last known-good transaction. Exit 0 clean, 1 suspicious, 2 when
// the audit could not be made. The passphrase comes from the file or BORG_PASSPHRASE and is
// never stored.

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

import type { AuditedTransaction, AuditReport } from '../audit/audit.js';
import { isBorgkeepError } from '../errors.js';
import { withStore, type CliContext } from './cli-context.js';

export const EXIT_AUDIT_CLEAN = 0;
export const EXIT_AUDIT_SUSPICIOUS = 1;
export const EXIT_AUDIT_FAILED = 2;

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function describeTxn(t: AuditedTransaction): string[] {
  const who = t.attributed ? `session #${t.session}, key ${t.key ?? '?'}, role ${t.role ?? '?'}` : 'UNATTRIBUTED (not written through borgkeep)';
  const lines = [`transaction ${t.id}  ${t.time ?? 'time unknown'}  ${t.verdict.toUpperCase()}  ${who}`];
  const objects = [`${t.objectsPut} put`, `${t.objectsOverwritten} overwritten`, `${t.objectsDeleted} deleted`, t.manifestWritten ? 'manifest written' : 'no manifest written'];
  lines.push(`    objects: ${objects.join(', ')}`);
  const archives: string[] = [];
  if (t.archivesAdded?.length) archives.push(`added ${t.archivesAdded.join(', ')}`);
  if (t.archivesRemoved?.length) archives.push(`removed ${t.archivesRemoved.join(', ')}`);
  if (t.archivesReplaced?.length) archives.push(`replaced ${t.archivesReplaced.join(', ')}`);
  if (t.checkpointsPromoted?.length) archives.push(`checkpoints finished ${t.checkpointsPromoted.join(', ')}`);
  if (archives.length) lines.push(`    archives: ${archives.join('; ')}`);
  for (const r of t.reasons) lines.push(`    ! ${r}`);
  return lines;
}

export function formatAudit(repo: string, r: AuditReport & { locked: boolean }): string {
  const lines = [`audit of repository '${repo}': ${r.verdict.toUpperCase()}`];
  lines.push(
    r.compactedBefore === null
      ? `history: complete, ${r.transactions.length} transaction(s) since the repository was created`
      : `history: ${r.transactions.length} transaction(s) since the last compaction (segments before ${r.compactedBefore} are gone)`,
  );
  if (!r.manifestsRead) lines.push(`without the passphrase these checks were not made: ${r.checksNeedingKey.join('; ')}`);
  if (r.locked) lines.push('note: the repository is locked by a running session; its transaction is not part of this audit');
  lines.push('');
  for (const t of r.transactions) lines.push(...describeTxn(t));
  if (r.uncommittedSegments.length) lines.push('', `uncommitted tail: segment(s) ${r.uncommittedSegments.join(', ')} (rolled back by the next writer)`);
  if (r.problems.length) lines.push('', 'damage found:', ...r.problems.map((p) => `  ${p}`));
  lines.push('');
  lines.push(`first suspicious transaction: ${r.firstSuspiciousTransaction ?? 'none'}`);
  lines.push(`last known-good transaction:  ${r.lastKnownGoodTransaction ?? 'none'}`);
  if (r.archives) lines.push(`archives now: ${r.archives.map((a) => a.name).join(', ') || '(none)'}`);
  return lines.join('\n');
}

export function registerAuditCommand(program: Command, ctx: CliContext): void {
  program
    .command('audit')
    .description("audit a repository's history: who made each transaction, what it did, the first suspicious and last good one")
    .argument('<repo>', 'repository name')
    .option('--passphrase-file <file>', 'file holding the repository passphrase (else BORG_PASSPHRASE); never stored')
    .option('--key-file <file>', 'the borg key file, for keyfile-encrypted repositories')
    .option('--json', 'print the report as JSON')
    .action(async (repoName: string, opts: { passphraseFile?: string; keyFile?: string; json?: boolean }) => {
      try {
        const passphrase = opts.passphraseFile
          ? readSecretFile(opts.passphraseFile, 'passphrase file').replace(/\r?\n$/, '')
          : (process.env.BORG_PASSPHRASE ?? null);
        const keyFile = opts.keyFile ? readSecretFile(opts.keyFile, 'key file') : null;
        const [{ runAudit }] = await Promise.all([import('../audit/run-audit.js')]);
        const report = await withStore(ctx, async (store) => {
          const repository = await store.getRepository(repoName);
          const sessions = await store.listSessions({ repositoryId: repository.id, limit: Number.MAX_SAFE_INTEGER });
          const attributions = sessions.flatMap((s) =>
            s.transactions
              .filter((t) => t.state === 'committed' && t.borgTransactionId !== null)
              .map((t) => ({ borgTransactionId: t.borgTransactionId as number, sessionId: s.id, keyName: s.keyName, role: s.role, at: t.endedAt })),
          );
          return runAudit({ repoPath: store.paths.repository(repository.dirName), passphrase, keyFile, attributions });
        });
        if (opts.json) {
          const { mode: _mode, locked, ...rest } = report;
          ctx.out.json({ repository: repoName, ...rest, locked });
        } else ctx.out.line(formatAudit(repoName, report));
        process.exitCode = report.verdict === 'clean' ? EXIT_AUDIT_CLEAN : EXIT_AUDIT_SUSPICIOUS;
      } catch (error) {
        // Every failure of an audit is "could not audit" (2), never mistaken for "suspicious" (1).
        process.stderr.write(`borgkeep: could not audit '${repoName}': ${isBorgkeepError(error) || error instanceof Error ? (error as Error).message : String(error)}\n`);
        process.exitCode = EXIT_AUDIT_FAILED;
      }
    });
}
