// A repository's archive list as the server reads it: the committed manifest (index.N's entry for
// the all-zero id) opened with the key borgkeep holds in its vault, its TAM checked, each archive
// joined with the server's first sighting of it (archive_sightings) and the session whose commit
// first listed it (the ledger). One manifest decode and two indexed queries, whatever the number
// of archives. Read-only: never writes the repository, never records a sighting, and never puts a
// server path, the passphrase or the key into an answer.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { KeyError, ObjectError, objectMode, openObject, type BorgKey } from '../../repository/borg-key.js';
import { ManifestError, archiveEntries, archiveFromEntry, parseManifest } from '../../repository/manifest.js';
import { RepoFormatError, parseRepoConfig } from '../../repository/repo-config.js';
import type { ArchiveSightingRecord } from '../../store/archive-sighting-store.js';
import type { CommittedTransaction } from '../../store/ledger-store.js';
import { readCurrentManifestEnvelope } from '../../vault/repository-key.js';
import { VaultError } from '../../vault/vault.js';

/** A client's time this far from the server's first sighting marks a retimed archive. */
export const RETIMED_AFTER_MS = 86_400_000;

export interface ListedArchive {
  readonly name: string;
  readonly id: string;
  /** The archive's time as the client wrote it (borg writes UTC without a zone). */
  readonly time: string;
  /** When the server first saw a commit list it; null: not seen yet. */
  readonly firstSeenAt: string | null;
  /** The first sighting was in the first manifest read after a compaction: it appeared then or earlier. */
  readonly firstSeenBaseline: boolean;
  /** The client's time and the first sighting differ by more than a day (never for a baseline sighting, which is "then or earlier"). */
  readonly retimed: boolean;
  /** The session whose committed transaction first listed it, when the ledger tells; else null. */
  readonly addedBy: { readonly sessionId: number; readonly keyName: string | null; readonly role: string | null } | null;
}

export type ArchiveListing =
  | { readonly keyHeld: false; readonly reason: string; readonly archives: null }
  | { readonly keyHeld: true; readonly reason: string | null; readonly archives: ListedArchive[] | null };

export interface ArchiveListDeps {
  /** The vault's key source (createRepositoryKeySource): null when the key is not held. */
  readonly repositoryKey: (repository: { readonly dirName: string }, repositoryPath: string) => BorgKey | null;
  readonly repositoryPath: (dirName: string) => string;
  readonly store: {
    listArchiveSightings(repositoryId: number): Promise<ArchiveSightingRecord[]>;
    listCommittedTransactions(repositoryId: number): Promise<CommittedTransaction[]>;
  };
}

const NOT_HELD = "borgkeep does not hold this repository's key, so it cannot read its archive list (an admin can hand it over with `borgkeep repo key`).";

/** borg's archive time: ISO 8601 in UTC without a zone; null when it is not one. */
function clientTimeMs(time: string): number | null {
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$/.test(time)) return null;
  const ms = Date.parse(`${time.slice(0, 23)}Z`);
  return Number.isNaN(ms) ? null : ms;
}

export async function listArchives(deps: ArchiveListDeps, repository: { readonly id: number; readonly dirName: string }): Promise<ArchiveListing> {
  const path = deps.repositoryPath(repository.dirName);
  let key: BorgKey | null;
  try {
    key = deps.repositoryKey(repository, path);
  } catch (error) {
    // The messages below are ours: the causes' may name files of the data directory.
    if (error instanceof VaultError) return { keyHeld: true, reason: "borgkeep holds the key, but its vault is sealed with a master passphrase this server was not given, so the archive list cannot be read.", archives: null };
    if (error instanceof KeyError) return { keyHeld: true, reason: "the key borgkeep holds no longer unlocks the repository (was its passphrase changed?): hand the key over again to read the archive list.", archives: null };
    throw error;
  }
  if (!key) return { keyHeld: false, reason: NOT_HELD, archives: null };

  let entries: { name: string; id: string; time: string }[];
  try {
    const configPath = join(path, 'config');
    if (!existsSync(configPath)) return { keyHeld: true, reason: null, archives: [] };
    const envelope = await readCurrentManifestEnvelope(path, parseRepoConfig(readFileSync(configPath, 'utf8')));
    if (!envelope) return { keyHeld: true, reason: null, archives: [] };
    const mode = objectMode(envelope);
    if (mode === null || mode === 'none') throw new ManifestError('unknown mode');
    const manifest = parseManifest(await openObject(envelope, mode, key), key, true);
    // A manifest borg itself would refuse is not shown as if it were the repository's list.
    if (manifest.tam === 'invalid' || (manifest.tam === 'missing' && key.tamRequired)) {
      return { keyHeld: true, reason: "the repository's current manifest fails its authentication (TAM) check with the key borgkeep holds, so its archive list is not shown; audit the repository.", archives: null };
    }
    entries = [];
    for (const [rawName, rawEntry] of archiveEntries(manifest.archivesBody)) entries.push(archiveFromEntry(rawName, rawEntry));
  } catch (error) {
    if (error instanceof KeyError || error instanceof ManifestError || error instanceof ObjectError || error instanceof RepoFormatError) {
      return { keyHeld: true, reason: "the repository's current manifest cannot be read with the key borgkeep holds; audit the repository.", archives: null };
    }
    throw error;
  }

  const [sightings, committed] = await Promise.all([deps.store.listArchiveSightings(repository.id), deps.store.listCommittedTransactions(repository.id)]);
  const seen = new Map<string, ArchiveSightingRecord>();
  for (const s of sightings) seen.set(`${s.archiveId} ${s.name}`, s);
  // borg transaction ids repeat after a rollback: the ledger commit nearest the sighting is the one.
  const byTxn = new Map<number, CommittedTransaction[]>();
  for (const t of committed) {
    const list = byTxn.get(t.borgTransactionId);
    if (list) list.push(t);
    else byTxn.set(t.borgTransactionId, [t]);
  }
  const committer = (s: ArchiveSightingRecord): CommittedTransaction | null => {
    if (s.baseline) return null;
    let best: CommittedTransaction | null = null;
    for (const t of byTxn.get(s.transactionId) ?? []) {
      if (!best || Math.abs(t.at.getTime() - s.firstSeenAt.getTime()) < Math.abs(best.at.getTime() - s.firstSeenAt.getTime())) best = t;
    }
    return best;
  };

  const archives = entries.map((a): ListedArchive => {
    const s = seen.get(`${a.id} ${a.name}`);
    const by = s ? committer(s) : null;
    const clientMs = clientTimeMs(a.time);
    return {
      name: a.name,
      id: a.id,
      time: a.time,
      firstSeenAt: s ? s.firstSeenAt.toISOString() : null,
      firstSeenBaseline: s?.baseline ?? false,
      retimed: s !== undefined && !s.baseline && clientMs !== null && Math.abs(clientMs - s.firstSeenAt.getTime()) > RETIMED_AFTER_MS,
      addedBy: by ? { sessionId: by.sessionId, keyName: by.keyName, role: by.role } : null,
    };
  });
  return { keyHeld: true, reason: null, archives };
}
