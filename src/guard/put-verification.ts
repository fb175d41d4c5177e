// The guard's side of `--verify-objects`: for a session whose grant asks for it, every `put` is
// checked (src/archive/verify-object.ts) before it may go to borg serve. Set up at the session's
// first put: the repository's mode from its committed manifest's TYPE byte (never from what the
// client sends), its key from the vault. It fails closed: a grant that asks for verification
// gets no put through that cannot be verified (no key held, the vault sealed, a key that no
// longer unlocks, a repository whose mode cannot be read).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { createObjectVerifier, type ObjectVerifier } from '../archive/verify-object.js';
import { objectMode, type BorgKey } from '../repository/borg-key.js';
import { MANIFEST_ID } from '../repository/manifest.js';
import { parseRepoConfig } from '../repository/repo-config.js';
import type { Repository } from '../store/types.js';
import { readCurrentManifestEnvelope } from '../vault/repository-key.js';
import type { DenyReason } from './grant-policy.js';

export interface PutRefusal {
  readonly reason: DenyReason;
  /** Completes "borgkeep refused put: ...". */
  readonly why: string;
}

export type { RepositoryKeySource } from './archive-rules.js';
import type { RepositoryKeySource } from './archive-rules.js';

/** Checks one put (id, data); null when it may be forwarded. One per session. */
export type PutCheck = (id: Buffer, data: Buffer) => Promise<PutRefusal | null>;

export function createPutCheck(repositoryKey: RepositoryKeySource | undefined, repository: Repository, repositoryPath: string): PutCheck {
  let verifier: Promise<ObjectVerifier | PutRefusal | null> | null = null;
  const cannot = (why: string): PutRefusal => ({
    reason: 'BK_DENY_OBJECT_UNVERIFIED',
    why: `the grant asks for every object to be verified, and ${why}`,
  });

  /** The verifier, a refusal for every put, or null while the repository has no committed manifest. */
  const setUp = async (): Promise<ObjectVerifier | PutRefusal | null> => {
    let envelope: Buffer | null;
    try {
      const config = parseRepoConfig(readFileSync(join(repositoryPath, 'config'), 'utf8'));
      envelope = await readCurrentManifestEnvelope(repositoryPath, config);
    } catch {
      return cannot("borgkeep cannot read the repository's committed manifest to learn its encryption");
    }
    if (!envelope) return null;
    const mode = objectMode(envelope);
    if (!mode) return cannot("the repository's committed manifest has an unknown encryption type");
    let key: BorgKey | null = null;
    // `none` ids are plain SHA-256: verified without any key.
    if (mode !== 'none') {
      try {
        key = repositoryKey?.(repository, repositoryPath) ?? null;
      } catch {
        return cannot("borgkeep cannot unlock the repository's key (its vault is sealed in this process, or the key it holds no longer unlocks)");
      }
      if (!key) return cannot(`borgkeep holds no key for the repository: an admin hands it over with 'borgkeep repo key ${repository.name}'`);
    }
    try {
      return await createObjectVerifier(mode, key);
    } catch {
      return cannot(`the key borgkeep holds does not fit the repository's encryption (${mode})`);
    }
  };

  return async (id, data) => {
    verifier ??= setUp();
    const v = await verifier;
    if (v === null) {
      // Nothing committed yet (this session's own `borg init`): the manifest is the only object
      // such a session writes; there is no mode to check anything else against.
      return id.equals(MANIFEST_ID) ? null : cannot("the repository has no committed manifest to learn its encryption from");
    }
    if (!('verify' in v)) return v;
    const refusal = await v.verify(id, data);
    if (!refusal) return null;
    return { reason: refusal.kind === 'id' ? 'BK_DENY_OBJECT_ID' : 'BK_DENY_OBJECT_ENVELOPE', why: refusal.why };
  };
}
