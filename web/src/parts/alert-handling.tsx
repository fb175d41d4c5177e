// Handling alerts in the console: acknowledge an open alert (it is not sent again and still
// resolves by itself), silence a repository's or a key's alerts for a time (no mail or webhook
// until it ends), the active silences with who set them and an End button, and alert text with
// its exact times shown as the rest of the console shows times. Operators and admins act;
// viewers only read.
import { useState, type FormEvent } from 'react';
import { api, type Alert, type AlertSilence, type Repository, type SshKey } from '../api';
import { can, useMe } from '../app';
import { duration, TextWithTimes, Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { FormError, SubmitWithError } from './form-error';

/** An alert's text: server sentences may carry exact times, shown as the console shows times. */
export const AlertText = TextWithTimes;

/** Who acknowledged it and when, or (for operators) the button to do it. */
export function Acknowledge({ alert, onDone }: { alert: Alert; onDone: () => void }) {
  const me = useMe();
  const action = useAction();
  if (alert.acknowledgedAt) {
    return (
      <p className="small" data-acknowledged>
        <span className="badge ok">acknowledged</span> by {alert.acknowledgedBy} <Time at={alert.acknowledgedAt} />: not sent again; it resolves by itself when its cause is gone.
      </p>
    );
  }
  if (alert.resolvedAt !== null || !can(me, 'operator')) return null;
  return (
    <div className="inline-actions">
      <button type="button" disabled={action.busy} onClick={() => void action.run(() => api('POST', `/alerts/${alert.id}/acknowledge`)).then((r) => r !== undefined && onDone())}>
        Acknowledge
      </button>
      <FormError error={action.error} />
    </div>
  );
}

const DURATIONS: ReadonlyArray<[string, number]> = [
  ['1 hour', 3600],
  ['4 hours', 4 * 3600],
  ['1 day', 86_400],
  ['1 week', 7 * 86_400],
];

/** The active silences and, for operators, a form to add one and a button to end each. */
export function Silences({ changed }: { changed: () => void }) {
  const me = useMe();
  const list = useLoad(() => api<{ silences: AlertSilence[] }>('GET', '/alert-silences'), []);
  const end = useAction();
  const done = () => {
    list.reload();
    changed();
  };
  const active = list.data?.silences ?? [];
  return (
    <section aria-labelledby="silences-title">
      <h2 id="silences-title">Silences</h2>
      {list.error && <p className="error">{list.error.message}</p>}
      {list.data &&
        (active.length === 0 ? (
          <p className="muted">Nothing is silenced: every alert goes to the channels.</p>
        ) : (
          <ul className="silences">
            {active.map((s) => (
              <li key={s.id} data-silence={s.id}>
                <strong>{s.repository ? `repository ${s.repository}` : `key ${s.key}`}</strong>: silenced until <Time at={s.until} /> by {s.createdBy}
                {s.reason && <span className="muted"> ({s.reason})</span>}{' '}
                {can(me, 'operator') && (
                  <button type="button" className="secondary" disabled={end.busy} onClick={() => void end.run(() => api('DELETE', `/alert-silences/${s.id}`)).then((r) => r !== undefined && done())}>
                    End silence of {s.repository ?? s.key}
                  </button>
                )}
              </li>
            ))}
          </ul>
        ))}
      <FormError error={end.error} />
      {can(me, 'operator') && <SilenceForm onDone={done} />}
    </section>
  );
}

function SilenceForm({ onDone }: { onDone: () => void }) {
  const repos = useLoad(() => api<{ repositories: Repository[] }>('GET', '/repositories'), []);
  const keys = useLoad(() => api<{ keys: SshKey[] }>('GET', '/keys'), []);
  const [target, setTarget] = useState('');
  const [seconds, setSeconds] = useState(3600);
  const [reason, setReason] = useState('');
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (target === '') {
      action.setError('name a repository or a key to silence, one of the two');
      return;
    }
    const [kind, name] = [target.slice(0, target.indexOf(':')), target.slice(target.indexOf(':') + 1)];
    const r = await action.run(() => api('POST', '/alert-silences', { [kind === 'repository' ? 'repository' : 'key']: name, seconds, ...(reason.trim() !== '' && { reason: reason.trim() }) }));
    if (r !== undefined) {
      setReason('');
      onDone();
    }
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-labelledby="silence-title">
      <h3 id="silence-title">Silence alerts</h3>
      <p className="muted small">A silenced repository or key still opens and resolves alerts here, but no mail or webhook goes out until the silence ends.</p>
      <label>
        What
        <select name="silence-target" value={target} onChange={(e) => setTarget(e.target.value)} required>
          <option value="">choose a repository or a key</option>
          <optgroup label="Repositories">
            {(repos.data?.repositories ?? []).map((r) => (
              <option key={r.id} value={`repository:${r.name}`}>
                {r.name}
              </option>
            ))}
          </optgroup>
          <optgroup label="Keys">
            {(keys.data?.keys ?? [])
              .filter((k) => !k.revoked)
              .map((k) => (
                <option key={k.id} value={`key:${k.name}`}>
                  {k.name}
                </option>
              ))}
          </optgroup>
        </select>
      </label>
      <label>
        For
        <select name="silence-duration" value={seconds} onChange={(e) => setSeconds(Number(e.target.value))}>
          {DURATIONS.map(([label, s]) => (
            <option key={s} value={s}>
              {label}
            </option>
          ))}
        </select>
      </label>
      <label>
        Why <span className="muted">(optional)</span>
        <input name="silence-reason" value={reason} maxLength={200} onChange={(e) => setReason(e.target.value)} />
      </label>
      <SubmitWithError label={`Silence for ${duration(seconds)}`} action={action} />
    </form>
  );
}
