// Runs the audit of one repository on disk: config, key (when a passphrase is given), segment
// history, manifests decrypted per transaction, the ledger's attributions; see audit.ts for the
// verdicts. Read-only: it never takes borg's lock and never writes to the repository.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { BorgkeepError } from '../errors.js';
import { KeyError, keyBlobFromKeyfile, objectMode, openObject, unlockKey, isEncrypted, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { parseManifest } from '../repository/manifest.js';
import { RepoFormatError, parseRepoConfig } from '../repository/repo-config.js';
import { auditHistory, type Attribution, type AuditReport, type ManifestReading } from './audit.js';
import { readHistory } from './history.js';
import { openSegmentCache } from './segment-cache.js';

export interface AuditInput {
  readonly repoPath: string;
  readonly passphrase: string | null;
  /** Contents of a keyfile (keyfile modes), if given. */
  readonly keyFile: string | null;
  readonly attributions: readonly Attribution[];
  /** Where what earlier audits learnt from unchanged segments is kept; null: read every segment. */
  readonly cachePath: string | null;
}

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
  const history = await readHistory(repoPath, input.cachePath ? openSegmentCache(input.cachePath) : undefined);
  if (history.problems.length > 0) {
    const p = history.problems[0];
    const more = history.problems.length > 1 ? ` (and ${history.problems.length - 1} more problem(s))` : '';
    throw cannot(`its history is damaged: segment ${p.segment} at offset ${p.offset}: ${p.problem}${more}; run 'borg check' on it before trusting any of it`);
  }
  const firstManifest = history.transactions.find((t) => t.manifest)?.manifest ?? null;
  const mode = firstManifest ? objectMode(firstManifest) : null;

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

  const manifests = new Map<number, ManifestReading>();
  if (canRead) {
    for (const t of history.transactions) {
      if (!t.manifest) continue;
      try {
        const plain = await openObject(t.manifest, mode as KeyMode, key);
        manifests.set(t.id, { manifest: parseManifest(plain, key, checkTam) });
      } catch (error) {
        // Without this manifest the archive diffs after it mean nothing: no verdict at all.
        throw cannot(`the manifest of transaction ${t.id} cannot be read: ${(error as Error).message}`);
      }
    }
  }
  const report = auditHistory(history, manifests, input.attributions, canRead, checkTam);
  return { ...report, mode, locked: existsSync(join(repoPath, 'lock.exclusive')) };
}
