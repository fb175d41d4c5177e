// The repository's archive list as the server reads it (GET /repositories/:name/archives): per
// archive its name, the client's time, when the server first saw it committed and which key's
// session added it, its deduplicated size (what deleting it alone would free, as borg info counts
// it; the server computes it off the request, so it may still be coming), with a note on archives whose client time is more than a day away from the
// server's first sighting (a retimed archive), and the verdict of the server's archive checks with
// each failed rule's sentence. Without a held key, the server's one sentence.
// Shows the newest archives first, a page at a time: a repository may hold 10,000 of them.
import { useState } from 'react';
import { api } from '../api';
import { bytes, exact, Time } from '../format';
import { useLoad } from '../hooks';
import { ArchiveBrowser } from './archive-browser';
import { ArchiveDiff } from './archive-diff';
import { BrowseAccessSwitch, useBrowseAccess } from './browse-access';
import { can, useMe } from '../app';

export interface ListedArchive {
  name: string;
  id: string;
  time: string;
  firstSeenAt: string | null;
  firstSeenBaseline: boolean;
  retimed: boolean;
  addedBy: { sessionId: number; keyName: string | null; role: string | null } | null;
  /** borg info's deduplicated_size: stored bytes of the chunks no other archive references; null: still being computed. */
  deduplicatedSize: number | null;
  /** The server's archive checks; null: not checked yet. */
  check: ArchiveCheck | null;
}

export interface ArchiveCheck {
  verdict: 'passed' | 'failed' | 'skipped';
  findings: { rule: string; sentence: string }[];
  notes: string[];
  comparedWith: string | null;
  checkedAt: string;
}

const CHECK_BADGE: Record<ArchiveCheck['verdict'], { label: string; badge: string }> = {
  passed: { label: 'passed', badge: 'ok' },
  failed: { label: 'failed', badge: 'error' },
  skipped: { label: 'not checked', badge: 'never' },
};

/** An archive's verdict, each failed rule in its sentence, and when it was checked. */
function CheckCell({ check }: { check: ArchiveCheck | null }) {
  if (!check) return <span className="muted">not checked yet</span>;
  const shown = CHECK_BADGE[check.verdict];
  return (
    <>
      <span className={`badge ${shown.badge}`}>{shown.label}</span> <Time at={check.checkedAt} />
      {check.comparedWith && <div className="muted small">compared with {check.comparedWith}</div>}
      {check.findings.length > 0 && (
        <ul className="findings small">
          {check.findings.map((f, i) => (
            <li key={i}>{f.sentence}</li>
          ))}
        </ul>
      )}
      {check.verdict !== 'failed' && check.notes.length > 0 && <div className="muted small">{check.notes.join(' ')}</div>}
    </>
  );
}

export interface ArchiveListing {
  keyHeld: boolean;
  reason: string | null;
  archives: ListedArchive[] | null;
}

const PAGE = 50;

/** borg's archive time is UTC without a zone. */
const clientTime = (t: string) => (/^\d{4}-\d\d-\d\dT[\d:.]+$/.test(t) ? `${t.slice(0, 23)}Z` : t);

export function ArchiveList({ repository, refresh }: { repository: string; refresh?: unknown }) {
  const path = encodeURIComponent(repository);
  const listing = useLoad(() => api<ArchiveListing>('GET', `/repositories/${path}/archives`), [repository, refresh]);
  const me = useMe();
  const access = useBrowseAccess(repository);
  // Viewers browse names only where an admin allowed it; downloads and diffs stay with operators.
  const mayBrowse = can(me, 'operator') || access.data?.viewersMayBrowse === true;
  const [shown, setShown] = useState(PAGE);
  const [browsing, setBrowsing] = useState<string | null>(null);
  const archives = listing.data?.archives ?? null;
  const newestFirst = archives ? [...archives].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0)) : [];
  const retimed = newestFirst.filter((a) => a.retimed).length;
  return (
    <section aria-labelledby="archives-title" className="archive-list">
      <h2 id="archives-title">Archives</h2>
      <p className="muted small">As the server reads them from the committed manifest with the key borgkeep holds; the first sighting is the server's own time, which a client cannot set.</p>
      <BrowseAccessSwitch repository={repository} access={access.data ?? null} onChange={access.reload} />
      {listing.error && <p className="error">{listing.error.message}</p>}
      {listing.data && archives === null && <p className="muted">{listing.data.reason}</p>}
      {archives !== null && archives.length === 0 && <p className="muted">No archives yet.</p>}
      {retimed > 0 && (
        <p className="alert" role="note">
          {retimed} archive{retimed === 1 ? ' has a client time' : 's have client times'} more than a day away from when the server first saw {retimed === 1 ? 'it' : 'them'}: retimed
          (a wrong clock on the client, <code>--timestamp</code>, or a forged archive).
        </p>
      )}
      {newestFirst.length > 0 && (
        <div className="table-wrap">
          <table className="archives">
            <thead>
              <tr>
                <th scope="col">Archive</th>
                <th scope="col">Client's time</th>
                <th scope="col">First seen by the server</th>
                <th scope="col">Added by</th>
                <th scope="col" title="stored bytes only this archive references: what deleting it alone frees (borg info's deduplicated size)">
                  Deduplicated
                </th>
                <th scope="col">Checks</th>
              </tr>
            </thead>
            <tbody>
              {newestFirst.slice(0, shown).map((a) => (
                <tr key={`${a.id} ${a.name}`} data-archive={a.name} data-retimed={a.retimed ? 'yes' : 'no'} data-check={a.check?.verdict ?? 'none'}>
                  <th scope="row">
                    <span className="mono">{a.name}</span>{' '}
                    {mayBrowse && (
                      <button type="button" className="link small" onClick={() => setBrowsing(a.name)} aria-label={`Browse the files of ${a.name}`}>
                        files
                      </button>
                    )}
                    <div className="muted small mono" title={a.id}>
                      {a.id.slice(0, 16)}
                    </div>
                  </th>
                  <td className={a.retimed ? 'alert' : ''}>
                    {a.time ? exact(clientTime(a.time)) : <span className="muted">none</span>}
                    {a.retimed && <div className="small">retimed: more than a day from the first sighting</div>}
                  </td>
                  <td>
                    {a.firstSeenAt ? (
                      <>
                        {a.firstSeenBaseline && <span title="first read after a compaction: it appeared then or earlier">≤ </span>}
                        {exact(a.firstSeenAt)}
                      </>
                    ) : (
                      <span className="muted">not seen yet</span>
                    )}
                  </td>
                  <td>
                    {a.addedBy ? (
                      <>
                        <strong>{a.addedBy.keyName ?? 'unknown key'}</strong>
                        <span className="muted small">
                          {a.addedBy.role ? ` (${a.addedBy.role})` : ''}, session {a.addedBy.sessionId}
                        </span>
                      </>
                    ) : (
                      <span className="muted">unknown</span>
                    )}
                  </td>
                  <td data-deduplicated={a.deduplicatedSize ?? ''}>
                    {a.deduplicatedSize !== null ? bytes(a.deduplicatedSize) : <span className="muted small">computing… (reload)</span>}
                  </td>
                  <td className={a.check?.verdict === 'failed' ? 'alert' : ''}>
                    <CheckCell check={a.check ?? null} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {browsing !== null && <ArchiveBrowser key={browsing} repository={repository} archive={browsing} onClose={() => setBrowsing(null)} />}
      {browsing !== null && can(me, 'operator') && <ArchiveDiff key={`diff ${browsing}`} repository={repository} archive={browsing} others={newestFirst.map((a) => a.name).filter((n) => n !== browsing)} />}
      {newestFirst.length > shown && (
        <p>
          <span className="muted small">
            Showing the newest {shown} of {newestFirst.length}.{' '}
          </span>
          <button type="button" onClick={() => setShown((n) => n + 10 * PAGE)}>
            Show more
          </button>
        </p>
      )}
    </section>
  );
}
