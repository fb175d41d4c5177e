// A repository's verification (borgkeep verify, the daily verify job): the newest run's verdict,
// when and by whom, what it read, and each finding as the sentence the CLI prints with the
// archives that depend on the object. Operators run one now: the objects written since the last
// verification, or every object. A repository whose key borgkeep does not hold cannot be
// verified; the server's sentence says so.
import { api } from '../api';
import { can, useMe } from '../app';
import { Time, bytes } from '../format';
import { useAction, useLoad } from '../hooks';

interface Finding {
  kind: string;
  sentence: string;
  archives?: string[] | null;
}
interface Verification {
  at: string;
  actor: string;
  scope: 'changed' | 'all';
  verdict: 'intact' | 'damaged' | 'error';
  fromTxn: number | null;
  throughTxn: number | null;
  objectsRead: number;
  bytesRead: number;
  detail: string;
  findings: Finding[];
}

const VERDICT: Record<Verification['verdict'], { label: string; badge: string }> = {
  intact: { label: 'intact', badge: 'ok' },
  damaged: { label: 'damage found', badge: 'error' },
  error: { label: 'could not verify', badge: 'late' },
};

export function VerificationSection({ repository }: { repository: string }) {
  const me = useMe();
  const path = `/repositories/${encodeURIComponent(repository)}`;
  const data = useLoad(() => api<{ verification: Verification | null }>('GET', `${path}/verification`), [repository]);
  const action = useAction();
  const v = data.data?.verification;
  const verify = async (all: boolean) => {
    if ((await action.run(() => api('POST', `${path}/verify`, all ? { all: true } : {}))) !== undefined) data.reload();
  };
  return (
    <section aria-labelledby="verification-title" data-verification={v?.verdict ?? 'never'}>
      <h2 id="verification-title">Verification</h2>
      {data.error && <p className="error">{data.error.message}</p>}
      {data.data && !v && <p className="muted">Not verified yet: nobody has checked that the objects of this repository are intact.</p>}
      {v && (
        <dl className="facts">
          <div>
            <dt>Last verification</dt>
            <dd>
              <span className={`badge ${VERDICT[v.verdict].badge}`}>{VERDICT[v.verdict].label}</span> <Time at={v.at} /> <span className="muted small">by {v.actor}</span>
            </dd>
          </div>
          <div>
            <dt>Read</dt>
            <dd>
              {v.objectsRead} {v.objectsRead === 1 ? 'object' : 'objects'}, {bytes(v.bytesRead)}
              <div className="muted small">{v.scope === 'all' || v.fromTxn === null ? 'every object' : `the objects written after transaction ${v.fromTxn}`}</div>
            </dd>
          </div>
        </dl>
      )}
      {v && v.findings.length > 0 && (
        <ul className="findings">
          {v.findings.map((f, i) => (
            <li key={i}>
              {f.sentence}
              {f.archives && f.archives.length > 0 && <span> Archives that depend on it: {f.archives.join(', ')}.</span>}
            </li>
          ))}
        </ul>
      )}
      {can(me, 'operator') && (
        <p className="button-row">
          <button type="button" className="small" disabled={action.busy} onClick={() => verify(false)}>
            {action.busy ? 'Verifying…' : 'Verify what is new'}
          </button>
          <button type="button" className="small" disabled={action.busy} onClick={() => verify(true)}>
            Verify everything
          </button>
        </p>
      )}
      {action.error && (
        <p className="error" role="alert">
          {action.error}
        </p>
      )}
    </section>
  );
}
