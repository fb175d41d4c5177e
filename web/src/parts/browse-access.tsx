// Whether console viewers may browse this repository's archives (names and metadata of folders and
// files, and the search; never downloads): shown to everyone, switched by admins.
import { api } from '../api';
import { can, useMe } from '../app';
import { Time } from '../format';
import { useAction, useLoad } from '../hooks';

export interface BrowseAccess {
  repository: string;
  viewersMayBrowse: boolean;
  updatedAt: string | null;
  updatedBy: string | null;
}

export function useBrowseAccess(repository: string) {
  return useLoad(() => api<{ browseAccess: BrowseAccess }>('GET', `/repositories/${encodeURIComponent(repository)}/browse-access`).then((r) => r.browseAccess), [repository]);
}

export function BrowseAccessSwitch({ repository, access, onChange }: { repository: string; access: BrowseAccess | null; onChange: () => void }) {
  const me = useMe();
  const action = useAction();
  if (!access) return null;
  const set = async (on: boolean) => {
    if ((await action.run(() => api('PUT', `/repositories/${encodeURIComponent(repository)}/browse-access`, { viewersMayBrowse: on }))) !== undefined) onChange();
  };
  return (
    <div className="small" data-viewers-browse={access.viewersMayBrowse ? 'yes' : 'no'}>
      {can(me, 'admin') ? (
        <label>
          <input type="checkbox" checked={access.viewersMayBrowse} disabled={action.busy} onChange={(e) => set(e.target.checked)} /> Viewers may browse the files of these archives (names and
          metadata; downloads stay with operators and admins)
        </label>
      ) : (
        <span className="muted">
          {access.viewersMayBrowse ? 'Viewers may browse the files of these archives (names and metadata only).' : 'Only operators and admins may browse the files of these archives.'}
        </span>
      )}
      {access.updatedBy && (
        <span className="muted">
          {' '}
          Set by {access.updatedBy} <Time at={access.updatedAt} />.
        </span>
      )}
      {action.error && (
        <p className="error" role="alert">
          {action.error}
        </p>
      )}
    </div>
  );
}
