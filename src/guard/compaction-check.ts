// The guard's side of the compaction gate (audit/compaction-gate.ts has the rule): at the moment
// a session asks for a compacting commit, `destroy` or `check --repair`, read what the history on
// disk, the ledger and the admins' events say, and decide. When compaction may go on, first keep
// the manifest versions it would remove (kept-manifests.ts): if they cannot be kept, it may not.
//
// With the repository's key held by borgkeep (the vault), the decision is the full audit of the
// uncovered transactions (audit/key-gate.ts) instead of the key-less structural rule: a routine
// prune by a `full` key, or by a `prune` key within its rule, is verified without an admin, and
// what the audit finds suspicious defers the compaction with its reasons.
//
// Runs while borg serve holds the repository's lock for this session, so the history cannot
// change between the decision and the commit. Reads only; writes only the data directory.

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { coverageFromEvents, decideCompaction, describeUnverified, formatBytes, type GateDecision, type PendingWrites } from '../audit/compaction-gate.js';
import { readHistory } from '../audit/history.js';
import { openHistoryCache } from '../audit/history-cache.js';
import { keepHistory, keptDir } from '../audit/kept-manifests.js';
import { auditUncoveredWithKey, describeFindings, type RetentionOf } from '../audit/key-gate.js';
import type { BorgKey } from '../repository/borg-key.js';
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
  /**
   * Set when the audit with the held key verified every uncovered transaction: the guard records
   * it as an audit event, so the next decision starts after `throughTxn`.
   */
  readonly verifiedWithKey?: { readonly throughTxn: number; readonly detail: string } | null;
}

/** The actor of the coverage the gate records after its audit with a held key. */
export const KEY_GATE_ACTOR = 'automatic gate (key held)';

export interface CompactionCheckDeps {
  readonly store: Pick<GuardStore, 'listEvents' | 'listCommittedTransactions'> & Partial<Pick<GuardStore, 'findKey' | 'findGrant'>>;
  /** <data-dir>: the history cache and the kept manifests live under it. */
  readonly dataDir: string;
  /** The repository's key, unlocked, when borgkeep holds it (the vault); null otherwise. */
  readonly repositoryKey?: (repository: Repository, repositoryPath: string) => BorgKey | null;
  /** A prune session's retention rule; default: its key's grant on the repository now (the store). */
  readonly retentionOf?: RetentionOf;
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
  const coverage = coverageFromEvents(events);
  let keyFindings: string | null = null;
  let decision = decideCompaction(history.transactions, attributions, coverage, pending);
  let verifiedWithKey: CompactionCheck['verifiedWithKey'] = null;
  let key: BorgKey | null = null;
  try {
    key = deps.repositoryKey?.(repository, repoPath) ?? null;
  } catch {
    key = null; // a locked vault or a key that no longer opens: the key-less rule decides
  }
  if (key && history.problems.length === 0) {
    const started = performance.now();
    // The guard records per transaction whether it judged the manifest at the commit (h-rules).
    const archiveChecked = new Set(attributions.filter((a) => a.archiveChecked === true).map((a) => a.borgTransactionId));
    const grants = deps.retentionOf ? { retentionOf: deps.retentionOf } : await grantRules(deps.store, repository, attributions);
    const audit = await auditUncoveredWithKey({ history, key, attributions, coveredThrough: coverage.coveredThrough, archiveChecked, ...grants });
    const ms = Math.round(performance.now() - started);
    const unverified = audit.findings.map((f) => ({ id: f.id, session: f.session, key: f.key, role: f.role, why: f.reasons.join('; ') }));
    // The asking session's own uncommitted deletes or overwrites are not on disk to be judged.
    const own = decision.unverified.filter((u) => u.id === null);
    decision = { ...decision, allow: audit.clean && own.length === 0, unverified: [...unverified, ...own] };
    if (audit.clean && audit.throughTxn !== null && (coverage.coveredThrough === null || audit.throughTxn > coverage.coveredThrough)) {
      const n = audit.judged + audit.checkedAtCommit;
      verifiedWithKey = {
        throughTxn: audit.throughTxn,
        detail:
          `${n} ${n === 1 ? 'transaction' : 'transactions'} after ${coverage.coveredThrough ?? 'the start'} verified with the repository key borgkeep holds ` +
          `(${audit.judged} audited, ${audit.decoded} ${audit.decoded === 1 ? 'manifest' : 'manifests'} decoded, ${audit.checkedAtCommit} judged at their commit) in ${ms} ms`,
      };
    }
    const parts = [
      audit.findings.length > 0 ? `the audit with the repository key borgkeep holds found ${describeFindings(audit.findings)}` : '',
      own.length > 0 ? `${describeUnverified(own)}, which is not on disk to be audited yet` : '',
    ].filter(Boolean);
    if (parts.length > 0) keyFindings = parts.join('; and ');
  }
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
  const waiting = freeable !== null ? `; ${formatBytes(freeable)} wait${freeable === 1 ? 's' : ''} to be freed` : '';
  const damaged = history.problems.length > 0;
  const why = decision.allow
    ? `every transaction since ${decision.coverage.coveredThrough ?? 'the start'} is verified`
    : keyFindings !== null && !damaged
      ? keyFindings + waiting
      : `${describeUnverified(decision.unverified)} — not verified yet${waiting}`;
  return {
    decision,
    freeable,
    fromTxn,
    why,
    verifiedWithKey: decision.allow ? verifiedWithKey : null,
    keep: (compactionTxn, now) => keepHistory(keptDir(deps.dataDir, repository), history, compactionTxn, now),
  };
}

/**
 * The retention rules of the prune keys that wrote the history, from their grants on the
 * repository now: the rule a removal broke when it was made is the grant's then, which the ledger
 * does not keep; a grant changed since judges by its rule today, and a key no longer granted
 * `prune` (revoked, say, after it was stolen) vouches for nothing: its removals wait for an admin.
 */
async function grantRules(
  store: CompactionCheckDeps['store'],
  repository: Repository,
  attributions: readonly { keyName: string | null; role: string | null }[],
): Promise<{ retentionOf: RetentionOf; grantGone: (who: { keyName: string | null }) => boolean }> {
  const rules = new Map<string, ReturnType<RetentionOf>>();
  const gone = new Set<string>();
  if (store.findKey && store.findGrant) {
    for (const name of new Set(attributions.filter((a) => a.role === 'prune' && a.keyName).map((a) => a.keyName as string))) {
      const key = await store.findKey(name);
      const found = key ? await store.findGrant(key.id, repository.name) : undefined;
      const g = found?.grant;
      if (!g || g.role !== 'prune') gone.add(name);
      rules.set(name, g && (g.minAgeSeconds !== null || g.keepLast !== null || g.prefix !== null) ? { minAgeSeconds: g.minAgeSeconds, keepLast: g.keepLast, prefix: g.prefix } : null);
    }
  }
  return { retentionOf: (who) => (who.keyName ? (rules.get(who.keyName) ?? null) : null), grantGone: (who) => who.keyName !== null && gone.has(who.keyName) };
}
