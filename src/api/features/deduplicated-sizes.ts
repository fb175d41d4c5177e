// How the API asks for archives' deduplicated sizes (the archive list and one archive's metadata):
// the figures kept for exactly these archives, else a computation off the request with a reader of
// its own, waited for REQUEST_WAIT_MS at most (src/browse/dedup-sizes.ts); null while computed.

import type { DeduplicatedSizes } from '../../browse/dedup-sizes.js';
import type { Repository } from '../../store/types.js';
import type { ApiContext } from '../api-server.js';

export async function requestDeduplicatedSizes(ctx: ApiContext, repository: Repository, archiveIds: readonly string[]): Promise<DeduplicatedSizes | null> {
  const [{ deduplicatedSizesOf, REQUEST_WAIT_MS }, { openForBrowse }] = await Promise.all([import('../../browse/dedup-sizes.js'), import('../../browse/open-browse.js')]);
  const path = ctx.store.paths.repository(repository.dirName);
  return deduplicatedSizesOf(ctx.store.paths.root).within(path, archiveIds, () => openForBrowse(repository, path, () => ctx.repositoryKey(repository, path)), REQUEST_WAIT_MS);
}
