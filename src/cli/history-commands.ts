// The commands on a repository's history: `borgkeep audit REPO [--passphrase-file F] [--key-file F] [--json]`,
// `borgkeep approve REPO [--through TXN] [--as NAME] [--yes]` (opens the compaction gate) and `borgkeep rollback REPO --to TXN | --undo`.
//
// audit tells, transaction by transaction since the last compaction, who made each one and what
// it did, and names the first suspicious and last known-good transaction: exit 0 clean, 1
// suspicious, 2 when it could not audit. The passphrase comes from the file or BORG_PASSPHRASE
// and is never stored. Every audit, approval and rollback is recorded with who and when; they
// move the compaction gate that the guard checks.

import { advertisedUrl } from './setup-command.js';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { METHOD_ROLLBACK } from '../store/run-kind.js';

import type { AuditedTransaction, AuditReport } from '../audit/audit.js';
import { keyHistoryDir } from '../audit/key-history.js';
import { BorgkeepError } from '../errors.js';
import { withStore, type CliContext } from './cli-context.js';
import { plural } from './output.js';

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
  const lines = [`transaction ${t.id}  ${t.time ?? 'time unknown'}  ${t.verdict.toUpperCase()}  ${who}${t.compacted ? '  (compacted on disk: as borgkeep kept it)' : ''}`];
  const objects = [`${t.objectsPut} put`, `${t.objectsOverwritten} overwritten`, `${t.objectsDeleted} deleted`, t.manifestWritten ? 'manifest written' : 'no manifest written'];
  lines.push(`    objects: ${objects.join(', ')}`);
  const archives: string[] = [];
  if (t.archivesAdded?.length) archives.push(`added ${t.archivesAdded.join(', ')}`);
  if (t.archivesRemoved?.length) archives.push(`removed ${t.archivesRemoved.join(', ')}`);
  if (t.archivesReplaced?.length) archives.push(`replaced ${t.archivesReplaced.join(', ')}`);
  if (t.checkpointsPromoted?.length) archives.push(`checkpoints finished ${t.checkpointsPromoted.join(', ')}`);
  // Reports recorded before these fields existed lack them.
  if (t.archivesRenamed?.length) archives.push(`renamed ${t.archivesRenamed.map((r) => `${r.from} to ${r.to}`).join(', ')}`);
  if (t.archivesRetimed?.length) archives.push(`time moved ${t.archivesRetimed.map((r) => r.name).join(', ')}`);
  if (t.configChanged) archives.push('manifest config changed');
  if (archives.length) lines.push(`    archives: ${archives.join('; ')}`);
  for (const r of t.reasons) lines.push(`    ! ${r}`);
  return lines;
}

export function formatAudit(repo: string, r: AuditReport & { locked: boolean }): string {
  const lines = [`audit of repository '${repo}': ${r.verdict.toUpperCase()}`];
  lines.push(
    r.compactedBefore === null
      ? `history: complete, ${plural(r.transactions.length, 'transaction')} since the repository was created`
      : `history: ${plural(r.transactions.length, 'transaction')} since the last compaction (segments before ${r.compactedBefore} are gone)`,
  );
  if (!r.manifestsRead) lines.push(`without the passphrase these checks were not made: ${r.checksNeedingKey.join('; ')}`);
  if (r.locked) lines.push('note: the repository is locked by a running session; its transaction is not part of this audit');
  lines.push('');
  for (const t of r.transactions) lines.push(...describeTxn(t));
  if (r.uncommittedSegments.length) lines.push('', `uncommitted tail: ${r.uncommittedSegments.length === 1 ? 'segment' : 'segments'} ${r.uncommittedSegments.join(', ')} (rolled back by the next writer)`);
  if (r.problems.length) lines.push('', 'damage found:', ...r.problems.map((p) => `  ${p}`));
  lines.push('');
  lines.push(`first suspicious transaction: ${r.firstSuspiciousTransaction ?? 'none'}`);
  lines.push(`last known-good transaction:  ${r.lastKnownGoodTransaction ?? 'none'}`);
  if (r.archives) {
    lines.push(`archives now: ${r.archives.map((a) => a.name).join(', ') || '(none)'}`);
    // The client's time beside the server's first sighting: retention should trust the latter.
    for (const a of r.archives) lines.push(`    ${a.name}  time ${a.time}  first seen by the server ${a.firstSeen ?? 'unknown'}${a.firstSeenTransaction != null ? ` (transaction ${a.firstSeenTransaction})` : ''}`);
  }
  return lines.join('\n');
}

/**
 * Who runs an admin command, for the ledger: `--as NAME` when given, else the person behind sudo
 * (SUDO_USER), else the login name ($USER, $LOGNAME: after `su` without `-` they still name the
 * person, where the effective user is root), else the effective user's account name, else its
 * uid. Never "unknown": an approval must name someone. None of this is authentication: whoever
 * runs the CLI can write the data directory anyway; it is who the ledger says did it.
 */
export function actorName(as?: string): string {
  if (as !== undefined) {
    const name = as.trim();
    // Shown in the console, the ledger and alert mail: one short printable line.
    if (name === '' || name.length > 64 || /[\p{Cc}\p{Cf}]/u.test(name)) {
      throw new BorgkeepError('BK_ERR_INVALID_INPUT', '--as needs a name of 1 to 64 printable characters');
    }
    return name;
  }
  const fromEnv = process.env.SUDO_USER || process.env.USER || process.env.LOGNAME;
  if (fromEnv) return fromEnv;
  try {
    return userInfo().username;
  } catch {
    // A uid without a passwd entry (containers): its number still says who.
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

export function registerAuditCommand(program: Command, ctx: CliContext): void {
  program
    .command('audit')
    .description("audit a repository's history: who made each transaction, what it did, the first suspicious and last good one")
    .argument('<repo>', 'repository name')
    .option('--passphrase-file <file>', 'file holding the repository passphrase (else BORG_PASSPHRASE); never stored')
    .option('--key-file <file>', 'the borg key file, for keyfile-encrypted repositories')
    .option('--json', 'print the report as JSON')
    .option('--no-cache', 'read every segment again instead of reusing what earlier audits learnt from unchanged ones')
    .option('--as <name>', 'who audits, for the ledger (default: the operating-system user)')
    .action(async (repoName: string, opts: { passphraseFile?: string; keyFile?: string; json?: boolean; cache: boolean; as?: string }) => {
      try {
        const passphrase = opts.passphraseFile
          ? readSecretFile(opts.passphraseFile, 'passphrase file').replace(/\r?\n$/, '')
          : (process.env.BORG_PASSPHRASE ?? null);
        const keyFile = opts.keyFile ? readSecretFile(opts.keyFile, 'key file') : null;
        const { createAuditService } = await import('../audit/audit-service.js');
        const { report } = await withStore(ctx, (store) => createAuditService(store).audit(repoName, { passphrase, keyFile, actor: actorName(opts.as), cache: opts.cache }));
        if (opts.json) {
          const { locked, ...rest } = report;
          ctx.out.json({ repository: repoName, ...rest, locked });
        } else ctx.out.line(formatAudit(repoName, report));
        process.exitCode = report.verdict === 'clean' ? EXIT_AUDIT_CLEAN : EXIT_AUDIT_SUSPICIOUS;
      } catch (error) {
        // Every failure of an audit is "could not audit" (2), never mistaken for "suspicious" (1).
        process.stderr.write(`borgkeep: could not audit '${repoName}': ${error instanceof Error ? error.message : String(error)}\n`);
        process.exitCode = EXIT_AUDIT_FAILED;
      }
    });
}

/** What an approval covers, from the last audit's report, for the person (or script log) approving it. */
export function formatApprovalSummary(
  repo: string,
  p: { through: number | null; newest: number | null; lastAudit: { event: { at: Date; verdict: string | null; detail: string; actor: string; throughTxn: number | null }; report: AuditReport | null } | null },
): string {
  const lines: string[] = [];
  const audit = p.lastAudit;
  if (!audit) {
    lines.push(`repository '${repo}' has no audit on record: nothing below has been reviewed (borgkeep audit ${repo} shows what each transaction did).`);
  } else {
    const e = audit.event;
    lines.push(`last audit of '${repo}': ${e.at.toISOString()} by ${e.actor}, ${(e.verdict ?? '?').toUpperCase()}, through transaction ${e.throughTxn ?? '(none)'} (${e.detail})`);
    const r = audit.report;
    if (r) {
      const suspicious = r.transactions.filter((t) => t.verdict === 'suspicious');
      if (suspicious.length === 0) lines.push('suspicious transactions: none');
      else {
        lines.push('suspicious transactions:');
        for (const t of suspicious) lines.push(`  transaction ${t.id}: ${t.reasons.join('; ') || 'suspicious'}`);
      }
      const removed = r.transactions.flatMap((t) => (t.archivesRemoved ?? []).map((a) => `${a} (transaction ${t.id})`));
      if (!r.manifestsRead) lines.push('archives removed: not known (audited without the passphrase)');
      else lines.push(`archives removed: ${removed.join(', ') || 'none'}`);
    }
    if (p.through !== null && (e.throughTxn === null || p.through > e.throughTxn)) {
      lines.push(`NOT REVIEWED: transactions after ${e.throughTxn ?? '(none)'} through ${p.through} were written after this audit.`);
    }
  }
  lines.push(`this approves the history of '${repo}' through transaction ${p.through ?? '(none)'}; anything written later is not covered.`);
  return lines.join('\n');
}

/** A transaction id as the user typed it, or a clear refusal. */
function parseTxn(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', `${flag} '${text}' is not a transaction id (a whole number, as borgkeep audit shows it)`);
  }
  return n;
}

export function registerApproveCommand(program: Command, ctx: CliContext): void {
  program
    .command('approve')
    .description("approve a repository's history as reviewed through a transaction (borgkeep audit shows it): compaction may remove what it made unreferenced")
    .argument('<repo>', 'repository name')
    .option('--through <txn>', "the transaction to approve through, as the audit showed it (default: the newest on disk); later writes are not covered")
    .option('--as <name>', 'who approves, for the ledger (default: the operating-system user)')
    .option('--yes', 'do not ask for confirmation; without a terminal, --yes or --through is required')
    .action(async (repoName: string, opts: { through?: string; as?: string; yes?: boolean }) => {
      const throughTxn = parseTxn('--through', opts.through);
      const actor = actorName(opts.as);
      const interactive = Boolean(ctx.stdin.isTTY && process.stderr.isTTY);
      // A script must say what it approves: a transaction (--through), or "what is there" (--yes).
      // Approving blindly is the hole this closes; a person at a terminal is asked instead.
      if (!interactive && !opts.yes && throughTxn === undefined) {
        throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'approve without a terminal needs --through TXN (the transaction the audit showed) or --yes (the newest on disk); nothing was approved');
      }
      const { createAuditService } = await import('../audit/audit-service.js');
      const { event } = await withStore(ctx, async (store) => {
        const service = createAuditService(store);
        const preview = await service.previewApproval(repoName, throughTxn);
        const summary = formatApprovalSummary(repoName, preview);
        ctx.out.line(summary);
        if (interactive && !opts.yes) {
          const ok = await confirm(ctx, `Approve as ${actor}? [y/N] `);
          if (!ok) throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'approval cancelled; nothing was recorded');
        }
        // The same transaction as shown: with no --through, the newest that the summary named,
        // so a write landing between the question and the answer is not covered either.
        return service.approve(repoName, actor, preview.through ?? undefined);
      });
      ctx.out.line(
        `approved the history of '${repoName}' through transaction ${event.throughTxn ?? '(none)'}: the compaction gate is open` +
          (event.detail === 'without an audit on record' ? ' (no audit is on record: run borgkeep audit first next time).' : '.') +
          ` Recorded as approved by ${actor}.`,
      );
    });
}

export function registerRollbackCommand(program: Command, ctx: CliContext): void {
  program
    .command('rollback')
    .description('roll a repository back to a committed transaction; later data moves to a quarantine folder (--undo puts it back)')
    .argument('<repo>', 'repository name')
    .option('--to <txn>', 'the transaction to return to (borgkeep audit names the last known-good one)')
    .option('--undo', 'put back what the last rollback of this repository moved away')
    .option('--yes', 'do not ask for confirmation on a terminal')
    .option('--as <name>', 'who rolls back, for the ledger (default: the operating-system user)')
    .action(async (repoName: string, opts: { to?: string; undo?: boolean; yes?: boolean; as?: string }) => {
      const actor = actorName(opts.as);
      if (opts.undo === (opts.to !== undefined)) throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'give either --to TXN or --undo');
      const toTxn = opts.to === undefined ? null : Number(opts.to);
      if (toTxn !== null && (!/^\d+$/.test(opts.to ?? '') || !Number.isSafeInteger(toTxn))) {
        throw new BorgkeepError('BK_ERR_INVALID_INPUT', `--to '${opts.to}' is not a transaction id (a whole number, as borgkeep audit shows it)`);
      }
      const rb = await import('../audit/rollback.js');
      const { parseRepoConfig } = await import('../repository/repo-config.js');
      await withStore(ctx, async (store) => {
        const repository = await store.getRepository(repoName);
        const path = store.paths.repository(repository.dirName);
        const quarantineRoot = join(store.paths.root, 'quarantine');
        let plan: Awaited<ReturnType<typeof rb.planRollback>> | null = null;
        if (toTxn !== null) {
          try {
            plan = await rb.planRollback(path, toTxn);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new BorgkeepError('BK_ERR_INVALID_INPUT', `repository '${repoName}' is not initialised: there is nothing to roll back`);
            throw error;
          }
        }
        if (toTxn !== null && plan?.compacted) {
          // Compaction removed the transaction's segments: write its kept manifest back instead.
          const { keptDir, readKeptHistory } = await import('../audit/kept-manifests.js');
          const { keptManifestAt, restoreManifest } = await import('../audit/manifest-restore.js');
          const { createGuardDeps } = await import('../gateway/guard-runtime.js');
          const kept = readKeptHistory(keptDir(store.paths.root, repository));
          const at = keptManifestAt(kept, toTxn);
          if (!at) {
            throw new BorgkeepError(
              'BK_ERR_INVALID_INPUT',
              `transaction ${toTxn} was compacted away and borgkeep kept no manifest of it (kept: ${kept.transactions.map((t) => t.id).join(', ') || 'none'})`,
            );
          }
          if (!opts.yes && process.stdin.isTTY && process.stderr.isTTY) {
            const ok = await confirm(ctx, `Write back the archive list of transaction ${toTxn} (kept by borgkeep) as '${repoName}''s manifest? [y/N] `);
            if (!ok) throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'rollback cancelled; nothing was changed');
          }
          const actor = actorName();
          const startedAt = ctx.now();
          await restoreManifest(createGuardDeps(store.paths.root, store, process.env).spawnBorg, path, kept.readManifest(at));
          // The key in effect at that transaction, as a rollback by segments restores it.
          const { keyInEffectAt, restoreKeptKey } = await import('../audit/key-history.js');
          const keys = keyHistoryDir(store.paths.root, repository.dirName);
          const then = keyInEffectAt(keys, toTxn);
          const key = then ? await rb.withBorgLock(path, async () => restoreKeptKey(path, keys, then.n, ctx.now(), 'rollback')) : null;
          // The transaction it wrote, in the ledger like a client's, so the audit can say who wrote it.
          const { latestIndexTransaction } = await import('../repository/hash-index.js');
          const { hostname } = await import('node:os');
          const written = latestIndexTransaction(path);
          const sessionId = await store.startSession({ keyId: null, keyName: `(rollback by ${actor})`, clientAddress: null, startedAt, pid: process.pid, host: hostname() });
          await store.updateSession(sessionId, { repositoryId: repository.id, repositoryName: repository.name, role: 'full' });
          const endedAt = ctx.now();
          await store.recordTransaction({ sessionId, borgTransactionId: written, objectsPut: 0, objectsOverwritten: 0, objectsDeleted: 0, objectsDeletedOlder: 0, manifestWritten: true, state: 'committed', startedAt, endedAt });
          await store.endSession(sessionId, { endedAt, result: 'ok', detail: `wrote back the manifest of transaction ${at.id}`, bytesIn: 0, bytesOut: 0, methods: [METHOD_ROLLBACK] });
          await store.recordEvent({
            repositoryId: repository.id,
            kind: 'rollback',
            throughTxn: toTxn,
            verdict: null,
            actor,
            detail: `wrote back the archive list of transaction ${toTxn} (kept by borgkeep; compacted away on disk) as transaction ${written}`,
          });
          const repoId = parseRepoConfig(readFileSync(join(path, 'config'), 'utf8')).id.toString('hex');
          ctx.out.line(
            [
              `rolled '${repoName}' back to the archive list of transaction ${toTxn}: borgkeep wrote its kept manifest back as transaction ${written}.`,
              ...(key ? [`The repository key was replaced after transaction ${toTxn}; the key in effect then (kept key ${key.restored.n}, fingerprint ${key.restored.fingerprint}) is back: use the passphrase that went with it.`] : []),
              'Archives added since are no longer listed; their objects stay behind as orphans, and a client that',
              `uploads the same data again is refused until they are gone: after review (borgkeep approve ${repoName}),`,
              `run 'borg check --repair' with a full key, which deletes them.`,
              ...clientsMustForget(repoName, repoId, ctx.getDataDir()),
            ].join('\n'),
          );
          return;
        }
        if (plan && !plan.compacted) {
          if (!opts.yes && process.stdin.isTTY && process.stderr.isTTY) {
            const ok = await confirm(ctx, `Roll '${repoName}' back from transaction ${plan.fromTxn} to ${toTxn}, moving ${plural(plan.moved.length, 'file')} to quarantine? [y/N] `);
            if (!ok) throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'rollback cancelled; nothing was changed');
          }
        }
        const keys = keyHistoryDir(store.paths.root, repository.dirName);
        const result = toTxn !== null ? await rb.rollbackRepository(path, quarantineRoot, toTxn, ctx.now(), keys) : await rb.undoRollback(path, quarantineRoot, ctx.now(), keys);
        await store.recordEvent({
          repositoryId: repository.id,
          kind: toTxn !== null ? 'rollback' : 'rollback-undo',
          throughTxn: toTxn !== null ? toTxn : null,
          verdict: null,
          actor,
          detail:
            toTxn !== null
              ? `rolled back from transaction ${result.fromTxn} to ${toTxn}; ${plural(result.moved.length, 'file')} moved to ${result.quarantine}`
              : `undid the rollback to transaction ${result.toTxn}; ${plural(result.moved.length, 'file')} put back from ${result.quarantine}`,
        });
        if (result.key) {
          const { restored, replaced } = result.key;
          await store.recordEvent({
            repositoryId: repository.id,
            kind: 'key-restore',
            throughTxn: restored.txn,
            verdict: null,
            actor: actorName(),
            detail: `the ${toTxn !== null ? 'rollback' : 'undone rollback'} put back kept key ${restored.n} (fingerprint ${restored.fingerprint})${replaced ? `; the key it replaced is kept as number ${replaced.n}` : ''}`,
          });
        }
        const repoId = parseRepoConfig(readFileSync(join(path, 'config'), 'utf8')).id.toString('hex');
        const lines =
          toTxn !== null
            ? [
                `rolled '${repoName}' back from transaction ${result.fromTxn} to ${toTxn}: ${plural(result.moved.length, 'file')} moved to ${result.quarantine}`,
                `(borgkeep rollback ${repoName} --undo puts them back while nothing new has been written).`,
              ]
            : [`put back the ${plural(result.moved.length, 'file')} the rollback to transaction ${result.toTxn} had moved away.`];
        if (result.key) {
          const { n, fingerprint } = result.key.restored;
          lines.push(
            toTxn !== null
              ? `The repository key was replaced after transaction ${toTxn}; the key in effect then (kept key ${n}, fingerprint ${fingerprint}) is back: use the passphrase that went with it.`
              : `The key from before the rollback (kept key ${n}, fingerprint ${fingerprint}) is back.`,
          );
        }
        lines.push(...clientsMustForget(repoName, repoId, ctx.getDataDir()));
        ctx.out.line(lines.join('\n'));
      });
    });
}

function clientsMustForget(repoName: string, repoId: string, dataDir: string): string[] {
  return [
    '',
    'Every client that has used this repository must forget what it knows of the later state before its next run:',
    `  borg delete --cache-only ${advertisedUrl(dataDir, repoName)}`,
    `  rm ~/.config/borg/security/${repoId}/manifest-timestamp`,
    "Otherwise borg refuses with 'Cache, or information obtained from the security directory is newer than repository'.",
    'Nothing after the rolled-back-to transaction counts as reviewed: compaction waits for removals to be reviewed again (borgkeep audit, borgkeep approve).',
  ];
}

async function confirm(ctx: CliContext, question: string): Promise<boolean> {
  ctx.prompt.write(question);
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: ctx.stdin });
  const answer = await new Promise<string>((resolve) => rl.once('line', resolve).once('close', () => resolve('')));
  rl.close();
  return /^y(es)?$/i.test(answer.trim());
}
