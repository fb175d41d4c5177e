// Opening a registered repository for browsing, for the CLI and the API alike: the key from the
// vault's key source (null is fine for an unencrypted repository), an ObjectReader at the last
// committed transaction, and every failure as one BorgkeepError sentence that names the
// repository by its registered name, never by its folder on the server.

import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { BorgkeepError, conflict, invalidInput, isBorgkeepError, notFound } from '../errors.js';
import { KeyError, type BorgKey } from '../repository/borg-key.js';
import { BrowseError, KeyNeededError, openObjectReader, type ObjectReader } from './object-reader.js';

export interface BrowseRepository {
  readonly name: string;
  readonly dirName: string;
}

export interface OpenedForBrowse {
  readonly objects: ObjectReader;
  readonly key: BorgKey | null;
}

/** One sentence for anything reading the repository failed at (BorgkeepErrors pass unchanged). */
export function browseFailure(error: unknown, repo: string): unknown {
  if (isBorgkeepError(error)) return error;
  if (error instanceof KeyNeededError) {
    return conflict(`no key is held for repository '${repo}', so its archives cannot be read (an admin hands it over with 'borgkeep repo key ${repo} --passphrase-file FILE')`);
  }
  if (error instanceof KeyError) return conflict(`the key borgkeep holds for repository '${repo}' no longer opens it: ${error.message}`);
  if (error instanceof BrowseError) {
    const m = error.message;
    if (/^the repository has no archive named/.test(m)) return notFound(m.replace(/^the repository/, `repository '${repo}'`));
    if (/^archive '.*' has nothing at/.test(m)) return notFound(m.replace(/^archive '(.*?)'/, (_, a: string) => `archive '${a}' of repository '${repo}'`));
    return invalidInput(`cannot read repository '${repo}': ${m}`);
  }
  // A system error names a path on the server: say only what happened.
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string') return new BorgkeepError('BK_ERR_INTERNAL', `cannot read repository '${repo}' (${code})`);
  return error;
}

/** Opens the repository at its last committed transaction; the caller closes `objects`. */
export async function openForBrowse(repository: BrowseRepository, repositoryPath: string, keySource: () => BorgKey | null): Promise<OpenedForBrowse> {
  try {
    if (!existsSync(join(repositoryPath, 'config'))) throw new BrowseError('it is not initialised yet (no borg init has run)');
    const key = keySource();
    return { objects: await openObjectReader(repositoryPath, key), key };
  } catch (error) {
    throw browseFailure(error, repository.name);
  }
}
