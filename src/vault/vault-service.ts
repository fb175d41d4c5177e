// Handing a repository's key to borgkeep and taking it back, for the CLI and the API alike: the
// material is checked against the repository on disk (the key unlocks, the current manifest opens
// with it and its TAM verifies) before anything is stored, so the vault never holds a passphrase
// that does not read the repository. Never puts the passphrase or the key text into a message,
// a log line, the ledger or an answer.

import { BorgkeepError } from '../errors.js';
import { KeyError } from '../repository/borg-key.js';
import type { KeyMode } from '../repository/borg-key.js';
import { checkRepositoryKey } from './repository-key.js';
import type { RepositoryKeyMaterial, Vault } from './vault.js';

/** Far above any passphrase a person types and any key file borg writes (~700 bytes). */
export const MAX_PASSPHRASE_BYTES = 4096;
export const MAX_KEY_FILE_BYTES = 64 * 1024;

export interface VaultRepository {
  readonly name: string;
  readonly dirName: string;
}

export interface HandedOver {
  readonly mode: KeyMode;
  readonly archives: number;
}

export interface VaultService {
  holds(repository: VaultRepository): boolean;
  /** `holds` for many repositories at once (the dashboard): the vault is listed once per call of holdings(). */
  holdings(): (repository: VaultRepository) => boolean;
  /** Checks the material against the repository, then seals it; BK_ERR_INVALID_INPUT when it does not read it. */
  handOver(repository: VaultRepository, m: RepositoryKeyMaterial): Promise<HandedOver>;
  /** False when borgkeep did not hold the key. */
  forget(repository: VaultRepository): boolean;
}

export function createVaultService(deps: { vault: Vault; repositoryPath: (dirName: string) => string }): VaultService {
  return {
    holds: (repository) => deps.vault.has(repository.dirName),
    holdings() {
      if (!deps.vault.held) return (repository) => deps.vault.has(repository.dirName);
      const held = deps.vault.held();
      return (repository) => held.has(repository.dirName);
    },
    async handOver(repository, m) {
      if (m.passphrase.length === 0) throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'the passphrase is empty');
      if (Buffer.byteLength(m.passphrase) > MAX_PASSPHRASE_BYTES) throw new BorgkeepError('BK_ERR_INVALID_INPUT', `the passphrase is longer than ${MAX_PASSPHRASE_BYTES} bytes`);
      if (m.keyFile !== null && Buffer.byteLength(m.keyFile) > MAX_KEY_FILE_BYTES) throw new BorgkeepError('BK_ERR_INVALID_INPUT', 'the key file is too large to be a borg key file');
      let checked;
      try {
        checked = await checkRepositoryKey(deps.repositoryPath(repository.dirName), m);
      } catch (error) {
        if (error instanceof KeyError) throw new BorgkeepError('BK_ERR_INVALID_INPUT', `the key of repository '${repository.name}' was not stored: ${error.message}`);
        throw error;
      }
      deps.vault.put(repository.dirName, checked.material);
      return { mode: checked.mode, archives: checked.manifest.archiveCount };
    },
    forget: (repository) => deps.vault.forget(repository.dirName),
  };
}
