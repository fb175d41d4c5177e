// The latest audit as a timeline: each transaction since the last compaction with who made it,
// what it did to the archives, and its verdict; the first suspicious and the last known-good
// transaction are marked. Running an audit and approving the history are here too.
import { useState, type FormEvent } from 'react';
import { api, type AuditEvent, type AuditReport, type AuditedTransaction, type Repository } from '../api';
import { can, useMe } from '../app';
import { exact, Time } from '../format';
import { useAction, useLoad } from '../hooks';

interface LastAudit {
  event: AuditEvent;
  report: AuditReport | null;
  gate: Repository['gate'];
}

export function AuditView({ repository, onChange }: { repository: Repository; onChange: () => void }) {
  const me = useMe();
  const name = encodeURIComponent(repository.name);
  const last = useLoad(
    () => api<LastAudit>('GET', `/repositories/${name}/audit`).catch((e: { code?: string }) => (e.code === 'BK_ERR_NOT_FOUND' ? null : Promise.reject(e))),
    [repository.name, repository.lastAudit?.at, repository.gate.open],
  );
  const [passphrase, setPassphrase] = useState('');
  const audit = useAction();
  const approve = useAction();
  const runAudit = async (e: FormEvent) => {
    e.preventDefault();
    const r = await audit.run(() => api('POST', `/repositories/${name}/audit`, { passphrase: passphrase === '' ? null : passphrase }));
    setPassphrase('');
    if (r) {
      last.reload();
      onChange();
    }
  };
  const doApprove = async () => {
    const r = await approve.run(() => api('POST', `/repositories/${name}/approve`));
    if (r) {
      last.reload();
      onChange();
    }
  };
  const report = last.data?.report ?? null;

  return (
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">Audit</h2>
      <p className="gate" data-gate={repository.gate.open ? 'open' : 'closed'}>
        <span className={`badge ${repository.gate.open ? 'ok' : 'late'}`}>compaction {repository.gate.open ? 'goes through' : 'waits for review'}</span> {repository.gate.why}
      </p>
      {can(me, 'operator') && (
        <div className="audit-actions">
          <form onSubmit={runAudit} className="inline-form">
            <label>
              Passphrase <span className="muted">(optional: reads the archive lists; used once, never stored)</span>
              <input name="passphrase" type="password" autoComplete="off" value={passphrase} onChange={(e) => setPassphrase(e.target.value)} />
            </label>
            <button type="submit" disabled={audit.busy || !repository.initialized}>
              {audit.busy ? 'Auditing…' : 'Run audit'}
            </button>
          </form>
          <button type="button" onClick={doApprove} disabled={approve.busy || !repository.initialized} title="Mark the history as reviewed: borg compact may run">
            Approve history
          </button>
          {(audit.error || approve.error) && (
            <p className="error" role="alert">
              {audit.error ?? approve.error}
            </p>
          )}
        </div>
      )}
      {!repository.initialized && <p className="muted">Nothing to audit yet: the repository is created by the first <code>borg init</code>.</p>}
      {last.data === null && !last.loading && repository.initialized && <p className="muted">Not audited yet.</p>}
      {last.data && (
        <div className="audit-report" data-verdict={last.data.event.verdict ?? ''}>
          <p>
            Last audit <Time at={last.data.event.at} /> by {last.data.event.actor}:{' '}
            <strong className={last.data.event.verdict === 'suspicious' ? 'alert' : ''}>{last.data.event.verdict}</strong> — {last.data.event.detail}
          </p>
          {report && <AuditTimeline report={report} />}
        </div>
      )}
    </section>
  );
}

function AuditTimeline({ report }: { report: AuditReport }) {
  if (report.transactions.length === 0) return <p className="muted">No transactions since the last compaction.</p>;
  return (
    <>
      {!report.manifestsRead && (
        <p className="muted small">Audited without the passphrase: archive changes are not shown ({(report.checksNeedingKey ?? []).join('; ')}).</p>
      )}
      {report.problems && report.problems.length > 0 && <p className="error">{report.problems.join(' ')}</p>}
      <ol className="timeline audit">
        {report.transactions.map((t) => (
          <AuditStep key={t.id} t={t} firstSuspicious={t.id === report.firstSuspiciousTransaction} lastGood={t.id === report.lastKnownGoodTransaction} />
        ))}
      </ol>
    </>
  );
}

function AuditStep({ t, firstSuspicious, lastGood }: { t: AuditedTransaction; firstSuspicious: boolean; lastGood: boolean }) {
  const list = (label: string, names: string[] | null) =>
    names && names.length > 0 ? (
      <li>
        {label}: {names.join(', ')}
      </li>
    ) : null;
  return (
    <li className={`step ${t.verdict}`} data-txn={t.id}>
      <div>
        <strong>transaction {t.id}</strong> {t.time ? <time title={exact(t.time)}>{exact(t.time)}</time> : <span className="muted">time unknown</span>}{' '}
        <span className={`badge ${t.verdict === 'suspicious' ? 'late' : t.verdict === 'notice' ? 'never' : 'ok'}`}>{t.verdict}</span>
        {firstSuspicious && <span className="badge late marker">first suspicious</span>}
        {lastGood && <span className="badge ok marker">last known-good</span>}
      </div>
      <div className="muted small">
        {t.attributed ? `session ${t.session}, key ${t.key ?? '?'} (${t.role ?? '?'})` : 'not made through borgkeep'} · {t.objectsPut} put, {t.objectsDeleted} deleted
        {t.objectsOverwritten > 0 && `, ${t.objectsOverwritten} overwritten`}
      </div>
      <ul className="diff">
        {list('added', t.archivesAdded)}
        {list('removed', t.archivesRemoved)}
        {list('replaced', t.archivesReplaced)}
        {list('checkpoints finished', t.checkpointsPromoted)}
      </ul>
      {t.reasons.length > 0 && (
        <ul className="reasons">
          {t.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      )}
    </li>
  );
}
