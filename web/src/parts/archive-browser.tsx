// One archive's files in the console, read by the server with the key it holds
// (GET /repositories/:name/archives/:archive/entries?path=): one folder at a time, loaded when it
// is opened; folders open in place, files download through the browser (GET .../content?path=,
// a real link: the browser streams it, the server records it in the ledger). Viewers, where an
// admin allowed them to browse the repository, see names and metadata without download links.
import { useState } from 'react';
import { api } from '../api';
import { Time, bytes } from '../format';
import { useLoad } from '../hooks';
import { can, useMe } from '../app';

interface Entry {
  name: string;
  path: string;
  type: string;
  mode: string;
  user: string | null;
  group: string | null;
  size: number;
  mtime: string | null;
  linkTarget: string | null;
  implied: boolean;
}

interface ArchiveMeta {
  name: string;
  time: string | null;
  timeEnd: string | null;
  hostname: string | null;
  username: string | null;
  commandLine: string[];
  size: number | null;
  files: number | null;
  authentication: 'ok' | 'missing' | 'unchecked';
}

const AUTHENTICATION: Record<ArchiveMeta['authentication'], string> = {
  ok: 'its authentication (TAM) verified',
  missing: 'written without authentication (TAM), as borg before 1.2.5 wrote archives',
  unchecked: 'not encrypted, so there is no authentication to check',
};

/**
 * Rows drawn at first, and per "Show more": a folder of tens of thousands of entries comes in one
 * answer (the server's folder index keeps it fast), but drawing every row at once would not be.
 */
const ROWS = 1000;

const TYPE_WORDS: Record<string, string> = { file: 'file', directory: 'folder', symlink: 'link', hardlink: 'hardlink', fifo: 'fifo', chardev: 'device', blockdev: 'device', socket: 'socket', other: 'other' };

export function ArchiveBrowser({ repository, archive, onClose }: { repository: string; archive: string; onClose: () => void }) {
  const me = useMe();
  const downloads = can(me, 'operator');
  const [folder, setFolderState] = useState('');
  // How many rows of which folder are drawn: opening a folder (again) starts at ROWS.
  const [drawn, setDrawn] = useState({ folder: '', rows: ROWS });
  const rows = drawn.folder === folder ? drawn.rows : ROWS;
  const setFolder = (path: string) => {
    setFolderState(path);
    setDrawn({ folder: path, rows: ROWS });
  };
  // The search by path pattern (GET .../search): what is typed, and what was asked for.
  const [typed, setTyped] = useState('');
  const [asked, setAsked] = useState<string | null>(null);
  const base = `/repositories/${encodeURIComponent(repository)}/archives/${encodeURIComponent(archive)}`;
  const listing = useLoad(() => api<{ folder: string; entries: Entry[] }>('GET', `${base}/entries?path=${encodeURIComponent(folder)}`), [base, folder]);
  const meta = useLoad(() => api<{ archive: ArchiveMeta }>('GET', base), [base]);
  const found = useLoad(
    () => (asked === null ? Promise.resolve(null) : api<{ entries: Entry[]; truncated: boolean }>('GET', `${base}/search?pattern=${encodeURIComponent(asked)}`)),
    [base, asked],
  );
  const openFolder = (path: string) => {
    setAsked(null);
    setFolder(path);
  };
  const m = meta.data?.archive;
  const parts = folder === '' ? [] : folder.split('/');
  const download = (path: string) => `/api/v1${base}/content?path=${encodeURIComponent(path)}`;
  return (
    <section aria-label={`Files of archive ${archive}`} className="archive-browser">
      <h3>
        Files of <span className="mono">{archive}</span>{' '}
        <button type="button" onClick={onClose}>
          Close
        </button>
      </h3>
      {m && (
        <p className="muted small" data-archive-meta>
          {m.files ?? '?'} {m.files === 1 ? 'file' : 'files'}, {bytes(m.size)} from {m.username ?? '?'} on {m.hostname ?? '?'}, started <Time at={m.time} empty="at an unknown time" />; {AUTHENTICATION[m.authentication]}.
          <br />
          <span className="mono">{m.commandLine.join(' ')}</span>
        </p>
      )}
      <form
        className="archive-search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setAsked(typed.trim() === '' ? null : typed.trim());
        }}
      >
        <label htmlFor="archive-search-pattern">Find by path pattern</label>{' '}
        <input id="archive-search-pattern" className="mono" value={typed} onChange={(e) => setTyped(e.target.value)} placeholder="*.conf, etc/passwd, home/*/.ssh/**" />{' '}
        <button type="submit">Find</button>
        {asked !== null && (
          <>
            {' '}
            <button type="button" onClick={() => setAsked(null)}>
              Back to the folders
            </button>
          </>
        )}
      </form>
      {asked !== null && (
        <div data-search-results>
          {found.error && <p className="error">{found.error.message}</p>}
          {found.data && (
            <p className="muted small">
              {found.data.entries.length === 0
                ? `Nothing in this archive matches ${asked}.`
                : `${found.data.entries.length} ${found.data.entries.length === 1 ? 'entry matches' : 'entries match'} ${asked}${found.data.truncated ? ' (only the first ones are shown: narrow the pattern)' : ''}.`}
            </p>
          )}
          {found.data && found.data.entries.length > 0 && (
            <ul className="archive-found">
              {found.data.entries.map((e) => (
                <li key={e.path} data-found={e.path} className="mono">
                  {e.type === 'directory' ? (
                    <button type="button" className="link" onClick={() => openFolder(e.path)} aria-label={`Open folder ${e.path}`}>
                      {e.path}/
                    </button>
                  ) : downloads && (e.type === 'file' || e.type === 'hardlink') ? (
                    <a href={download(e.path)} aria-label={`Download ${e.path}`}>
                      {e.path}
                    </a>
                  ) : (
                    e.path
                  )}{' '}
                  <span className="muted small">
                    {TYPE_WORDS[e.type] ?? e.type}
                    {e.type === 'directory' ? '' : `, ${bytes(e.size)}`}
                  </span>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      {asked === null && (
        <>
          <nav aria-label="Folder">
            <button type="button" className="link" onClick={() => setFolder('')} aria-current={folder === '' ? 'page' : undefined}>
              top
            </button>
            {parts.map((p, i) => (
              <span key={i}>
                {' / '}
                <button type="button" className="link mono" onClick={() => setFolder(parts.slice(0, i + 1).join('/'))} aria-current={i === parts.length - 1 ? 'page' : undefined}>
                  {p}
                </button>
              </span>
            ))}
            {folder !== '' && downloads && (
              <>
                {' '}
                <a href={download(folder)}>Download this folder as a tar file</a>
              </>
            )}
          </nav>
          {listing.error && <p className="error">{listing.error.message}</p>}
          {listing.data && listing.data.entries.length === 0 && <p className="muted">This folder is empty.</p>}
          {listing.data && listing.data.entries.length > 0 && (
            <div className="table-wrap">
              <table className="archive-files">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Kind</th>
                    <th scope="col">Size</th>
                    <th scope="col">Owner</th>
                    <th scope="col">Mode</th>
                    <th scope="col">Modified</th>
                  </tr>
                </thead>
                <tbody>
                  {listing.data.entries.slice(0, rows).map((e) => (
                    <tr key={e.path} data-entry={e.name}>
                      <th scope="row" className="mono">
                        {e.type === 'directory' ? (
                          <button type="button" className="link" onClick={() => openFolder(e.path)} aria-label={`Open folder ${e.name}`}>
                            {e.name}/
                          </button>
                        ) : downloads && (e.type === 'file' || e.type === 'hardlink') ? (
                          <a href={download(e.path)} aria-label={`Download ${e.name}`}>
                            {e.name}
                          </a>
                        ) : (
                          e.name
                        )}
                        {e.linkTarget && <span className="muted small"> → {e.linkTarget}</span>}
                      </th>
                      <td>{TYPE_WORDS[e.type] ?? e.type}</td>
                      <td>{e.type === 'directory' ? '' : bytes(e.size)}</td>
                      <td>{e.implied ? '' : `${e.user ?? '?'}:${e.group ?? '?'}`}</td>
                      <td className="mono">{e.implied ? '' : e.mode}</td>
                      <td>{e.mtime ? <Time at={e.mtime} /> : ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {listing.data && listing.data.entries.length > rows && (
            <p className="muted small" data-more-entries>
              Showing the first {rows.toLocaleString('en')} of {listing.data.entries.length.toLocaleString('en')} entries.{' '}
              <button type="button" onClick={() => setDrawn({ folder, rows: rows + ROWS })}>
                Show {Math.min(ROWS, listing.data.entries.length - rows).toLocaleString('en')} more
              </button>{' '}
              <button type="button" onClick={() => setDrawn({ folder, rows: listing.data!.entries.length })}>
                Show all
              </button>
            </p>
          )}
        </>
      )}
    </section>
  );
}
