// An audit or an approval as `borgkeep audit`/`approve`, the HTTP API and the daily audit job do
// it: the ledger's committed transactions as attributions, runAudit over the repository on disk,
// and a repository_event (with the whole report, so it can be shown again) whose verdict moves
// the compaction gate. The passphrase and key file are used for this one audit and never stored
// or logged. It also records when the server first saw each archive (archive-sighting-store.ts)
// and shows that earliest sighting beside the client's time in the report's archive list.

import { join } from 'node:path';
import { BorgkeepError } from '../errors.js';
import type { Store } from '../store/database.js';
import type { Attribution, AuditReport, ReportedArchive } from './audit.js';
import type { KeyMode } from '../repository/borg-key.js';
import { coverageFromEvents } from './compaction-gate.js';
import { keptDir } from './kept-manifests.js';

export interface AuditServiceDeps {
  runAudit: (input: {
    repoPath: string;
    passphrase: string | null;
    keyFile: string | null;
    attributions: readonly Attribution[];
    cachePath: string | null;
    kept: { dir: string; verifiedThrough: number | null } | null;
  }) => Promise<AuditReport & { mode?: KeyMode | null; locked: boolean }>;
  /** The id of the newest committed transaction on disk, or null for none; throws when there is no history. */
  lastTransaction: (repoPath: string) => Promise<number | null>;
}

type AuditStore = Pick<
  Store,
  'paths' | 'getRepository' | 'listCommittedTransactions' | 'recordEvent' | 'listEvents' | 'compactionGate' | 'lastAudit' | 'recordArchiveSightings' | 'listArchiveSightings'
>;

export function createAuditService(store: AuditStore, deps: Partial<AuditServiceDeps> = {}) {
  // The reader is loaded on first use: most API requests never need it.
  const runAudit: AuditServiceDeps['runAudit'] = deps.runAudit ?? (async (input) => (await import('./run-audit.js')).runAudit(input));
  const lastTransaction: AuditServiceDeps['lastTransaction'] =
    deps.lastTransaction ?? (async (path) => (await (await import('./history.js')).readHistory(path)).transactions.at(-1)?.id ?? null);

  /**
   * Records what this audit saw appear (the earliest sighting per archive id and name is kept),
   * then gives each archive of the report the earliest sighting on record.
   */
  async function withSightings<R extends AuditReport>(repositoryId: number, report: R): Promise<R> {
    if (!report.sightings || !report.archives) return report;
    await store.recordArchiveSightings(
      repositoryId,
      report.sightings.flatMap((s) =>
        s.serverTime === null ? [] : [{ archiveId: s.id, name: s.name, clientTime: s.time, firstSeenAt: new Date(s.serverTime), transactionId: s.transaction, baseline: s.baseline }],
      ),
    );
    const known = new Map((await store.listArchiveSightings(repositoryId)).map((s) => [`${s.archiveId} ${s.name}`, s]));
    const archives: ReportedArchive[] = report.archives.map((a) => {
      const s = known.get(`${a.id} ${a.name}`);
      return s ? { ...a, firstSeen: s.firstSeenAt.toISOString(), firstSeenTransaction: s.transactionId } : a;
    });
    return { ...report, archives };
  }

  /** The newest committed transaction on disk, after checking that `throughTxn` (if given) is one of the current history's. */
  async function resolveThrough(repositoryName: string, repoPath: string, throughTxn: number | undefined): Promise<number | null> {
    let newest: number | null;
    try {
      newest = await lastTransaction(repoPath);
    } catch {
      throw new BorgkeepError('BK_ERR_INVALID_INPUT', `repository '${repositoryName}' has no history to approve yet (is it initialised?)`);
    }
    if (throughTxn !== undefined) {
      if (!Number.isSafeInteger(throughTxn) || throughTxn < 0) {
        throw new BorgkeepError('BK_ERR_INVALID_INPUT', `'${String(throughTxn)}' is not a transaction id (a whole number, as the audit shows it)`);
      }
      // After a rollback the newest transaction on disk is older than what an audit may have
      // shown: approving a transaction that is no longer there would cover nothing real.
      if (newest === null || throughTxn > newest) {
        throw new BorgkeepError(
          'BK_ERR_INVALID_INPUT',
          `transaction ${throughTxn} is not a committed transaction of repository '${repositoryName}' (the newest on disk is ${newest ?? 'none'}): audit it again and approve what that audit shows`,
        );
      }
    }
    return newest;
  }

  return {
    /** `cache: false` reads every segment again (history-cache.ts). */
    async audit(repositoryName: string, input: { passphrase: string | null; keyFile: string | null; actor: string; cache?: boolean }) {
      const repository = await store.getRepository(repositoryName);
      const [attributions, events] = await Promise.all([store.listCommittedTransactions(repository.id), store.listEvents(repository.id)]);
      const cachePath = input.cache === false ? null : join(store.paths.root, 'cache', repository.dirName);
      // What compaction removed is read from what borgkeep kept of it, from the last verified point.
      const kept = { dir: keptDir(store.paths.root, repository), verifiedThrough: coverageFromEvents(events).keyVerifiedThrough };
      const result = await runAudit({ repoPath: store.paths.repository(repository.dirName), passphrase: input.passphrase, keyFile: input.keyFile, attributions, cachePath, kept });
      const { mode: _mode, ...audited } = result;
      const report = await withSightings(repository.id, audited);
      const event = await store.recordEvent({
        repositoryId: repository.id,
        kind: 'audit',
        throughTxn: report.transactions.at(-1)?.id ?? null,
        verdict: report.verdict === 'suspicious' ? 'suspicious' : report.manifestsRead ? 'clean' : 'clean-structural',
        actor: input.actor,
        detail:
          report.firstSuspiciousTransaction === null
            ? `${report.transactions.length} ${report.transactions.length === 1 ? 'transaction' : 'transactions'}, none suspicious`
            : `first suspicious transaction ${report.firstSuspiciousTransaction}, last known-good ${report.lastKnownGoodTransaction ?? 'none'}`,
        report,
      });
      return { event, report, gate: await store.compactionGate(repository.id) };
    },

    async lastAudit(repositoryName: string) {
      const repository = await store.getRepository(repositoryName);
      const found = await store.lastAudit(repository.id);
      if (!found) throw new BorgkeepError('BK_ERR_NOT_FOUND', `repository '${repositoryName}' has not been audited yet`);
      return { ...found, gate: await store.compactionGate(repository.id) };
    },

    /**
     * What an approval through `throughTxn` (else the newest committed transaction) would record,
     * without recording it: the CLI shows this before it asks. Refuses what approve() refuses.
     */
    async previewApproval(repositoryName: string, throughTxn?: number) {
      const repository = await store.getRepository(repositoryName);
      const newest = await resolveThrough(repositoryName, store.paths.repository(repository.dirName), throughTxn);
      const last = await store.lastAudit(repository.id);
      return { through: throughTxn ?? newest, newest, lastAudit: last ? { event: last.event, report: last.report as AuditReport | null } : null };
    },

    /**
     * Approves the history through `throughTxn`: the transaction the person approving was shown
     * (the last audit's). A write made after it is not covered by this approval. Without it, the
     * newest committed transaction on disk (a script that says --yes approves what is there).
     */
    async approve(repositoryName: string, actor: string, throughTxn?: number) {
      const repository = await store.getRepository(repositoryName);
      const newest = await resolveThrough(repositoryName, store.paths.repository(repository.dirName), throughTxn);
      const through = throughTxn ?? newest;
      const last = (await store.listEvents(repository.id, 50)).find((e) => e.kind === 'audit');
      const event = await store.recordEvent({
        repositoryId: repository.id,
        kind: 'approve',
        throughTxn: through,
        verdict: null,
        actor,
        detail: last ? `after the audit of ${last.at.toISOString()} (${last.verdict}: ${last.detail})` : 'without an audit on record',
      });
      return { event, gate: await store.compactionGate(repository.id) };
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
