// The server's archive checks (issue 18 point 5): for each repository the server can read (its key
// in the vault, or unencrypted), every archive of the committed manifest that has no verdict yet is
// measured (archive-measure.ts), judged against the repository's rules (check-rules.ts) and its
// verdict recorded once (archive-check-store.ts), which the `archive-check` alert and the archive
// lists show. The checks job of `borgkeep serve` runs it every half minute; a repository whose
// committed transaction has not moved since its last complete look costs one directory listing.
//
// The first look at a repository (no verdict recorded for it yet) checks only the newest archive
// of each prefix and records the older ones as skipped: a key handed over for a repository with a
// year of archives must not become a year of alerts. At most MAX_PER_RUN archives a repository are
// checked per run; the rest follow in the next runs.
//
// Never takes borg's lock, never writes into a repository (the browse readers read the last
// committed transaction); the key stays in this process and never reaches a finding or the store.

import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { listManifestArchives } from '../browse/archive-reader.js';
import { KeyNeededError, openObjectReader, type ObjectReader } from '../browse/object-reader.js';
import type { BorgKey } from '../repository/borg-key.js';
import { latestIndexTransaction } from '../repository/hash-index.js';
import type { ManifestArchive } from '../repository/manifest.js';
import { nextTurn } from '../shared/event-loop.js';
import { formatBytes } from '../shared/size.js';
import type { Store } from '../store/database.js';
import type { Repository } from '../store/types.js';
import { VaultLockedError } from '../vault/vault.js';
import { CheckLater, measureArchive } from './archive-measure.js';
import { NO_RULES, archiveCheckKey, archivePrefix, judgeArchive, previousOfPrefix, type ArchiveMeasure } from './check-rules.js';

/** The most archives of one repository checked in one run. */
export const MAX_PER_RUN = 50;

export interface ArchiveCheckServiceDeps {
  store: Pick<Store, 'paths' | 'listRepositoryRecords' | 'getCheckRules' | 'listArchiveChecks' | 'recordArchiveCheck' | 'markArchiveChecksGone'>;
  /** The unlocked key of a repository (createRepositoryKeySource); null when the vault holds none. Throws when the vault is sealed or the key no longer opens it. */
  repositoryKey: (repository: Repository, repositoryPath: string) => BorgKey | null;
}

export interface RepositoryCheckRun {
  readonly repository: string;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  /** Archives without a verdict still (more than MAX_PER_RUN, or the repository changed under the reader). */
  readonly pending: number;
}

const archiveKey = (a: { id: string; name: string }) => archiveCheckKey(a.id, a.name);
const byTime = (a: ManifestArchive, b: ManifestArchive) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export function createArchiveCheckService(deps: ArchiveCheckServiceDeps) {
  // Per repository, the committed transaction (and whether a key was held) of the last look that
  // left nothing to check: an unchanged repository is not opened again.
  const settled = new Map<number, string>();

  /** Checks the archives of one repository that have no verdict; null when the server cannot read it. */
  async function checkRepository(repository: Repository): Promise<RepositoryCheckRun | null> {
    const path = deps.store.paths.repository(repository.dirName);
    if (!existsSync(join(path, 'config'))) return null;
    const txn = latestIndexTransaction(path);
    if (txn === null) return null;
    let key: BorgKey | null;
    try {
      key = deps.repositoryKey(repository, path);
    } catch (error) {
      // A vault sealed with a master passphrase this server was not given: its archive list says so.
      if (error instanceof VaultLockedError) return null;
      throw error;
    }
    const mark = `${txn} ${key ? 'key' : 'none'}`;
    if (settled.get(repository.id) === mark) return { repository: repository.name, passed: 0, failed: 0, skipped: 0, pending: 0 };
    let objects: ObjectReader;
    try {
      objects = await openObjectReader(path, key);
    } catch (error) {
      // Encrypted and no key held: nothing the server can check (the console says the key is not held).
      if (error instanceof KeyNeededError) return null;
      throw error;
    }
    try {
      const archives = listManifestArchives(objects).sort(byTime);
      await deps.store.markArchiveChecksGone(repository.id, new Set(archives.map(archiveKey)));
      const verdicts = await deps.store.listArchiveChecks(repository.id);
      const done = new Set(verdicts.map((v) => archiveKey({ id: v.archiveId, name: v.archiveName })));
      const rules = (await deps.store.getCheckRules(repository.id)) ?? NO_RULES;
      let todo = archives.filter((a) => !done.has(archiveKey(a)));
      const run = { repository: repository.name, passed: 0, failed: 0, skipped: 0, pending: 0 };
      if (verdicts.length === 0 && todo.length > 0) {
        const newest = new Map<string, ManifestArchive>();
        for (const a of todo) newest.set(archivePrefix(a.name), a); // sorted by time: the last wins
        const keep = new Set([...newest.values()].map(archiveKey));
        for (const a of todo) {
          if (keep.has(archiveKey(a))) continue;
          await deps.store.recordArchiveCheck({
            repositoryId: repository.id,
            archiveId: a.id,
            archiveName: a.name,
            archiveTime: a.time,
            verdict: 'skipped',
            findings: [],
            notes: ['in the repository before its archives were first checked: not checked'],
            figures: null,
          });
          run.skipped++;
        }
        todo = todo.filter((a) => keep.has(archiveKey(a)));
      }
      for (const [i, a] of todo.entries()) {
        if (i >= MAX_PER_RUN) {
          run.pending = todo.length - i;
          break;
        }
        const previous = previousOfPrefix(a, archives);
        let measure: ArchiveMeasure;
        try {
          measure = await measureArchive(objects, key, a.name, previous?.name ?? null, rules);
        } catch (error) {
          if (error instanceof CheckLater) {
            run.pending = todo.length - i;
            break;
          }
          throw error;
        }
        const judged = judgeArchive(repository.name, a.name, measure, rules, formatBytes);
        await deps.store.recordArchiveCheck({
          repositoryId: repository.id,
          archiveId: a.id,
          archiveName: a.name,
          archiveTime: a.time,
          verdict: judged.verdict,
          findings: judged.findings,
          notes: judged.notes,
          figures: judged.figures,
        });
        if (judged.verdict === 'passed') run.passed++;
        else run.failed++;
      }
      if (run.pending === 0) settled.set(repository.id, mark);
      return run;
    } finally {
      await objects.close();
    }
  }

  return {
    checkRepository,
    /** Every repository the server can read; one line for the job list. Throws when some could not be checked. */
    async checkAll(): Promise<string> {
      const parts: string[] = [];
      const failures: string[] = [];
      for (const repository of await deps.store.listRepositoryRecords()) {
        // An unchanged repository costs no real wait: without a turn between them the pass over
        // every repository was one task that held the API (src/shared/event-loop.ts).
        await nextTurn();
        try {
          const r = await checkRepository(repository);
          if (r === null || r.passed + r.failed + r.skipped + r.pending === 0) continue;
          const said = [r.passed > 0 && `${r.passed} passed`, r.failed > 0 && `${r.failed} failed`, r.skipped > 0 && `${r.skipped} skipped`, r.pending > 0 && `${r.pending} left for the next run`].filter(Boolean);
          parts.push(`${r.repository}: ${said.join(', ')}`);
        } catch (error) {
          failures.push(`${repository.name}: ${withoutPaths(error, deps.store.paths.root)}`);
        }
      }
      if (failures.length > 0) throw new Error(`could not check the archives of ${failures.join('; ')}`);
      return parts.length > 0 ? parts.join('; ') : 'no new archives';
    },
  };
}

/** An error's message without the server's paths (they never reach the job list). */
function withoutPaths(error: unknown, root: string): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split(root).join('the data directory').replace(/(^|[\s'"(])\/[^\s'",)]+/g, '$1(a server path)');
}

export type ArchiveCheckService = ReturnType<typeof createArchiveCheckService>;
