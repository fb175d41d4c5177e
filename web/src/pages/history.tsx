// The history: every session in the admin's words (what kind of run, who, where, how much new
// data, the archive it added), and the borg transactions and the refusals on their own, filtered
// by repository, key, result, kind of run and time range, paged with the API's cursors (Older /
// Newer), downloadable as CSV or JSON, each session's storage details (objects, bytes,
// transaction ids, refusals) one click away. /history/sessions/N shows one session, by the number
// the audit names. It never invents a kind: the server judges it. The filters live in the URL's
// query (/history?view=refusals&key=laptop&since=...): a filtered view can be bookmarked and
// shared, and survives a reload and back/forward.
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { api, type Denial, type Repository, type Session, type SshKey, type Transaction } from '../api';
import { bytes, duration, TextWithTimes, Time } from '../format';
import { useLoad } from '../hooks';
import { DenialReason } from '../parts/denial-reason';
import { Link, navigate, useSearch } from '../router';

export const RUN_KIND_WORDS: Record<string, string> = {
  backup: 'Backup',
  prune: 'Prune',
  compact: 'Compact',
  'list-extract': 'List/extract',
  check: 'Check',
  'key-change': 'Key change',
  init: 'Init',
  rollback: 'Rollback',
  retention: 'Retention run',
  pull: 'Pull backup',
  other: 'Other',
};
const RESULT_WORDS: Record<Session['result'], string> = { open: 'running', ok: 'succeeded', denied: 'refused', error: 'failed', aborted: 'aborted' };

const TRANSACTION_WORDS: Record<Transaction['state'], string> = { committed: 'committed', rolled_back: 'rolled back' };

/** What the history lists: each has its own API list and export; the filters are the same. */
type View = 'sessions' | 'transactions' | 'refusals';
const VIEWS: Record<View, { label: string; api: string; none: string }> = {
  sessions: { label: 'Sessions', api: '/sessions', none: 'No session matches these filters.' },
  transactions: { label: 'Transactions', api: '/transactions', none: 'No transaction matches these filters.' },
  refusals: { label: 'Refusals', api: '/denials', none: 'No refusal matches these filters.' },
};
/** The results a view can be filtered by: a transaction committed or rolled back; a refusal is always a refusal. */
const RESULTS: Record<View, Record<string, string>> = { sessions: RESULT_WORDS, transactions: TRANSACTION_WORDS, refusals: {} };

/** A transaction as the ledger's list gives it: with its session's key, repository and kind of run. */
type LedgerTransaction = Transaction & { sessionId: number; keyName: string | null; repositoryName: string | null; runKind: string | null };

interface Filters {
  view: View;
  repository: string;
  key: string;
  result: string;
  kind: string;
  since: string;
  until: string;
  perPage: string;
}
const NO_FILTERS: Filters = { view: 'sessions', repository: '', key: '', result: '', kind: '', since: '', until: '', perPage: '25' };

/** The API's query for the filters; datetime-local values are the browser's local time. */
function queryOf(f: Filters): URLSearchParams {
  const q = new URLSearchParams();
  if (f.repository) q.set('repository', f.repository);
  if (f.key) q.set('key', f.key);
  // A transaction's result is its state; refusals have none to filter by.
  if (f.result && f.result in RESULTS[f.view]) q.set(f.view === 'transactions' ? 'state' : 'result', f.result);
  if (f.kind) q.set('kind', f.kind);
  const at = (local: string) => (Number.isNaN(new Date(local).getTime()) ? local : new Date(local).toISOString());
  if (f.since) q.set('since', at(f.since));
  if (f.until) q.set('until', at(f.until));
  return q;
}

const VIEW_NAMES = Object.keys(VIEWS) as View[];
const pad = (n: number) => String(n).padStart(2, '0');
/** An instant as the datetime-local field shows it: the browser's local time, to the minute. */
function localOf(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The filters a URL query names (what is missing or unknown: no filter). */
function filtersOf(search: string): Filters {
  const q = new URLSearchParams(search);
  const view = VIEW_NAMES.find((v) => v === q.get('view')) ?? 'sessions';
  const perPage = q.get('perPage') ?? '';
  return {
    view,
    repository: q.get('repository') ?? '',
    key: q.get('key') ?? '',
    result: q.get('result') ?? '',
    kind: q.get('kind') ?? '',
    since: localOf(q.get('since') ?? ''),
    until: localOf(q.get('until') ?? ''),
    perPage: ['5', '25', '100'].includes(perPage) ? perPage : NO_FILTERS.perPage,
  };
}

/** The page's URL for these filters: times as exact instants (a link shared across time zones means the same range). */
function urlOf(f: Filters): string {
  const q = new URLSearchParams();
  if (f.view !== 'sessions') q.set('view', f.view);
  const api = queryOf(f);
  for (const name of ['repository', 'key', 'kind', 'since', 'until']) if (api.has(name)) q.set(name, api.get(name)!);
  if (f.result && f.result in RESULTS[f.view]) q.set('result', f.result);
  if (f.perPage !== NO_FILTERS.perPage) q.set('perPage', f.perPage);
  return q.toString() ? `/history?${q}` : '/history';
}

export function HistoryPage() {
  const search = useSearch();
  const filters = useMemo(() => filtersOf(search), [search]);
  const [draft, setDraft] = useState<Filters>(filters);
  // Cursors of the pages before this one (Newer goes back); the current page's cursor last.
  const [cursors, setCursors] = useState<string[]>([]);
  // New filters in the URL (Show, a link, back/forward): the form shows them, from the first page.
  useEffect(() => {
    setDraft(filters);
    setCursors([]);
  }, [filters]);
  const setFilters = (f: Filters) => navigate(urlOf(f));
  const cursor = cursors.at(-1);
  const repositories = useLoad(() => api<{ repositories: Repository[] }>('GET', '/repositories'), []);
  const keys = useLoad(() => api<{ keys: SshKey[] }>('GET', '/keys'), []);
  const page = useLoad(() => {
    const q = queryOf(filters);
    q.set('limit', filters.perPage);
    if (cursor) q.set('cursor', cursor);
    return api<{ sessions?: Session[]; transactions?: LedgerTransaction[]; denials?: Denial[]; next: string | null }>('GET', `${VIEWS[filters.view].api}?${q}`);
  }, [filters, cursor]);
  const set = (name: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [name]: e.target.value });
  const apply = (e: FormEvent) => {
    e.preventDefault();
    setFilters(draft);
    setCursors([]);
  };
  /** A view applies at once, keeping the other filters (a result only where the new view has it). */
  const show = (view: View) => {
    const next = { ...filters, ...draft, view, result: draft.result in RESULTS[view] ? draft.result : '' };
    setDraft(next);
    setFilters(next);
    setCursors([]);
  };
  const exportQuery = queryOf(filters);
  const view = VIEWS[filters.view];
  // Rows of the view asked for only: while another view loads, the last one's rows are not this one's.
  const sessions = (filters.view === 'sessions' && page.data?.sessions) || [];
  const transactions = (filters.view === 'transactions' && page.data?.transactions) || [];
  const denials = (filters.view === 'refusals' && page.data?.denials) || [];
  const count = sessions.length + transactions.length + denials.length;

  return (
    <>
      <h1>History</h1>
      <fieldset className="format-switch">
        <legend>List</legend>
        {(Object.keys(VIEWS) as View[]).map((v) => (
          <label key={v}>
            <input type="radio" name="history-view" value={v} checked={filters.view === v} onChange={() => show(v)} /> {VIEWS[v].label}
          </label>
        ))}
      </fieldset>
      <form className="filters" onSubmit={apply} aria-label="Filter the history">
        <label>
          Repository
          <select value={draft.repository} onChange={set('repository')}>
            <option value="">any repository</option>
            {(repositories.data?.repositories ?? []).map((r) => (
              <option key={r.name}>{r.name}</option>
            ))}
          </select>
        </label>
        <label>
          Key
          <select value={draft.key} onChange={set('key')}>
            <option value="">any key</option>
            {(keys.data?.keys ?? []).map((k) => (
              <option key={k.id}>{k.name}</option>
            ))}
          </select>
        </label>
        <label>
          Result
          <select value={draft.result} onChange={set('result')} disabled={draft.view === 'refusals'}>
            <option value="">{draft.view === 'refusals' ? 'refused' : 'any result'}</option>
            {Object.entries(RESULTS[draft.view]).map(([value, words]) => (
              <option key={value} value={value}>
                {words}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind of run
          <select value={draft.kind} onChange={set('kind')}>
            <option value="">any kind</option>
            {Object.entries(RUN_KIND_WORDS).map(([value, words]) => (
              <option key={value} value={value}>
                {words}
              </option>
            ))}
          </select>
        </label>
        <label>
          Since (your time)
          <input type="datetime-local" value={draft.since} onChange={set('since')} />
        </label>
        <label>
          Until (your time)
          <input type="datetime-local" value={draft.until} onChange={set('until')} />
        </label>
        <label>
          Per page
          <select value={draft.perPage} onChange={set('perPage')}>
            {['5', '25', '100'].map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        <div className="filter-actions">
          <button type="submit">Show</button>
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setDraft({ ...NO_FILTERS, view: filters.view });
              setFilters({ ...NO_FILTERS, view: filters.view });
              setCursors([]);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <p className="exports">
        Download every matching {filters.view === 'sessions' ? 'session' : filters.view === 'transactions' ? 'transaction' : 'refusal'}:{' '}
        <a href={`/api/v1${view.api}/export?${exportQuery}&format=csv`} download>
          CSV
        </a>{' '}
        ·{' '}
        <a href={`/api/v1${view.api}/export?${exportQuery}&format=json`} download>
          JSON
        </a>
      </p>
      {page.error && (
        <p className="error" role="alert">
          {page.error.message}
        </p>
      )}
      {page.data && !page.loading && count === 0 && <p className="muted">{view.none}</p>}
      {sessions.length > 0 && (
        <div className="table-wrap">
          <table className="history">
            <thead>
              <tr>
                <th scope="col">Session</th>
                <th scope="col">Kind of run</th>
                <th scope="col">Result</th>
                <th scope="col">Key and repository</th>
                <th scope="col">Started</th>
                <th scope="col">New data</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {sessions.map((s) => (
                <SessionRow key={s.id} s={s} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {transactions.length > 0 && (
        <div className="table-wrap">
          <table className="history transactions">
            <thead>
              <tr>
                <th scope="col">Transaction</th>
                <th scope="col">Session</th>
                <th scope="col">Kind of run</th>
                <th scope="col">Result</th>
                <th scope="col">Key and repository</th>
                <th scope="col">Ended</th>
                <th scope="col">Objects</th>
              </tr>
            </thead>
            <tbody>
              {transactions.map((t) => (
                <tr key={t.id} data-transaction={t.id} data-session={t.sessionId} data-kind={t.runKind} data-result={t.state}>
                  <th scope="row">{t.borgTransactionId ?? '(none)'}</th>
                  <td>
                    <Link href={`/history/sessions/${t.sessionId}`}>#{t.sessionId}</Link>
                  </td>
                  <td>{RUN_KIND_WORDS[t.runKind ?? 'other'] ?? 'Other'}</td>
                  <td>
                    <span className={`badge ${t.state === 'committed' ? 'ok' : 'error'}`}>{TRANSACTION_WORDS[t.state]}</span>
                  </td>
                  <td>
                    {t.keyName ?? 'no key'} → {t.repositoryName ?? 'no repository'}
                  </td>
                  <td>
                    <Time at={t.endedAt} />
                  </td>
                  <td className="small">
                    {t.objectsPut} put, {t.objectsDeleted} deleted
                    {t.objectsOverwritten > 0 && `, ${t.objectsOverwritten} overwritten`}
                    {t.manifestWritten && ', manifest written'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {denials.length > 0 && (
        <div className="table-wrap">
          <table className="history refusals">
            <thead>
              <tr>
                <th scope="col">Refused</th>
                <th scope="col">Session</th>
                <th scope="col">Key and repository</th>
                <th scope="col">Call</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {denials.map((d) => (
                <tr key={d.id} data-denial={d.id} data-session={d.sessionId ?? undefined} data-reason={d.reason}>
                  <th scope="row">
                    <Time at={d.at} />
                  </th>
                  <td>{d.sessionId === null ? 'no session' : <Link href={`/history/sessions/${d.sessionId}`}>#{d.sessionId}</Link>}</td>
                  <td>
                    {d.keyName ?? 'unknown key'} → {d.repositoryName ?? 'no repository'}
                  </td>
                  <td className="mono">{d.method}</td>
                  <td>
                    <DenialReason reason={d.reason} message={d.message} />
                    <div className="small muted">{d.message}</div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav className="pager" aria-label="Pages of the history">
        <button type="button" disabled={cursors.length === 0 || page.loading} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={!page.data?.next || page.loading} onClick={() => page.data?.next && setCursors([...cursors, page.data.next])}>
          Older
        </button>
      </nav>
    </>
  );
}

/** What a backup sent that was kept: its bytes received, when a transaction with new objects committed. */
function newData(s: Session): string {
  const committed = (s.transactions ?? []).some((t) => t.state === 'committed' && t.objectsPut > 0);
  return s.runKind === 'backup' && committed ? bytes(s.bytesIn) : '—';
}

function who(s: Session): string {
  return s.kind === 'retention' ? 'the server’s retention run' : s.kind === 'pull' ? 'the server’s pull backup' : (s.keyName ?? 'unknown key');
}

function SessionRow({ s }: { s: Session }) {
  const kind = RUN_KIND_WORDS[s.runKind ?? 'other'] ?? 'Other';
  return (
    <tr data-session={s.id} data-kind={s.runKind} data-result={s.result}>
      <th scope="row">
        <Link href={`/history/sessions/${s.id}`}>#{s.id}</Link>
      </th>
      <td>
        {kind}
        {(s.archives ?? []).map((a) => (
          <div key={a.name} className="small muted">
            added archive <span className="mono">{a.name}</span>
          </div>
        ))}
      </td>
      <td>
        <span className={`badge ${s.result}`}>{RESULT_WORDS[s.result]}</span>
      </td>
      <td>
        {who(s)} → {s.repositoryName ?? 'no repository'}
      </td>
      <td>
        <Time at={s.startedAt} />
      </td>
      <td>{newData(s)}</td>
      <td>
        <details>
          <summary>Storage details</summary>
          <StorageDetails s={s} />
        </details>
      </td>
    </tr>
  );
}

function StorageDetails({ s }: { s: Session }) {
  const txns = s.transactions ?? [];
  return (
    <div className="small">
      <div>
        received {bytes(s.bytesIn)} · sent {bytes(s.bytesOut)}
        {s.endedAt && ` · took ${duration((new Date(s.endedAt).getTime() - new Date(s.startedAt).getTime()) / 1000)}`}
        {s.role && ` · role ${s.role}`}
        {s.clientAddress && ` · from ${s.clientAddress}`}
        {s.clientVersion && ` · borg ${s.clientVersion}`}
      </div>
      {s.detail && <div className="muted"><TextWithTimes text={s.detail} /></div>}
      {txns.length === 0 && <div className="muted">No transaction: nothing was written.</div>}
      <ul className="txns">
        {txns.map((t) => (
          <li key={t.id}>
            transaction {t.borgTransactionId ?? '(none)'} {t.state === 'committed' ? 'committed' : 'rolled back'} <Time at={t.endedAt} />: {t.objectsPut} objects put, {t.objectsDeleted} deleted
            {t.objectsOverwritten > 0 && `, ${t.objectsOverwritten} overwritten`}
            {t.manifestWritten && ', manifest written'}
          </li>
        ))}
      </ul>
      {(s.denials ?? []).map((d) => (
        <div key={d.id} className="error">
          refused {d.method}: {d.message} <DenialReason reason={d.reason} message={d.message} />
        </div>
      ))}
    </div>
  );
}

/** One session by its number: the audit's "session N" links here. */
export function SessionPage({ id }: { id: number }) {
  const one = useLoad(() => api<{ session: Session }>('GET', `/sessions/${id}`), [id]);
  const s = one.data?.session;
  return (
    <>
      <p>
        <Link href="/history">← History</Link>
      </p>
      <h1>Session #{id}</h1>
      {one.error && (
        <p className="error" role="alert">
          {one.error.message}
        </p>
      )}
      {s && (
        <section aria-label="What the session did">
          <p>
            <strong>{RUN_KIND_WORDS[s.runKind ?? 'other']}</strong> by {who(s)} on {s.repositoryName ?? 'no repository'}, <span className={`badge ${s.result}`}>{RESULT_WORDS[s.result]}</span>, started <Time at={s.startedAt} />
            {newData(s) !== '—' && `, ${newData(s)} new data`}
            {(s.archives ?? []).map((a) => (
              <span key={a.name}>
                , added archive <span className="mono">{a.name}</span>
              </span>
            ))}
          </p>
          <StorageDetails s={s} />
        </section>
      )}
    </>
  );
}
