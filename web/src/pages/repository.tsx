// One repository: its state, live sessions, grants with client instructions, the audit, a
// size chart, and the ledger's sessions (with their transactions) and denials.
import { useState, type FormEvent } from 'react';
import { api, type Denial, type Grant, type GrantRole, type Job, type Repository, type RepositoryStat, type Session, type SshEndpoint, type SshKey } from '../api';
import { can, useMe } from '../app';
import { bytes, duration, exact, TextWithTimes, Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { useLiveFor } from '../live';
import { Link } from '../router';
import { AuditBadge } from './dashboard';
import { ArchiveList } from '../parts/archive-list';
import { DenialReason } from '../parts/denial-reason';
import { AuditView } from '../parts/audit-view';
import { ClientInstructions } from '../parts/client-instructions';
import { RemoveRepository } from '../parts/remove-repository';
import { LiveSessions } from '../parts/live-sessions';
import { SizeChart } from '../parts/size-chart';
import { SubmitWithError } from '../parts/form-error';
import { RetentionSection } from '../parts/retention';
import { VerificationSection } from '../parts/verification';
import { ArchiveChecksSection } from '../parts/archive-checks';
import { RepositoryLimits } from '../parts/repository-limits';
import { GrantEditor } from '../parts/grant-editor';

/** The newest sessions the page lists (and the removal dialog counts). */
const SESSIONS_SHOWN = 100;

export function RepositoryPage({ name }: { name: string }) {
  const me = useMe();
  const live = useLiveFor(name);
  const path = encodeURIComponent(name);
  const repo = useLoad(() => api<{ repository: Repository; grants: Grant[] }>('GET', `/repositories/${path}`), [name, live.changes]);
  const sessions = useLoad(() => api<{ sessions: Session[] }>('GET', `/sessions?repository=${path}&limit=${SESSIONS_SHOWN}`), [name, live.changes]);
  const denials = useLoad(() => api<{ denials: Denial[] }>('GET', `/denials?repository=${path}&limit=20`), [name, live.changes]);
  const server = useLoad(() => api<{ ssh: SshEndpoint | null }>('GET', '/server'), []);

  if (repo.error) {
    return (
      <section>
        <h1>{name}</h1>
        <p className="error">{repo.error.message}</p>
        <Link href="/">Back to the repositories</Link>
      </section>
    );
  }
  if (!repo.data) return <p className="loading">Loading…</p>;
  const r = repo.data.repository;
  const reload = () => {
    repo.reload();
    sessions.reload();
  };
  return (
    <>
      <p className="crumbs">
        <Link href="/">Repositories</Link> /
      </p>
      <h1>{r.name}</h1>
      <dl className="facts">
        <div>
          <dt>Last backup</dt>
          <dd>
            <span className={`badge ${r.backup}`}>{r.backup === 'ok' ? 'on time' : r.backup}</span> <Time at={r.lastBackupAt} empty="no backup yet" />
            <div className="muted small">expected every {duration(r.expectedIntervalSeconds)}</div>
          </dd>
        </div>
        <div>
          <dt>Size</dt>
          <dd>
            {bytes(r.sizeBytes)}
            {r.quotaBytes !== null && <span className="muted"> of {bytes(r.quotaBytes)} quota</span>}
          </dd>
        </div>
        <div>
          <dt>Audit</dt>
          <dd>
            <AuditBadge r={r} />
          </dd>
        </div>
        <div>
          <dt>Denials 24 h</dt>
          <dd className={r.denialsLast24h > 0 ? 'alert' : ''}>{r.denialsLast24h}</dd>
        </div>
      </dl>
      <LiveSessions repository={r.name} />
      <Grants repository={r} grants={repo.data.grants} ssh={server.data?.ssh ?? null} onChange={repo.reload} />
      {can(me, 'operator') && <RepositoryLimits repository={r} onChange={repo.reload} />}
      <KeyVault repository={r} onChange={repo.reload} />
      <AuditView repository={r} onChange={reload} />
      <RetentionSection repository={r.name} />
      <VerificationSection repository={r.name} />
      <ArchiveChecksSection repository={r.name} />
      <SizeOverTime repository={r} />
      <ArchiveList repository={r.name} refresh={live.changes} />
      <SessionTimeline sessions={sessions.data?.sessions ?? []} open={live.open} />
      <Denials denials={denials.data?.denials ?? []} />
      {can(me, 'operator') && <RemoveRepository repository={r} grants={repo.data.grants} sessionsShown={sessions.data?.sessions.length ?? 0} sessionsLimit={SESSIONS_SHOWN} />}
    </>
  );
}

/** The daily statistics as a chart, with "Measure now" (the statistics job) for operators. */
function SizeOverTime({ repository }: { repository: Repository }) {
  const me = useMe();
  const path = encodeURIComponent(repository.name);
  const stats = useLoad(() => api<{ stats: RepositoryStat[] }>('GET', `/repositories/${path}/stats?days=365`), [repository.name]);
  const job = useLoad(() => api<{ jobs: Job[] }>('GET', '/jobs').then((r) => r.jobs.find((j) => j.name === 'statistics') ?? null), []);
  const measure = useAction();
  const [measured, setMeasured] = useState<string | null>(null);
  const list = stats.data?.stats ?? [];
  const last = list.at(-1);
  const measureNow = async () => {
    setMeasured(null);
    const r = await measure.run(() => api<{ job: Job }>('POST', '/jobs/statistics/run'));
    if (!r) return;
    // The job measures every repository; one not initialised yet has nothing on disk to measure.
    setMeasured(r.job.lastResult === 'ok' ? `The statistics job ${r.job.lastDetail ?? 'ran'}.` : `The statistics job failed: ${r.job.lastDetail ?? 'no detail'}`);
    stats.reload();
    job.reload();
  };
  return (
    <section aria-labelledby="size-title">
      <h2 id="size-title">Size over time</h2>
      {stats.error && <p className="error">{stats.error.message}</p>}
      {stats.data && list.length === 0 && (
        <p className="muted" data-stats="none">
          No statistics yet. They are measured daily{job.data?.nextRunAt ? <> (next <Time at={job.data.nextRunAt} />)</> : ''}: size on disk, objects, and what compaction would free.
          {!repository.initialized && ' The repository has no data on disk until its first borg init.'}
        </p>
      )}
      <SizeChart stats={list} />
      {last && (
        <p className="muted small" data-stats={list.length}>
          Measured <Time at={last.at} />: {bytes(last.sizeBytes)} on disk
          {last.objects !== null && `, ${last.objects.toLocaleString()} objects`}
          {last.reclaimableBytes !== null && `, compaction would free ${bytes(last.reclaimableBytes)}`}
          {last.storageUsedBytes !== null && ` (borg counts ${bytes(last.storageUsedBytes)} in use)`}. Measured daily
          {job.data?.nextRunAt ? <>, next <Time at={job.data.nextRunAt} /></> : ''}.
        </p>
      )}
      {can(me, 'operator') && (
        <p className="button-row">
          <button type="button" className="small" disabled={measure.busy} onClick={measureNow}>
            {measure.busy ? 'Measuring…' : 'Measure now'}
          </button>
          <span role="status" className="small">
            {measured}
          </span>
        </p>
      )}
      {measure.error && <p className="error small">{measure.error}</p>}
    </section>
  );
}

function Grants({ repository, grants, ssh, onChange }: { repository: Repository; grants: Grant[]; ssh: SshEndpoint | null; onChange: () => void }) {
  const me = useMe();
  const [shown, setShown] = useState<number | null>(grants.length === 1 ? grants[0]!.keyId : null);
  const [editing, setEditing] = useState<number | null>(null);
  const remove = useAction();
  return (
    <section aria-labelledby="grants-title">
      <h2 id="grants-title">Grants</h2>
      {grants.length === 0 ? (
        <p className="muted">
          No key may use this repository yet. {can(me, 'operator') ? 'Grant one below, or add a key on the ' : 'An operator grants keys on the '}
          <Link href="/keys">Keys page</Link>.
        </p>
      ) : (
        <ul className="grants">
          {grants.map((g) => (
            <li key={g.keyId} data-grant={g.keyName}>
              <div className="grant-line">
                <strong>{g.keyName}</strong> <span className={`badge role-${g.role}`}>{g.role}</span>
                <span className="muted small mono"> {g.keyFingerprint}</span>
                {g.keyRevoked && <span className="badge late">revoked</span>}
                <span className="muted small">
                  {g.writesPerDay !== null && ` · ${g.writesPerDay} ${g.writesPerDay === 1 ? 'backup' : 'backups'} a day`}
                  {g.fromCidrs && ` · from ${g.fromCidrs.join(', ')}`}
                  {g.expiresAt && (
                    <>
                      {' · expires '}
                      <Time at={g.expiresAt} />
                    </>
                  )}
                </span>
                <span className="actions">
                  <button type="button" className="small" aria-expanded={shown === g.keyId} onClick={() => setShown(shown === g.keyId ? null : g.keyId)}>
                    {shown === g.keyId ? 'Hide' : 'Client set-up'}
                  </button>
                  {can(me, 'operator') && !g.keyRevoked && (
                    <button type="button" className="small" aria-expanded={editing === g.keyId} aria-label={`Edit the grant of ${g.keyName}`} onClick={() => setEditing(editing === g.keyId ? null : g.keyId)}>
                      Edit
                    </button>
                  )}
                  {can(me, 'operator') && (
                    <button
                      type="button"
                      className="small danger"
                      disabled={remove.busy}
                      onClick={async () => {
                        if (!confirm(`Remove the grant of ${g.keyName} on ${repository.name}?`)) return;
                        if ((await remove.run(() => api('DELETE', `/grants/${encodeURIComponent(String(g.keyId))}/${encodeURIComponent(repository.name)}`))) !== undefined) onChange();
                      }}
                    >
                      Remove
                    </button>
                  )}
                </span>
              </div>
              {editing === g.keyId && (
                <GrantEditor
                  grant={g}
                  onSaved={() => {
                    setEditing(null);
                    onChange();
                  }}
                  onCancel={() => setEditing(null)}
                />
              )}
              {shown === g.keyId && <ClientInstructions grant={g} ssh={ssh} initialized={repository.initialized} />}
            </li>
          ))}
        </ul>
      )}
      {remove.error && <p className="error">{remove.error}</p>}
      {can(me, 'operator') && <AddGrant repository={repository} existing={grants} onAdded={onChange} />}
    </section>
  );
}

function AddGrant({ repository, existing, onAdded }: { repository: Repository; existing: Grant[]; onAdded: () => void }) {
  const keys = useLoad(() => api<{ keys: SshKey[] }>('GET', '/keys'), [existing.length]);
  const candidates = (keys.data?.keys ?? []).filter((k) => !k.revoked && !existing.some((g) => g.keyId === k.id));
  const [key, setKey] = useState('');
  const [role, setRole] = useState<GrantRole>('append');
  const [writes, setWrites] = useState('');
  const action = useAction();
  if (keys.data && candidates.length === 0) return null;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const chosen = key || String(candidates[0]?.id ?? '');
    const r = await action.run(() =>
      api('POST', '/grants', { key: chosen, repository: repository.name, role, writesPerDay: writes === '' ? null : Number(writes) }),
    );
    if (r) {
      setKey('');
      onAdded();
    }
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="grant a key">
      <label>
        Key
        <select name="key" value={key} onChange={(e) => setKey(e.target.value)}>
          {candidates.map((k) => (
            <option key={k.id} value={String(k.id)}>
              {k.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Role
        <select name="role" value={role} onChange={(e) => setRole(e.target.value as GrantRole)}>
          <option value="append">append (backups only)</option>
          <option value="read">read</option>
          <option value="prune">prune</option>
          <option value="full">full</option>
        </select>
      </label>
      <label>
        Backups a day <span className="muted">(optional; prune and compact do not count)</span>
        <input name="writesPerDay" type="number" min="1" value={writes} onChange={(e) => setWrites(e.target.value)} />
      </label>
      <SubmitWithError label="Grant" action={action} />
    </form>
  );
}

function SessionTimeline({ sessions, open }: { sessions: Session[]; open: Session[] }) {
  // Running sessions carry their live byte counts.
  const shown = sessions.map((s) => open.find((o) => o.id === s.id) ?? s);
  return (
    <section aria-labelledby="timeline-title">
      <h2 id="timeline-title">Sessions and transactions</h2>
      {shown.length === 0 ? (
        <p className="muted">No session yet. Run the client set-up of a grant above; each borg run appears here.</p>
      ) : (
        <ol className="timeline">
          {shown.map((s) => (
            <li key={s.id} className={`step ${s.result}`} data-session={s.id} data-result={s.result}>
              <div>
                <span className={`badge ${s.result}`}>{s.result === 'open' ? 'running' : s.result}</span> <strong>{s.kind === 'retention' ? 'the server’s retention run' : s.kind === 'pull' ? 'the server’s pull backup' : (s.keyName ?? 'unknown key')}</strong>
                {s.role && <span className="muted"> ({s.role})</span>} <Time at={s.startedAt} />
                <span className="muted small">
                  {' '}
                  · {bytes(s.bytesIn)} in · {bytes(s.bytesOut)} out
                  {s.endedAt && ` · ${duration((new Date(s.endedAt).getTime() - new Date(s.startedAt).getTime()) / 1000)}`}
                  {s.clientAddress && ` · ${s.clientAddress}`}
                  {s.clientVersion && ` · borg ${s.clientVersion}`}
                </span>
              </div>
              {s.detail && <div className="muted small"><TextWithTimes text={s.detail} /></div>}
              {(s.transactions ?? []).length > 0 && (
                <ul className="txns">
                  {s.transactions!.map((t) => (
                    <li key={t.id}>
                      transaction {t.borgTransactionId ?? '—'} {t.state === 'committed' ? 'committed' : 'rolled back'}{' '}
                      <time title={exact(t.endedAt)}>{new Date(t.endedAt).toLocaleTimeString()}</time>: {t.objectsPut} put, {t.objectsDeleted} deleted
                      {t.objectsOverwritten > 0 && `, ${t.objectsOverwritten} overwritten`}
                      {t.manifestWritten && ', manifest written'}
                    </li>
                  ))}
                </ul>
              )}
              {(s.denials ?? []).map((d) => (
                <div key={d.id} className="error small">
                  refused {d.method}: {d.message} <DenialReason reason={d.reason} message={d.message} />
                </div>
              ))}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function Denials({ denials }: { denials: Denial[] }) {
  return (
    <section aria-labelledby="denials-title">
      <h2 id="denials-title">Denials</h2>
      {denials.length === 0 ? (
        <p className="muted">Nothing refused. A refusal here is a security signal: a client tried something its role does not allow.</p>
      ) : (
        <ul className="denials">
          {denials.map((d) => (
            <li key={d.id}>
              <Time at={d.at} /> <strong>{d.keyName ?? 'unknown key'}</strong> {d.method}: {d.message} <DenialReason reason={d.reason} message={d.message} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/**
 * Whether borgkeep holds the repository's key, and (admins) the form to hand it over or take it
 * back. The passphrase is sent once and never shown again; the field is cleared after sending.
 */
function KeyVault({ repository, onChange }: { repository: Repository; onChange: () => void }) {
  const me = useMe();
  const action = useAction();
  const [passphrase, setPassphrase] = useState('');
  const [keyFile, setKeyFile] = useState('');
  const [done, setDone] = useState<string | null>(null);
  const path = `/repositories/${encodeURIComponent(repository.name)}/key`;
  const handOver = async (e: FormEvent) => {
    e.preventDefault();
    setDone(null);
    const r = await action.run(() => api<{ mode: string; archives: number }>('PUT', path, { passphrase, keyFile: keyFile.trim() === '' ? null : keyFile }));
    setPassphrase('');
    if (!r) return;
    setKeyFile('');
    setDone(`Key checked (${r.mode}, ${r.archives} archive${r.archives === 1 ? '' : 's'} in the current manifest) and sealed in the vault.`);
    onChange();
  };
  const forget = async () => {
    if (!confirm(`Forget the key of ${repository.name}? borgkeep will no longer read its archive lists.`)) return;
    setDone(null);
    if ((await action.run(() => api('DELETE', path))) !== undefined) {
      setDone('The key was removed from the vault.');
      onChange();
    }
  };
  return (
    <section aria-labelledby="key-title">
      <h2 id="key-title">Repository key</h2>
      <p data-key-held={repository.keyHeld ? 'yes' : 'no'}>
        {repository.keyHeld ? (
          <>
            <span className="badge ok">held</span> borgkeep holds this repository's key, sealed in its vault: it can read the archive lists itself.
          </>
        ) : (
          <>
            <span className="badge never">not held</span> borgkeep does not hold this repository's key: it sees objects, not archives.
          </>
        )}
      </p>
      {can(me, 'admin') && (
        <>
          <form className="inline-form" onSubmit={handOver} aria-label="hand over the repository key">
            <label>
              Repository passphrase
              <input name="passphrase" type="password" autoComplete="off" required value={passphrase} onChange={(e) => setPassphrase(e.target.value)} />
            </label>
            <label>
              Key file <span className="muted">(keyfile repositories only)</span>
              <textarea name="keyFile" rows={2} spellCheck={false} value={keyFile} onChange={(e) => setKeyFile(e.target.value)} />
            </label>
            <SubmitWithError label={repository.keyHeld ? 'Replace the key' : 'Hand over the key'} action={action} />
          </form>
          {repository.keyHeld && (
            <p className="button-row">
              <button type="button" className="small danger" disabled={action.busy} onClick={forget}>
                Forget the key
              </button>
            </p>
          )}
          <p role="status" className="small">
            {done}
          </p>
        </>
      )}
    </section>
  );
}

