// "Remove this repository": a dialog that says what the repository holds (size, archives when
// borgkeep holds its key, sessions in the ledger, the keys that lose their grants) and where it
// goes, as the server does it (src/api/routes/repository-routes.ts, src/store/trash.ts): the
// registration and grants go; the files move to <data-dir>/trash, which borgkeep never empties;
// `borgkeep repo restore NAME` registers it again with its files, quota and interval, not its
// grants, retention policy, statistics or the vault's copy of its key. It must never claim more.
import { useEffect, useRef, useState } from 'react';
import { api, type Grant, type Repository } from '../api';
import { bytes, Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { navigate } from '../router';
import type { ArchiveListing } from './archive-list';

const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function RemoveRepository({ repository, grants, sessionsShown, sessionsLimit }: { repository: Repository; grants: Grant[]; sessionsShown: number; sessionsLimit: number }) {
  const [open, setOpen] = useState(false);
  return (
    <details className="danger-zone">
      <summary>Remove this repository</summary>
      <p>Removes the registration and its grants; the files move to the data directory’s trash and are never destroyed.</p>
      <button type="button" className="danger" onClick={() => setOpen(true)}>
        Remove {repository.name}…
      </button>
      {open && <RemoveDialog repository={repository} grants={grants} sessionsShown={sessionsShown} sessionsLimit={sessionsLimit} onClose={() => setOpen(false)} />}
    </details>
  );
}

function RemoveDialog({ repository: r, grants, sessionsShown, sessionsLimit, onClose }: { repository: Repository; grants: Grant[]; sessionsShown: number; sessionsLimit: number; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const action = useAction();
  const listing = useLoad(() => api<ArchiveListing>('GET', `/repositories/${encodeURIComponent(r.name)}/archives`), [r.name]);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  const archives = listing.data?.archives ?? null;
  const keys = grants.filter((g) => !g.keyRevoked).map((g) => g.keyName);
  const remove = async () => {
    if ((await action.run(() => api('DELETE', `/repositories/${encodeURIComponent(r.name)}`))) !== undefined) navigate('/');
  };
  return (
    <dialog ref={ref} className="approve-dialog remove-dialog" aria-labelledby="remove-title" onCancel={onClose}>
      <h3 id="remove-title">Remove repository {r.name}?</h3>
      <p>It holds:</p>
      <ul className="holds">
        <li data-holds="size">
          {r.initialized ? `${bytes(r.sizeBytes)} on disk` : 'no backups yet (borg init never ran)'}
          {r.quotaBytes !== null && ` (quota ${bytes(r.quotaBytes)})`}
          {r.lastBackupAt && (
            <>
              , last backup <Time at={r.lastBackupAt} />
            </>
          )}
        </li>
        <li data-holds="archives">
          {archives !== null
            ? count(archives.length, 'archive', 'archives')
            : listing.data
              ? 'archives: not known (borgkeep does not hold its key)'
              : listing.error
                ? 'archives: not known'
                : 'archives: counting…'}
        </li>
        <li data-holds="sessions">
          {sessionsShown >= sessionsLimit ? `${sessionsLimit} or more sessions` : count(sessionsShown, 'session', 'sessions')} in the ledger, which keeps them
        </li>
        <li data-holds="grants">{keys.length === 0 ? 'no grants' : `${count(keys.length, 'grant', 'grants')}, which go: ${keys.join(', ')} can no longer reach it`}</li>
      </ul>
      {r.initialized ? (
        <p data-goes="trash">
          Its files move to the trash in borgkeep’s data directory (<code>trash/</code>); nothing is destroyed, and borgkeep never empties the trash: an administrator
          deletes the directory there to free the space. To bring it back, run <code>borgkeep repo restore {r.name}</code> on the server: it comes back with its files,
          quota and interval, but not its grants, retention policy, size history or borgkeep’s copy of its key.
        </p>
      ) : (
        <p data-goes="trash">
          It has no backups, so there is little to keep: whatever borg created moves to the trash in borgkeep’s data directory, and{' '}
          <code>borgkeep repo restore {r.name}</code> brings back a repository only when it had files.
        </p>
      )}
      {action.error && <p className="error">{action.error}</p>}
      <div className="dialog-actions">
        <button type="button" className="danger" onClick={remove} disabled={action.busy}>
          {action.busy ? 'Removing…' : `Remove ${r.name}`}
        </button>
        <button type="button" className="secondary" onClick={onClose} disabled={action.busy}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}
