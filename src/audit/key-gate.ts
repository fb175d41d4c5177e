// The compaction gate with the repository's key held (issue 14, "automatic gate"): at a
// compacting commit, the full audit (audit.ts over manifests decoded with the key, the one
// judgement of src/archive/manifest-change.ts) of the transactions not covered yet. A removal by a
// `full` session, or by a `prune` session within its grant's rule, is then verified without an
// admin; anything the audit finds suspicious keeps the compaction deferred, with the audit's
// reasons (which transaction, which archive, which rule).
//
// A transaction the live guard already judged at its commit with the key (the ledger's
// `archive_checked`) counts as verified and is not judged again, unless it overwrote objects
// (the manifest judgement says nothing about those). When every uncovered transaction is of that
// kind, no manifest is decoded at all.
//
// Never trusts less than the key-less gate: it only ever replaces a deferral by an allowance when
// the audit with the key read every manifest and found every uncovered transaction clean. Pure but
// for reading the manifests through the history given; the key comes in unlocked.

import type { RetentionRule } from '../archive/manifest-change.js';
import type { BorgKey } from '../repository/borg-key.js';
import type { ManifestArchive } from '../repository/manifest.js';
import { objectMode } from '../repository/borg-key.js';
import { auditHistory, type Attribution } from './audit.js';
import type { RepositoryHistory } from './history.js';
import { readManifests } from './run-audit.js';

/** The retention rule of the grant a `prune` session held (by its attribution), or null for none. */
export type RetentionOf = (who: Attribution) => RetentionRule | null;

export interface KeyGateInput {
  readonly history: RepositoryHistory;
  readonly key: BorgKey;
  readonly attributions: readonly Attribution[];
  /** The last covered transaction (compaction-gate.ts), or null. */
  readonly coveredThrough: number | null;
  /** borg transaction ids the guard judged at their commit with the key. */
  readonly archiveChecked: ReadonlySet<number>;
  /** For prune sessions' removals the guard did not judge at the commit: their grant's rule. */
  readonly retentionOf?: RetentionOf;
  /** A prune key whose grant on the repository is gone (revoked since): its removals wait for an admin. */
  readonly grantGone?: (who: Attribution) => boolean;
  /** The server's first sighting of an archive (the store's), for the rule's --min-age and --keep-last. */
  readonly firstSeen?: (a: ManifestArchive) => Date | null;
}

export interface KeyGateFinding {
  readonly id: number;
  readonly session: number | null;
  readonly key: string | null;
  readonly role: Attribution['role'];
  readonly reasons: string[];
}

export interface KeyGateResult {
  /** Every uncovered transaction is verified. */
  readonly clean: boolean;
  /** The newest committed transaction of the history, which a clean result covers; null for none. */
  readonly throughTxn: number | null;
  readonly findings: KeyGateFinding[];
  /** Uncovered transactions judged by the audit now. */
  readonly judged: number;
  /** Uncovered transactions the guard judged at their commit. */
  readonly checkedAtCommit: number;
  /** Manifests decoded for this decision. */
  readonly decoded: number;
}

export async function auditUncoveredWithKey(input: KeyGateInput): Promise<KeyGateResult> {
  const { history, coveredThrough } = input;
  const uncovered = history.transactions.filter((t) => coveredThrough === null || t.id > coveredThrough);
  const throughTxn = history.transactions.at(-1)?.id ?? null;
  const trusted = (t: (typeof uncovered)[number]) => input.archiveChecked.has(t.id) && t.objectsOverwritten === 0;
  const toJudge = uncovered.filter((t) => !trusted(t));
  const checkedAtCommit = uncovered.length - toJudge.length;
  if (toJudge.length === 0) return { clean: true, throughTxn, findings: [], judged: 0, checkedAtCommit, decoded: 0 };

  // The whole history since the last compaction is decoded: each manifest is judged against the
  // one before, and the relisting rule needs every id listed earlier. After routine compactions
  // that history is short.
  const first = history.transactions.find((t) => t.manifest);
  const mode = first ? objectMode(await history.readManifest(first)) : null;
  if (mode === null) {
    return {
      clean: false,
      throughTxn,
      findings: [{ id: toJudge[0]!.id, session: null, key: null, role: null, reasons: ['no manifest of the history can be read, so its archives cannot be judged'] }],
      judged: toJudge.length,
      checkedAtCommit,
      decoded: 0,
    };
  }
  let read;
  try {
    read = await readManifests(history, mode, input.key, true);
  } catch (error) {
    return {
      clean: false,
      throughTxn,
      findings: [{ id: toJudge[0]!.id, session: null, key: null, role: null, reasons: [(error as Error).message] }],
      judged: toJudge.length,
      checkedAtCommit,
      decoded: 0,
    };
  }
  const report = auditHistory(history, input.attributions, read, input.retentionOf ? { retentionOf: input.retentionOf, firstSeen: input.firstSeen } : undefined);
  const byId = new Map(report.transactions.map((t) => [t.id, t]));
  const findings: KeyGateFinding[] = [];
  for (const t of toJudge) {
    const a = byId.get(t.id);
    if (!a) continue;
    // A suspicious transaction's reasons come first, its notices after (audit.ts): all are shown.
    const reasons = a.verdict === 'suspicious' ? [...a.reasons] : [];
    const who = input.attributions.find((x) => x.borgTransactionId === t.id && x.sessionId === a.session);
    if (a.role === 'prune' && (a.archivesRemoved?.length ?? 0) > 0 && who && input.grantGone?.(who)) {
      reasons.push(`the prune key's grant on the repository is gone, so its rule cannot vouch for removing ${a.archivesRemoved!.join(', ')}`);
    }
    if (reasons.length > 0) findings.push({ id: t.id, session: a.session, key: a.key, role: a.role, reasons });
  }
  return { clean: findings.length === 0, throughTxn, findings, judged: toJudge.length, checkedAtCommit, decoded: read.manifests.size };
}

/** "transaction 12 (session 7, key 'laptop', append role): reason; reason": one per finding. */
export function describeFindings(findings: readonly KeyGateFinding[], max = 3): string {
  const shown = findings.slice(0, max).map((f) => {
    const who = [f.session !== null ? `session ${f.session}` : '', f.key ? `key '${f.key}'` : '', f.role ? `${f.role} role` : ''].filter(Boolean).join(', ');
    return `transaction ${f.id}${who ? ` (${who})` : ''}: ${f.reasons.join('; ')}`;
  });
  return shown.join('; ') + (findings.length > max ? `; and ${findings.length - max} more` : '');
}
