// Archive rules at the commit (issue 14): for a repository whose key borgkeep holds, every manifest
// `put` of a writing session is decrypted, its TAM checked, and judged against the committed
// manifest and the session's earlier manifest puts with the one judgement of a manifest change
// (archive/manifest-change.ts), before the guard forwards it. What the session's role may not do is
// refused there, so borg serve never sees it:
//   - append adds archives whose archive objects it wrote in this session, and its own checkpoints;
//   - prune only removes, within its grant's retention rule, and at most --max-removals-per-day per
//     UTC day (claimed atomically in the store, given back when borg rolls the transaction back);
//   - full may do anything (the compaction gate still applies); its judgement only decides whether
//     the transaction counts as checked (transactions.archive_checked).
// Once a manifest put was refused, the session may write and commit nothing more: a hostile client
// that commits anyway would otherwise make the deletes that came before it permanent while the
// manifest still lists their archives. For the same reason a prune transaction that deleted older
// objects commits only with a manifest put that was judged and allowed.
//
// A key the vault holds but that cannot be used (the vault locked in this process, the passphrase
// no longer unlocking the key, a manifest that does not open) fails closed for append and prune:
// the admin opted in to these rules, and a silent fall-back would let removals through.
//
// Only manifest puts (id 0) come here: every other put goes its way at the guard's usual cost.
// Never writes the repository; writes only the store (removal claims, archive sightings).

import { countedRemovals, formatDuration, judgeManifestChange, type ArchiveEntry, type ManifestFinding, type ManifestJudgement } from '../archive/manifest-change.js';
import { isEncrypted, objectMode, openObject, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { parseManifest, type Manifest } from '../repository/manifest.js';
import { parseRepoConfig } from '../repository/repo-config.js';
import type { ArchiveSightingRecord } from '../store/archive-sighting-store.js';
import type { Grant, GuardStore, Repository, Role } from '../store/types.js';
import { readCurrentManifestEnvelope } from '../vault/repository-key.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The guard's seam for the key: the repository's unlocked key, or null when borgkeep holds none. */
export type RepositoryKeySource = (repository: Repository, repositoryPath: string) => BorgKey | null;

export interface ArchiveRulesDeps {
  readonly store: Pick<GuardStore, 'claimRemovals' | 'releaseRemovals' | 'recordArchiveSightings' | 'listArchiveSightings'>;
  readonly now: () => Date;
}

export interface ArchiveRulesSession {
  readonly sessionId: number;
  readonly repository: Repository;
  readonly repositoryPath: string;
  readonly role: Role;
  readonly grant: Grant;
}

export interface Refusal {
  readonly allow: false;
  /** What the session may not do, for the client: "an append key may not remove archive 'a'". */
  readonly refusal: string;
  /** The rule, in a few words or as the grant's options: "append adds only", "--min-age 30d". */
  readonly rule: string;
}
export type PutVerdict = { readonly allow: true } | Refusal;

export interface SessionArchiveRules {
  /**
   * Decides a manifest put before it is forwarded. `putBySession(id)`: whether the session wrote
   * the object itself (in its open transaction or one it committed).
   */
  judgePut(data: Buffer, putBySession: (id: Buffer) => boolean): Promise<PutVerdict>;
  /**
   * Decides a commit: refused after a refused manifest put, and for a prune transaction that
   * deleted older objects without a manifest put judged and allowed. An allowed commit's
   * transaction is what the next manifest put is judged against (and given up again when borg
   * answers it with an error).
   */
  judgeCommit(deletedOlder: number): PutVerdict;
  /** Decides any other write (put of an object, delete): refused after a refused manifest put. */
  judgeWrite(): PutVerdict;
  /**
   * borg answered the oldest commit judgeCommit allowed: committed as transaction `txn` (ok), or
   * not (then its removal claims are given back and the session writes nothing more). Returns
   * whether every manifest put of the transaction was judged with the key and allowed with
   * nothing suspicious (transactions.archive_checked), and the store write for the guard's
   * ledger: the server's first sighting of the archives it added, or the claims given back.
   */
  commitAnswered(ok: boolean, txn: number | null): { readonly archiveChecked: boolean; readonly write: (() => Promise<unknown>) | null };
  /** borg rolled the open transaction back (a rollback, or the session ended): its removal claims are given back. */
  rolledBack(): (() => Promise<unknown>) | null;
}

const ROLE_KEY: Record<Role, string> = { read: 'a read key', append: 'an append key', prune: 'a prune key', full: 'a full key' };

/** The retention rule of a prune grant, or null when it has none that the judgement applies. */
function retentionRule(grant: Grant): { minAgeSeconds: number | null; keepLast: number | null; prefix: string | null } | null {
  if (grant.minAgeSeconds === null && grant.keepLast === null && grant.prefix === null) return null;
  return { minAgeSeconds: grant.minAgeSeconds, keepLast: grant.keepLast, prefix: grant.prefix };
}

/**
 * The archive rules of one session, or null when borgkeep holds no key for the repository (the
 * session then works exactly as without this file). Called at `open` for writing roles: unlocking
 * a key (borg's PBKDF2) happens there, while borg serve starts, not at the commit.
 */
export function createArchiveRules(deps: ArchiveRulesDeps, keySource: RepositoryKeySource, s: ArchiveRulesSession): SessionArchiveRules | null {
  let key: BorgKey | null = null;
  /** Why the held key cannot be used; append and prune are refused their manifest puts then. */
  let unusable: string | null = null;
  try {
    key = keySource(s.repository, s.repositoryPath);
    if (!key) return null;
  } catch (e) {
    unusable = `borgkeep holds this repository's key but cannot use it (${(e as Error).message.replace(/\.$/, '')})`;
  }
  const actor = ROLE_KEY[s.role];
  const enforced = s.role === 'append' || s.role === 'prune';
  const rule = s.role === 'prune' ? retentionRule(s.grant) : null;

  // The manifest as committed (loaded at the first manifest put), and the mode its envelope has.
  let loaded = false;
  let committed: Manifest | null = null;
  let mode: KeyMode | null = null;
  // The open transaction: its last manifest put allowed, the judgement of it against the
  // committed manifest, whether every put was checked, and the removals it claimed.
  interface Txn {
    lastPut: Manifest | null;
    judgement: ManifestJudgement | null;
    puts: number;
    checked: boolean;
    claimed: number;
    claims: number[];
  }
  const fresh = (): Txn => ({ lastPut: null, judgement: null, puts: 0, checked: true, claimed: 0, claims: [] });
  let txn = fresh();
  /** Commits forwarded and not answered yet, oldest first, with the manifest committed before each. */
  const sent: Array<{ txn: Txn; before: Manifest | null }> = [];
  /** Set by a refused manifest put: nothing more of the session is written. */
  let refused: Refusal | null = null;
  // The server's first sightings (prune rules only), by "archive id + name", and those of
  // committed archives it never saw before, recorded with the next commit.
  let sightings: Map<string, Date> | null = null;
  const pendingBaseline: ArchiveSightingRecord[] = [];

  const refuse = (refusal: string, ruleText: string): Refusal => {
    const v: Refusal = { allow: false, refusal, rule: ruleText };
    refused ??= v;
    return v;
  };

  const loadCommitted = async (): Promise<void> => {
    if (loaded) return;
    const config = parseRepoConfig(readFileSync(join(s.repositoryPath, 'config'), 'utf8'));
    const envelope = await readCurrentManifestEnvelope(s.repositoryPath, config);
    if (envelope) {
      mode = objectMode(envelope);
      if (mode === null) throw new Error("the committed manifest has an unknown encryption type");
      committed = parseManifest(await openObject(envelope, mode, key), key, true);
    }
    loaded = true;
  };

  const loadSightings = async (): Promise<Map<string, Date>> => {
    if (sightings) return sightings;
    const map = new Map<string, Date>();
    for (const r of await deps.store.listArchiveSightings(s.repository.id)) {
      const k = `${r.archiveId} ${r.name}`;
      const seen = map.get(k);
      if (!seen || r.firstSeenAt < seen) map.set(k, r.firstSeenAt);
    }
    // Archives the server never saw before count as first seen now: that is recorded with the
    // commit, so their --min-age runs from this look on (an audit that knows better keeps the
    // earlier time, archive-sighting-store.ts).
    const now = deps.now();
    for (const a of committed ? judgeManifestChange({ previous: 'unknown', next: committed, role: null, serverTime: null }).change.appeared : []) {
      if (map.has(`${a.id} ${a.name}`)) continue;
      map.set(`${a.id} ${a.name}`, now);
      pendingBaseline.push({ archiveId: a.id, name: a.name, clientTime: a.time, firstSeenAt: now, transactionId: -1, baseline: true });
    }
    sightings = map;
    return map;
  };

  /** The first suspicious finding's refusal; the rest are in the ledger's message too. */
  const refusalOf = (findings: readonly ManifestFinding[]): PutVerdict => {
    const bad = findings.filter((f) => f.suspicious);
    const first = bad[0] as ManifestFinding;
    const more = bad.length > 1 ? `; also: ${bad.slice(1, 4).map((f) => f.refusal ?? f.message).join('; ')}` : '';
    // A retention finding names the grant's whole rule: the admin set them together.
    return refuse(`${first.refusal ?? first.message}${more}`, first.kind === 'retention' ? describeRetention(s.grant) : (first.rule ?? 'archive rules'));
  };

  return {
    async judgePut(data, putBySession) {
      if (refused) return refused;
      txn.puts++;
      const unchecked = (why: string): PutVerdict => {
        txn.checked = false;
        return enforced ? refuse(`${actor} may not write a manifest borgkeep cannot judge: ${why}`, 'archive rules need the held key') : { allow: true };
      };
      if (unusable || !key) return unchecked(unusable ?? 'no key');
      let next: Manifest;
      try {
        await loadCommitted();
        const putMode = mode ?? objectMode(data);
        if (putMode === null || !isEncrypted(putMode)) return unchecked('the manifest is not encrypted with the repository key');
        next = parseManifest(await openObject(data, putMode, key), key, true);
      } catch (e) {
        return unchecked(`the manifest does not open with the repository's key (${(e as Error).message.replace(/\.$/, '')})`);
      }
      const now = deps.now();
      let judged: ManifestJudgement;
      let step: ManifestJudgement | null = null;
      try {
        const seen = rule && (rule.minAgeSeconds !== null || rule.keepLast !== null) ? await loadSightings() : null;
        judged = judgeManifestChange({
          previous: committed,
          next,
          role: s.role,
          serverTime: now,
          tamRequired: key.tamRequired,
          ...(s.role === 'append' && { writtenByWriter: (id: string) => putBySession(Buffer.from(id, 'hex')) }),
          ...(rule && { retention: { rule, now, firstSeen: (a: ArchiveEntry) => seen?.get(`${a.id} ${a.name}`) ?? null } }),
        });
        // Against the session's earlier put in this transaction too: a step back from it (a
        // timestamp going back, an archive of its own retimed) is no step borg takes.
        if (txn.lastPut) step = judgeManifestChange({ previous: txn.lastPut, next, role: s.role, serverTime: now, tamRequired: key.tamRequired });
      } catch (e) {
        return unchecked(`the manifest is malformed (${(e as Error).message.replace(/\.$/, '')})`);
      }
      const findings = [...judged.findings, ...(step?.findings ?? []).filter((f) => f.suspicious && !judged.findings.some((g) => g.refusal === f.refusal))];
      const suspicious = findings.some((f) => f.suspicious);
      if (suspicious && enforced) return refusalOf(findings);
      if (suspicious) txn.checked = false;

      if (s.role === 'prune' && s.grant.maxRemovalsPerDay !== null) {
        const removals = countedRemovals(judged.change).length;
        const more = removals - txn.claimed;
        if (more > 0) {
          const limit = s.grant.maxRemovalsPerDay;
          const claim = await deps.store.claimRemovals({ sessionId: s.sessionId, grantId: s.grant.id, repositoryId: s.repository.id, archives: more, limit, at: now });
          if (!claim.claimed) {
            return refuse(
              `${actor} may not remove ${more} more ${more === 1 ? 'archive' : 'archives'} today: the grant allows ${limit} per UTC day and ${claim.used} ${claim.used === 1 ? 'is' : 'are'} already removed or being removed`,
              `--max-removals-per-day ${limit}`,
            );
          }
          if (claim.claimId !== null) txn.claims.push(claim.claimId);
          txn.claimed = removals;
        }
      }
      txn.lastPut = next;
      txn.judgement = judged;
      return { allow: true };
    },

    judgeCommit(deletedOlder) {
      if (refused) return { allow: false, refusal: `${actor} may not commit after borgkeep refused its manifest (${refused.refusal})`, rule: refused.rule };
      if (s.role === 'prune' && deletedOlder > 0 && (txn.puts === 0 || !txn.checked)) {
        return refuse(`${actor} may not delete archive data without removing the archive from the manifest in the same transaction`, 'prune only removes archives');
      }
      sent.push({ txn, before: committed });
      if (txn.lastPut) committed = txn.lastPut;
      txn = fresh();
      return { allow: true };
    },

    judgeWrite() {
      return refused ? { allow: false, refusal: `${actor} may not write more after borgkeep refused its manifest (${refused.refusal})`, rule: refused.rule } : { allow: true };
    },

    commitAnswered(ok, txnId) {
      const done = sent.shift();
      if (!done) return { archiveChecked: false, write: null };
      const t = done.txn;
      if (!ok) {
        // borg kept the manifest before; what was judged after this commit was sent was judged
        // against one borg never committed, so nothing more is written in this session.
        committed = done.before;
        refuse(`${actor} may not write more after borg could not commit its transaction`, 'archive rules');
        return { archiveChecked: false, write: t.claims.length > 0 ? () => deps.store.releaseRemovals(t.claims) : null };
      }
      const at = deps.now();
      // Baseline sightings wait for a commit with a transaction id to record them with.
      const baseline = txnId === null ? [] : pendingBaseline.splice(0).map((b) => ({ ...b, transactionId: txnId }));
      const appeared = txnId === null ? [] : (t.judgement?.change.appeared ?? []).map((a) => ({ archiveId: a.id, name: a.name, clientTime: a.time, firstSeenAt: at, transactionId: txnId, baseline: false }));
      const rows: ArchiveSightingRecord[] = [...baseline, ...appeared];
      for (const r of appeared) if (!sightings?.has(`${r.archiveId} ${r.name}`)) sightings?.set(`${r.archiveId} ${r.name}`, at);
      return { archiveChecked: t.puts > 0 && t.checked && unusable === null, write: rows.length > 0 ? () => deps.store.recordArchiveSightings(s.repository.id, rows) : null };
    },

    rolledBack() {
      const claims = txn.claims;
      txn = fresh();
      return claims.length > 0 ? () => deps.store.releaseRemovals(claims) : null;
    },
  };
}

/** "--min-age 30d" etc. for messages that name a grant's whole rule. */
export function describeRetention(grant: Grant): string {
  const parts: string[] = [];
  if (grant.minAgeSeconds !== null) parts.push(`--min-age ${formatDuration(grant.minAgeSeconds)}`);
  if (grant.keepLast !== null) parts.push(`--keep-last ${grant.keepLast}`);
  if (grant.prefix !== null) parts.push(`--prefix ${grant.prefix}`);
  if (grant.maxRemovalsPerDay !== null) parts.push(`--max-removals-per-day ${grant.maxRemovalsPerDay}`);
  return parts.join(' ');
}
