// The latest audit as a timeline: each transaction since the last compaction with who made it,
// what it did to the archives, and its verdict; the first suspicious and the last known-good
// transaction are marked. Running an audit and approving the history are here too: Approve opens
// a dialog that shows the last audit's summary first and approves exactly the transaction that
// audit went through, never "whatever is newest" (a write after the audit stays uncovered).
import { Link } from '../router';
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { api, type AuditEvent, type AuditReport, type AuditedTransaction, type Repository } from '../api';
import { can, useMe } from '../app';
import { exact, TextWithTimes, Time } from '../format';
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
  const [confirming, setConfirming] = useState(false);
  const doApprove = async (throughTxn: number) => {
    const r = await approve.run(() => api('POST', `/repositories/${name}/approve`, { throughTxn }));
    setConfirming(false);
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
          <button
            type="button"
            onClick={() => {
              approve.setError(null);
              setConfirming(true);
            }}
            disabled={approve.busy || !repository.initialized || last.loading}
            title="Review the last audit and mark its history as reviewed: borg compact may run"
          >
            Approve history
          </button>
          {confirming && (
            <ApproveDialog repositoryName={repository.name} last={last.data ?? null} busy={approve.busy} onApprove={doApprove} onClose={() => setConfirming(false)} />
          )}
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
            <strong className={last.data.event.verdict === 'suspicious' ? 'alert' : ''}>{last.data.event.verdict}</strong> — <TextWithTimes text={last.data.event.detail} />
          </p>
          {report && <AuditTimeline report={report} />}
        </div>
      )}
    </section>
  );
}

/** The confirmation: what the last audit found, and the one transaction this approval covers. */
function ApproveDialog({
  repositoryName,
  last,
  busy,
  onApprove,
  onClose,
}: {
  repositoryName: string;
  last: LastAudit | null;
  busy: boolean;
  onApprove: (throughTxn: number) => void;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  const through = last?.event.throughTxn ?? null;
  const report = last?.report ?? null;
  const suspicious = report?.transactions.filter((t) => t.verdict === 'suspicious') ?? [];
  const removed = report?.transactions.flatMap((t) => (t.archivesRemoved ?? []).map((a) => `${a} (transaction ${t.id})`)) ?? [];
  return (
    <dialog ref={ref} className="approve-dialog" aria-labelledby="approve-title" onCancel={onClose}>
      <h3 id="approve-title">Approve the history of {repositoryName}?</h3>
      {!last ? (
        <p>No audit is on record. Run an audit first: approving means you have reviewed what it found.</p>
      ) : through === null ? (
        <p>The last audit saw no transactions, so there is nothing to approve. Run an audit again after the next backup.</p>
      ) : (
        <>
          <p>
            Last audit <Time at={last.event.at} /> by {last.event.actor}:{' '}
            <strong className={last.event.verdict === 'suspicious' ? 'alert' : ''} data-verdict={last.event.verdict ?? ''}>
              {last.event.verdict}
            </strong>
          </p>
          {report ? (
            <>
              {suspicious.length === 0 ? (
                <p>No suspicious transactions.</p>
              ) : (
                <ul className="reasons suspicious-list">
                  {suspicious.map((t) => (
                    <li key={t.id} data-txn={t.id}>
                      transaction {t.id}: {t.reasons.join('; ') || 'suspicious'}
                    </li>
                  ))}
                </ul>
              )}
              <p className="removed">
                {report.manifestsRead ? `Archives removed: ${removed.join(', ') || 'none'}.` : 'Archives removed: not known (audited without the passphrase).'}
              </p>
            </>
          ) : (
            <p className="muted"><TextWithTimes text={last.event.detail} /></p>
          )}
          <p className="through" data-through={through}>
            Approves history through transaction {through}. Anything written after it is not covered.
          </p>
        </>
      )}
      <div className="dialog-actions">
        {last && through !== null && (
          <button type="button" onClick={() => onApprove(through)} disabled={busy}>
            {busy ? 'Approving…' : `Approve through transaction ${through}`}
          </button>
        )}
        <button type="button" className="secondary" onClick={onClose} disabled={busy}>
          {last && through !== null ? 'Cancel' : 'Close'}
        </button>
      </div>
    </dialog>
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
        {t.attributed ? (
          <>
            {/* The ledger's own session number: the same as the history's. */}
            {t.session !== null ? <Link href={`/history/sessions/${t.session}`}>session {t.session}</Link> : 'session ?'}, key {t.key ?? '?'} ({t.role ?? '?'})
          </>
        ) : (
          'not made through borgkeep'
        )} · {t.objectsPut} put, {t.objectsDeleted} deleted
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
