// Runs the audit of one repository on disk: config, key (when a passphrase is given), segment
// history, manifests decrypted per transaction, the ledger's attributions; see audit.ts for the
// verdicts. Read-only: it never takes borg's lock and never writes to the repository.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { BorgkeepError } from '../errors.js';
import { KeyError, keyBlobFromKeyfile, objectMode, openObject, unlockKey, isEncrypted, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { parseManifest, type Manifest } from '../repository/manifest.js';
import { createArchiveList } from './archive-list.js';
import { RepoFormatError, parseRepoConfig } from '../repository/repo-config.js';
import { auditHistory, type Attribution, type AuditReport, type ManifestReading } from './audit.js';
import type { SegmentProblem } from '../repository/segments.js';
import { ManifestDamage, readHistory, type RepositoryHistory, type TxnHistory } from './history.js';
import { readKeptHistory, type KeptTransaction } from './kept-manifests.js';
import { openHistoryCache } from './history-cache.js';

export interface AuditInput {
  readonly repoPath: string;
  readonly passphrase: string | null;
  /** Contents of a keyfile (keyfile modes), if given. */
  readonly keyFile: string | null;
  readonly attributions: readonly Attribution[];
  /** Where what earlier audits learnt is kept (history-cache.ts; a path without extension); null: read every segment. */
  readonly cachePath: string | null;
  /**
   * Where borgkeep kept the transactions compaction removed (kept-manifests.ts), and the last one
   * verified with the key or approved: the audit starts from the newest kept manifest at or
   * before it, so what a client changed before a compaction can still be named.
   */
  readonly kept?: { readonly dir: string; readonly verifiedThrough: number | null } | null;
}

/** Manifests read ahead of the one being decrypted. */
const MANIFEST_READ_AHEAD = 16;

const cannot = (message: string) => new BorgkeepError('BK_ERR_INVALID_INPUT', message);

export async function runAudit(input: AuditInput): Promise<AuditReport & { mode: KeyMode | null; locked: boolean }> {
  const { repoPath } = input;
  if (!existsSync(join(repoPath, 'config'))) {
    const empty = !existsSync(repoPath) || readdirSync(repoPath).length === 0;
    throw cannot(empty ? 'the repository is not initialised yet: there is nothing to audit' : 'its directory holds no borg repository (there is no config file)');
  }
  let config;
  try {
    config = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
  } catch (error) {
    if (error instanceof RepoFormatError) throw cannot(`cannot read the repository: ${error.message}`);
    throw error;
  }
  const history = withKeptHistory(await readHistory(repoPath, input.cachePath ? openHistoryCache(input.cachePath) : undefined), input.kept ?? null);
  const damaged = (p: SegmentProblem, count = 1) =>
    cannot(`its history is damaged: segment ${p.segment} at offset ${p.offset}: ${p.problem}${count > 1 ? ` (and ${count - 1} more ${count === 2 ? 'problem' : 'problems'})` : ''}; run 'borg check' on it before trusting any of it`);
  if (history.problems.length > 0) throw damaged(history.problems[0], history.problems.length);
  const readManifest = async (t: TxnHistory): Promise<Buffer> => {
    try {
      return await history.readManifest(t);
    } catch (error) {
      if (error instanceof ManifestDamage) throw damaged(error.problem);
      throw error;
    }
  };
  const firstWithManifest = history.transactions.find((t) => t.manifest);
  const mode = firstWithManifest ? objectMode(await readManifest(firstWithManifest)) : null;

  let key: BorgKey | null = null;
  // Unencrypted modes (none, authenticated*) can be read without the key; only the TAM of the
  // authenticated modes needs it.
  const canRead = mode !== null && (!isEncrypted(mode) || input.passphrase !== null);
  if (mode !== null && mode !== 'none' && input.passphrase !== null) {
    const keyfileMode = mode === 'keyfile' || mode === 'keyfile-blake2';
    let blob: string | null = config.key;
    if (keyfileMode) {
      if (!input.keyFile) throw cannot(`the repository uses ${mode} encryption: give its key file with --key-file`);
      try {
        blob = keyBlobFromKeyfile(input.keyFile, config.id);
      } catch (error) {
        throw cannot((error as Error).message);
      }
    }
    if (!blob) throw cannot('the repository config has no key; give the key file with --key-file');
    try {
      key = unlockKey(blob, input.passphrase, config.id);
    } catch (error) {
      if (error instanceof KeyError) throw cannot(`cannot unlock the repository key: ${error.message}`);
      throw error;
    }
  }
  const checkTam = key !== null || mode === 'none';

  const read = canRead ? await readManifests(history, mode as KeyMode, key, checkTam, readManifest) : null;
  const report = auditHistory(history, input.attributions, read);
  return { ...report, mode, locked: existsSync(join(repoPath, 'lock.exclusive')) };
}

/** What auditHistory needs of the manifests: each transaction's, decoded, and the archives now. */
export type ManifestsRead = NonNullable<Parameters<typeof auditHistory>[2]>;

/**
 * Every manifest of the history, decrypted (with `key`; null for the unencrypted modes) and
 * parsed, in order; `checkTam`: whether the TAM is checked. The audit and the compaction gate's
 * audit with a held key (key-gate.ts) both read them here. One unreadable manifest makes the
 * archive diffs after it meaningless: it throws (BK_ERR_INVALID_INPUT) naming the transaction.
 */
export async function readManifests(
  history: RepositoryHistory,
  mode: KeyMode,
  key: BorgKey | null,
  checkTam: boolean,
  readManifest: (t: TxnHistory) => Promise<Buffer> = (t) => history.readManifest(t),
): Promise<ManifestsRead> {
  const manifests = new Map<number, ManifestReading>();
  const withManifest = history.transactions.filter((t) => t.manifest);
  // Read a few ahead: on a cold page cache each is a disk round trip.
  const envelopes = withManifest.map(() => null as Promise<Buffer> | null);
  const envelope = (i: number): Promise<Buffer> => {
    for (let j = i; j < Math.min(i + MANIFEST_READ_AHEAD, withManifest.length); j++) {
      if (!envelopes[j]) {
        envelopes[j] = readManifest(withManifest[j]);
        envelopes[j]?.catch(() => undefined); // awaited in order below
      }
    }
    return envelopes[i] as Promise<Buffer>;
  };
  const list = createArchiveList(history.compactedBefore === null);
  let previous: { sealed: Buffer; manifest: Manifest } | null = null;
  for (let i = 0; i < withManifest.length; i++) {
    const t = withManifest[i];
    const sealed = await envelope(i);
    envelopes[i] = null;
    // borg compact and borg with-lock put the manifest they read back, byte for byte.
    if (previous && previous.sealed.equals(sealed)) {
      manifests.set(t.id, { manifest: previous.manifest, diff: null, unchanged: true });
      continue;
    }
    try {
      const plain = await openObject(sealed, mode, key);
      const manifest = parseManifest(plain, key, checkTam);
      manifests.set(t.id, { manifest, diff: list.advance(manifest) });
      previous = { sealed, manifest };
    } catch (error) {
      // Without this manifest the archive diffs after it mean nothing: no verdict at all.
      throw cannot(`the manifest of transaction ${t.id} cannot be read: ${(error as Error).message}`);
    }
  }
  return { manifests, archives: list.archives(), tamChecked: checkTam };
}

/**
 * The history on disk with the kept transactions that compaction removed put back in front of it
 * (those before the last gap), from the newest kept manifest at or before `verifiedThrough`.
 */
export function withKeptHistory(history: RepositoryHistory, kept: AuditInput['kept'] | null): RepositoryHistory {
  if (!kept || history.compactedBefore === null) return history;
  const cut = history.compactedBefore;
  const found = readKeptHistory(kept.dir);
  let before = found.transactions.filter((t) => t.id < cut);
  if (before.length === 0) return history;
  if (kept.verifiedThrough !== null) {
    let base = -1;
    for (let i = 0; i < before.length; i++) if (before[i]!.id <= kept.verifiedThrough && before[i]!.manifestFile !== null) base = i;
    if (base > 0) before = before.slice(base);
  }
  const byId = new Map(before.map((t) => [t.id, t]));
  const asTxn = (t: KeptTransaction): TxnHistory => ({
    id: t.id,
    objectsPut: t.objectsPut,
    objectsOverwritten: t.objectsOverwritten,
    deletedOlder: t.deletedOlder,
    deletedOwn: t.deletedOwn,
    deletedUnknown: t.deletedUnknown,
    deletedOlderFrom: t.deletedOlderFrom,
    manifestPuts: t.manifestPuts,
    // Not a place on disk: readManifest below reads the kept file.
    manifest: t.manifestFile ? { segment: -1, offset: 0, size: 0 } : null,
    time: t.time,
    kept: true,
  });
  return {
    ...history,
    transactions: [...before.map(asTxn), ...history.transactions.filter((t) => t.id >= cut)],
    compactedBefore: before[0]!.first ? null : history.compactedBefore,
    async readManifest(t) {
      const k = t.kept ? byId.get(t.id) : undefined;
      return k ? found.readManifest(k) : history.readManifest(t);
    },
  };
}
