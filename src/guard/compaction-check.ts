// The guard's side of the compaction gate (audit/compaction-gate.ts has the rule): at the moment
// a session asks for a compacting commit, `destroy` or `check --repair`, read what the history on
// disk, the ledger and the admins' events say, and decide. When compaction may go on, first keep
// the manifest versions it would remove (kept-manifests.ts): if they cannot be kept, it may not.
//
// Runs while borg serve holds the repository's lock for this session, so the history cannot
// change between the decision and the commit. Reads only; writes only the data directory.

import { join } from 'node:path';

import { coverageFromEvents, decideCompaction, describeUnverified, formatBytes, type GateDecision, type PendingWrites } from '../audit/compaction-gate.js';
import { readHistory } from '../audit/history.js';
import { openHistoryCache } from '../audit/history-cache.js';
import { keepHistory, keptDir } from '../audit/kept-manifests.js';
import { latestIndexTransaction } from '../repository/hash-index.js';
import { readHints } from '../repository/hints.js';
import type { GuardStore, Repository } from '../store/types.js';

export interface CompactionCheck {
  readonly decision: GateDecision;
  /** Bytes a compaction would free now (borg's hints), or null when unknown. */
  readonly freeable: number | null;
  /** The committed transaction before the commit, where the compaction's own transactions start. */
  readonly fromTxn: number | null;
  /** One sentence for the client and the ledger when it does not allow. */
  readonly why: string;
}

export interface CompactionCheckDeps {
  readonly store: Pick<GuardStore, 'listEvents' | 'listCommittedTransactions'>;
  /** <data-dir>: the history cache and the kept manifests live under it. */
  readonly dataDir: string;
}


export async function checkCompaction(
  deps: CompactionCheckDeps,
  repository: Repository,
  repoPath: string,
  pending: PendingWrites,
): Promise<CompactionCheck & { keep: (compactionTxn: number | null, now: Date) => Promise<number> }> {
  const [events, attributions, history] = await Promise.all([
    deps.store.listEvents(repository.id, 1000),
    deps.store.listCommittedTransactions(repository.id),
    readHistory(repoPath, openHistoryCache(join(deps.dataDir, 'cache', repository.dirName))),
  ]);
  let decision = decideCompaction(history.transactions, attributions, coverageFromEvents(events), pending);
  if (history.problems.length > 0) {
    // Compaction over damage would make it permanent before anyone looked at it.
    const p = history.problems[0]!;
    const damage = { id: null, session: null, key: null, role: null, why: `the history on disk is damaged (segment ${p.segment} at offset ${p.offset}: ${p.problem}); run 'borg check' first` };
    decision = { ...decision, allow: false, unverified: [...decision.unverified, damage] };
  }
  const fromTxn = latestIndexTransaction(repoPath);
  let freeable: number | null = null;
  try {
    if (fromTxn !== null) freeable = readHints(repoPath, fromTxn).reclaimableBytes;
  } catch {
    freeable = null;
  }
  const why = decision.allow
    ? `every transaction since ${decision.coverage.coveredThrough ?? 'the start'} is verified`
    : `${describeUnverified(decision.unverified)} — not verified yet` +
      (freeable !== null ? `; ${formatBytes(freeable)} wait${freeable === 1 ? 's' : ''} to be freed` : '');
  return {
    decision,
    freeable,
    fromTxn,
    why,
    keep: (compactionTxn, now) => keepHistory(keptDir(deps.dataDir, repository), history, compactionTxn, now),
  };
}
