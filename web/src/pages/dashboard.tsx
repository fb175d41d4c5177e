// Every repository at a glance: last backup against its expected interval, size and quota, the
// audit and the compaction gate, denials in the last 24 h. Refreshes when a session ends.
import { useState, type FormEvent } from 'react';
import { api, type Repository } from '../api';
import { can, useMe } from '../app';
import { bytes, duration, Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { useLive } from '../live';
import { Link, navigate } from '../router';
import { LiveSessions } from '../parts/live-sessions';
import { StorageNodes } from '../parts/storage-nodes';
import { SubmitWithError } from '../parts/form-error';
import { NEAR_QUOTA, sortRepositories, type RepositoryOrder } from '../parts/repository-order';

export function DashboardPage() {
  const me = useMe();
  const live = useLive();
  const repos = useLoad(() => api<{ repositories: Repository[] }>('GET', '/repositories'), [live.changes]);
  const [order, setOrder] = useState<RepositoryOrder>(() => (localStorage.getItem('borgkeep.dashboard.order') === 'state' ? 'state' : 'name'));
  const list = sortRepositories(repos.data?.repositories ?? [], order);
  const changeOrder = (o: RepositoryOrder) => {
    setOrder(o);
    localStorage.setItem('borgkeep.dashboard.order', o);
  };
  return (
    <>
      <h1>Repositories</h1>
      <LiveSessions />
      {repos.error && <p className="error">{repos.error.message}</p>}
      {repos.data && list.length === 0 && (
        <section className="empty">
          <h2>No repositories yet</h2>
          <p>
            {can(me, 'operator')
              ? 'Create the first one below. Then add a machine’s SSH public key on the Keys page with a grant on it, and the repository page shows the borg commands to run there.'
              : 'An operator or admin creates repositories; ask one of them.'}
          </p>
        </section>
      )}
      {list.length > 1 && (
        <label className="sort-control">
          Sort by{' '}
          <select name="order" value={order} onChange={(e) => changeOrder(e.target.value as RepositoryOrder)}>
            <option value="name">name</option>
            <option value="state">state (failing and late first)</option>
          </select>
        </label>
      )}
      {list.length > 0 && (
        <div className="table-wrap">
          <table className="repos">
            <caption className="sr-only">Repositories and their state</caption>
            <thead>
              <tr>
                <th scope="col">Repository</th>
                <th scope="col">Last backup</th>
                <th scope="col">Size</th>
                <th scope="col">Audit</th>
                <th scope="col">Denials 24 h</th>
              </tr>
            </thead>
            <tbody>
              {list.map((r) => (
                <RepositoryRow key={r.id} r={r} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <StorageNodes />
      {can(me, 'operator') && <CreateRepository onCreated={(name) => navigate(`/repositories/${encodeURIComponent(name)}`)} />}
    </>
  );
}

const BACKUP_WORDS: Record<Repository['backup'], string> = { ok: 'on time', late: 'late', never: 'no backup yet' };
const SESSION_WORDS: Record<'denied' | 'error' | 'aborted', string> = { denied: 'last session refused', error: 'last session failed', aborted: 'last session cut off' };

function RepositoryRow({ r }: { r: Repository }) {
  const used = r.quotaBytes && r.sizeBytes !== null ? r.sizeBytes / r.quotaBytes : null;
  return (
    <tr data-repository={r.name}>
      <th scope="row">
        <Link href={`/repositories/${encodeURIComponent(r.name)}`}>{r.name}</Link>
        <div className="muted small">
          {r.grantCount} grant{r.grantCount === 1 ? '' : 's'}

        </div>
      </th>
      <td data-label="Last backup">
        {!r.initialized && r.lastBackupAt === null ? (
          // Not late (nothing to be late with) and not silent: it needs a client's borg init.
          <>
            <span className="badge never" data-state="waiting-init">
              waits for borg init
            </span>
            <div className="muted small">the repository page shows the command</div>
          </>
        ) : (
          <>
            <span className={`badge ${r.backup}`}>{BACKUP_WORDS[r.backup]}</span> {r.lastBackupAt && <Time at={r.lastBackupAt} />}
            <div className="muted small">expected every {duration(r.expectedIntervalSeconds)}</div>
          </>
        )}
        {r.lastSessionResult !== null && r.lastSessionResult !== 'ok' && (
          <div className="small" data-last-session={r.lastSessionResult}>
            <span className={`badge ${r.lastSessionResult}`}>{SESSION_WORDS[r.lastSessionResult]}</span> <Time at={r.lastSessionAt} />
          </div>
        )}
      </td>
      <td data-label="Size">
        {bytes(r.sizeBytes)}
        {r.quotaBytes !== null && (
          <>
            <span className="muted"> of {bytes(r.quotaBytes)}</span>
            {used !== null && used >= 1 ? (
              <span className="badge late marker" data-quota="over">
                over quota
              </span>
            ) : used !== null && used >= NEAR_QUOTA ? (
              <span className="badge never marker" data-quota="near">
                near quota
              </span>
            ) : null}
            <meter min={0} max={1} high={NEAR_QUOTA} optimum={0} value={Math.min(1, used ?? 0)} aria-label="quota used">
              {Math.round((used ?? 0) * 100)}%
            </meter>
          </>
        )}
      </td>
      <td data-label="Audit">
        <AuditBadge r={r} />
      </td>
      <td data-label="Denials 24 h" className={r.denialsLast24h > 0 ? 'alert' : ''}>{r.denialsLast24h}</td>
    </tr>
  );
}

export function AuditBadge({ r }: { r: Repository }) {
  const verdict = r.lastAudit?.verdict ?? null;
  return (
    <>
      {r.lastAudit ? (
        <>
          <span className={`badge ${verdict === 'suspicious' ? 'late' : 'ok'}`}>{verdict ?? r.lastAudit.detail}</span> <Time at={r.lastAudit.at} />
        </>
      ) : (
        <span className="muted">not audited</span>
      )}
      <div className="muted small" title={r.gate.why}>
        compaction {r.gate.open ? 'goes through' : 'waits for review'}
      </div>
    </>
  );
}

function CreateRepository({ onCreated }: { onCreated: (name: string) => void }) {
  const [name, setName] = useState('');
  const [quota, setQuota] = useState('');
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const quotaBytes = quota.trim() === '' ? null : Math.round(Number(quota) * 1e9);
    const r = await action.run(() => api<{ repository: Repository }>('POST', '/repositories', { name: name.trim(), quotaBytes }));
    if (r) onCreated(r.repository.name);
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-labelledby="create-repo">
      <h2 id="create-repo">New repository</h2>
      <label>
        Name
        <input name="repository" value={name} onChange={(e) => setName(e.target.value)} required pattern="[A-Za-z0-9._\-]+" />
      </label>
      <label>
        Quota in GB <span className="muted">(optional)</span>
        <input name="quota" type="number" min="0.01" step="any" value={quota} onChange={(e) => setQuota(e.target.value)} />
      </label>
      <SubmitWithError label="Create" action={action} />
    </form>
  );
}
