// Whether console viewers may browse a repository's archives (issue 18 point 2, migration 0025):
// names and metadata of archives and folders, never their content. Off unless an admin turns it on;
// downloads and restores stay with operators and admins whatever it says.

import type { StoreDeps } from './store-deps.js';

export interface BrowseAccess {
  readonly repositoryId: number;
  readonly viewersMayBrowse: boolean;
  /** When and by whom it was last set; null: never set (off). */
  readonly updatedAt: Date | null;
  readonly updatedBy: string | null;
}

export interface BrowseAccessStore {
  getBrowseAccess(repositoryId: number): Promise<BrowseAccess>;
  setBrowseAccess(repositoryId: number, viewersMayBrowse: boolean, by: string): Promise<BrowseAccess>;
}

export function createBrowseAccessStore({ db, now }: StoreDeps): BrowseAccessStore {
  return {
    async getBrowseAccess(repositoryId) {
      const row = await db.selectFrom('browse_access').selectAll().where('repository_id', '=', repositoryId).executeTakeFirst();
      return row
        ? { repositoryId, viewersMayBrowse: row.viewers_may_browse === 1, updatedAt: new Date(row.updated_at), updatedBy: row.updated_by }
        : { repositoryId, viewersMayBrowse: false, updatedAt: null, updatedBy: null };
    },

    async setBrowseAccess(repositoryId, viewersMayBrowse, by) {
      const values = { viewers_may_browse: viewersMayBrowse ? 1 : 0, updated_at: now().toISOString(), updated_by: by };
      const row = await db
        .insertInto('browse_access')
        .values({ repository_id: repositoryId, ...values })
        .onConflict((oc) => oc.column('repository_id').doUpdateSet(values))
        .returningAll()
        .executeTakeFirstOrThrow();
      return { repositoryId, viewersMayBrowse: row.viewers_may_browse === 1, updatedAt: new Date(row.updated_at), updatedBy: row.updated_by };
    },
  };
}
