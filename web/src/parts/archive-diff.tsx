// What changed between two archives, in the console (GET .../archives/:archive/diff?to=): the
// first thing an admin looks at after an incident. Added, removed and modified paths with sizes,
// in borg diff's terms, read by the server with the key it holds.
import { useState } from 'react';
import { api } from '../api';
import { bytes } from '../format';
import { useLoad } from '../hooks';

interface Change {
  type: string;
  size?: number;
  added?: number;
  removed?: number;
  oldMode?: string;
  newMode?: string;
  oldUser?: string | null;
  newUser?: string | null;
  oldGroup?: string | null;
  newGroup?: string | null;
}

function words(c: Change): string {
  switch (c.type) {
    case 'added':
      return `added (${bytes(c.size)})`;
    case 'removed':
      return `removed (${bytes(c.size)})`;
    case 'modified':
      return c.added || c.removed ? `modified (+${bytes(c.added)}, −${bytes(c.removed)})` : 'modified';
    case 'mode':
      return `mode ${c.oldMode} → ${c.newMode}`;
    case 'owner':
      return `owner ${c.oldUser}:${c.oldGroup} → ${c.newUser}:${c.newGroup}`;
    case 'ctime':
      return 'status changed';
    case 'mtime':
      return 'modification time changed';
    default:
      return c.type;
  }
}

export function ArchiveDiff({ repository, archive, others }: { repository: string; archive: string; others: string[] }) {
  const [other, setOther] = useState(others[0] ?? '');
  const [compared, setCompared] = useState<string | null>(null);
  const base = `/repositories/${encodeURIComponent(repository)}/archives/${encodeURIComponent(archive)}`;
  const diff = useLoad(
    () => (compared === null ? Promise.resolve(null) : api<{ changes: Array<{ path: string; changes: Change[] }>; sameChunkerParams: boolean }>('GET', `${base}/diff?to=${encodeURIComponent(compared)}`)),
    [base, compared],
  );
  if (others.length === 0) return null;
  return (
    <section aria-label={`Changes from archive ${archive}`} className="archive-diff">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setCompared(other);
        }}
      >
        <label>
          Compare <span className="mono">{archive}</span> with{' '}
          <select value={other} onChange={(e) => setOther(e.target.value)}>
            {others.map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </label>{' '}
        <button type="submit">Show changes</button>
      </form>
      {diff.error && <p className="error">{diff.error.message}</p>}
      {compared !== null && diff.data && (
        <>
          {!diff.data.sameChunkerParams && <p className="muted small">The two archives were cut with different chunker params: some files may show as modified though unchanged.</p>}
          {diff.data.changes.length === 0 ? (
            <p className="muted">No changes from {archive} to {compared}.</p>
          ) : (
            <ul className="archive-changes">
              {diff.data.changes.map((e) => (
                <li key={e.path} data-path={e.path}>
                  <span className="mono">{e.path}</span>: {e.changes.map(words).join(', ')}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  );
}
