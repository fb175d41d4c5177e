// One verification of a repository as `borgkeep verify`, the daily verify job and the API do it:
// the key from the vault, verify-repository.ts over the objects written since the last verified
// transaction (or all of them), the archives that depend on each damaged or missing object, and
// a row in the store (verification-store.ts) that says how far it got and what it found, which
// the alert rules turn into a `verify-damage` alert. Never writes into the repository; the key is
// used in this process only and never reaches a finding, an error, a log or the store.

import { BorgkeepError } from '../errors.js';
import type { BorgKey, KeyMode } from '../repository/borg-key.js';
import type { Repository } from '../store/types.js';
import type { Store } from '../store/database.js';
import type { VerificationRecord } from '../store/verification-store.js';
import { VerifyError, verifyRepository, type FindingKind, type VerifyOutcome } from './verify-repository.js';

export { VerifyError } from './verify-repository.js';

/** A finding as the CLI, the API and the store show it: the object, what is wrong, who depends on it. */
export interface ReportedFinding {
  readonly kind: FindingKind;
  readonly id: string | null;
  readonly segment: number;
  readonly offset: number | null;
  readonly sentence: string;
  /** Archives whose metadata or files use the object (null: not known, e.g. the archives could not be read). */
  readonly archives: readonly string[] | null;
}

export interface VerifyReport {
  readonly repository: string;
  readonly verdict: 'intact' | 'damaged';
  readonly scope: 'changed' | 'all';
  readonly mode: KeyMode;
  readonly fromTxn: number | null;
  readonly throughTxn: number;
  readonly restartedBecause: string | null;
  readonly segmentsRead: number;
  readonly objectsRead: number;
  readonly bytesRead: number;
  /** Archives added since the last verification whose every referenced chunk was looked up. */
  readonly archivesChecked: readonly string[];
  readonly findings: readonly ReportedFinding[];
  /** Every archive named by a finding. */
  readonly affectedArchives: readonly string[];
  /** Why the archives could not be read (so findings name none), else null. */
  readonly archivesUnreadable: string | null;
}

/**
 * What the archives say (src/browse/archive-reader.ts): for each archive, the objects it uses.
 * A seam so the object check stands on its own: without it, findings name no archives.
 */
export interface ArchiveReferences {
  /** Per damaged or missing object id (hex), the archives that use it. */
  archivesUsing(ids: ReadonlySet<string>): Promise<Map<string, string[]>>;
  /**
   * For the archives `isNew` picks (those whose metadata object was among the objects read, so
   * added since the last verification): the chunks they reference that the index does not hold.
   */
  missingChunks(isNew: (archiveId: Buffer) => boolean): Promise<{ checked: string[]; missing: Map<string, string[]> }>;
  /** Bytes of objects the walks read. */
  bytesRead(): number;
  close(): Promise<void>;
}

export interface VerifyServiceDeps {
  store: Pick<Store, 'paths' | 'getRepository' | 'recordVerification' | 'lastVerification'>;
  /** The unlocked key of a repository (createRepositoryKeySource); null when the vault holds none. */
  repositoryKey: (repository: Repository, repoPath: string) => BorgKey | null;
  /** The archive walk for a repository read with `key`; left out, findings name no archives. */
  archiveReferences?: (repoPath: string, mode: KeyMode, key: BorgKey | null) => Promise<ArchiveReferences>;
}

export function createVerifyService(deps: VerifyServiceDeps) {
  return {
    /**
     * Verifies the objects written since the last verification (`all`: every object). Throws
     * VerifyError (could not verify) with one sentence; damage is a report, not an error.
     */
    async verify(repositoryName: string, input: { all: boolean; actor: string }): Promise<VerifyReport> {
      const repository = await deps.store.getRepository(repositoryName);
      const repoPath = deps.store.paths.repository(repository.dirName);
      const last = await deps.store.lastVerification(repository.id);
      let outcome: VerifyOutcome;
      let key: BorgKey | null;
      try {
        key = deps.repositoryKey(repository, repoPath);
        outcome = await verifyRepository({
          repoPath,
          key,
          all: input.all,
          since: last && last.throughTxn !== null ? { throughTxn: last.throughTxn, stamp: last.throughStamp } : null,
        });
      } catch (error) {
        const why = error instanceof VerifyError || error instanceof BorgkeepError ? error.message : withoutPaths(error, repoPath);
        await deps.store.recordVerification({
          repositoryId: repository.id,
          actor: input.actor,
          scope: input.all ? 'all' : 'changed',
          verdict: 'error',
          fromTxn: null,
          throughTxn: null,
          throughStamp: null,
          objectsRead: 0,
          bytesRead: 0,
          detail: why,
          findings: [],
        });
        throw new VerifyError(why);
      }

      let findings: ReportedFinding[] = outcome.findings.map((f) => ({ ...f, archives: null }));
      let archivesChecked: string[] = [];
      let archivesUnreadable: string | null = null;
      let archiveBytes = 0;
      if (deps.archiveReferences) {
        try {
          const refs = await deps.archiveReferences(repoPath, outcome.mode, key);
          try {
            const verified = outcome.verifiedIds;
            const { checked, missing } = await refs.missingChunks((id) => verified === null || verified.has(id.toString('hex')));
            archivesChecked = checked;
            for (const [id, archives] of missing) {
              findings.push({
                kind: 'missing',
                id,
                segment: outcome.through.throughTxn,
                offset: null,
                sentence: `chunk ${id.slice(0, 16)}… is missing: ${archives.length === 1 ? 'a new archive references' : 'new archives reference'} it, and the repository does not hold it.`,
                archives: null,
              });
            }
            // Deleted objects an archive still uses are missing too (a prune deletes only unused ones).
            const reported = new Set(findings.flatMap((f) => (f.id ? [f.id] : [])));
            const asked = new Set([...reported, ...outcome.deletedIds]);
            const using = asked.size > 0 ? await refs.archivesUsing(asked) : new Map<string, string[]>();
            for (const id of outcome.deletedIds) {
              if (reported.has(id) || !using.get(id)?.length) continue;
              findings.push({
                kind: 'missing',
                id,
                segment: outcome.through.throughTxn,
                offset: null,
                sentence: `object ${id.slice(0, 16)}… is missing: it was deleted${outcome.fromTxn === null ? '' : ` after transaction ${outcome.fromTxn}`}, and archives still use it.`,
                archives: null,
              });
            }
            findings = findings.map((f) => (f.id ? { ...f, archives: [...(using.get(f.id) ?? [])].sort() } : f));
            archiveBytes = refs.bytesRead();
          } finally {
            await refs.close();
          }
        } catch (error) {
          archivesUnreadable = error instanceof Error && error.name === 'BrowseError' ? error.message : withoutPaths(error, repoPath);
        }
      }
      const affected = [...new Set(findings.flatMap((f) => f.archives ?? []))].sort();
      const verdict = findings.length === 0 ? 'intact' : 'damaged';
      const report: VerifyReport = {
        repository: repository.name,
        verdict,
        scope: outcome.scope,
        mode: outcome.mode,
        fromTxn: outcome.fromTxn,
        throughTxn: outcome.through.throughTxn,
        restartedBecause: outcome.restartedBecause,
        segmentsRead: outcome.segmentsRead,
        objectsRead: outcome.objectsRead,
        bytesRead: outcome.bytesRead + archiveBytes,
        archivesChecked,
        findings,
        affectedArchives: affected,
        archivesUnreadable,
      };
      await deps.store.recordVerification({
        repositoryId: repository.id,
        actor: input.actor,
        scope: outcome.scope,
        verdict,
        fromTxn: outcome.fromTxn,
        throughTxn: outcome.through.throughTxn,
        throughStamp: outcome.through.stamp,
        objectsRead: outcome.objectsRead,
        bytesRead: report.bytesRead,
        detail: summary(report),
        findings,
      });
      return report;
    },
  };
}

const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** One sentence for the store and the job's result. */
export function summary(r: VerifyReport): string {
  const what = r.scope === 'all' || r.fromTxn === null ? 'every object' : `objects written after transaction ${r.fromTxn}`;
  const read = `${count(r.objectsRead, 'object')} read (${what}, through transaction ${r.throughTxn})`;
  if (r.verdict === 'intact') return `intact: ${read}`;
  const archives = r.affectedArchives.length > 0 ? `; archives affected: ${r.affectedArchives.join(', ')}` : '';
  return `damaged: ${count(r.findings.length, 'finding')} in ${read}${archives}`;
}

/** An unexpected error's message without the server's paths (they never reach a client or the store). */
function withoutPaths(error: unknown, repoPath: string): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split(repoPath).join('the repository').replace(/(^|[\s'"(])\/[^\s'",)]+/g, '$1(a server path)');
}

export type VerifyService = ReturnType<typeof createVerifyService>;
