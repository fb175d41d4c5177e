// A repository's retention policy (run by `borgkeep serve`: borg prune with these rules, then
// borg compact under the gate): the rules, the next run, the last run's result; admins set or
// turn it off. A repository whose key borgkeep does not hold can have none.
import { useState, type FormEvent } from 'react';
import { api, type Retention, type RetentionPolicy } from '../api';
import { can, useMe } from '../app';
import { Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { SubmitWithError } from './form-error';

const COUNTS = [
  ['keepLast', 'last'],
  ['keepHourly', 'hourly'],
  ['keepDaily', 'daily'],
  ['keepWeekly', 'weekly'],
  ['keepMonthly', 'monthly'],
  ['keepYearly', 'yearly'],
] as const;

function rules(p: RetentionPolicy): string {
  const parts: string[] = [];
  if (p.keepWithin) parts.push(`everything within ${p.keepWithin}`);
  for (const [k, label] of COUNTS) if (p[k] !== null) parts.push(`${p[k]} ${label}`);
  return `keep ${parts.join(', ')}${p.prefix ? ` of the archives named ${p.prefix}…` : ''}`;
}

export function RetentionSection({ repository }: { repository: string }) {
  const me = useMe();
  const path = `/repositories/${encodeURIComponent(repository)}/retention`;
  const data = useLoad(() => api<{ retention: Retention }>('GET', path), [repository]);
  const [editing, setEditing] = useState(false);
  const off = useAction();
  const r = data.data?.retention;
  return (
    <section aria-labelledby="retention-title" data-retention={r?.policy ? 'on' : 'off'}>
      <h2 id="retention-title">Retention</h2>
      {data.error && <p className="error">{data.error.message}</p>}
      {r && !r.policy && (
        <p className="muted">
          No retention policy: archives stay until a client with a prune or full key removes them.
          {!r.keyHeld && ' The server can run one only once borgkeep holds the repository’s key (borgkeep repo key).'}
        </p>
      )}
      {r?.policy && (
        <dl className="facts">
          <div>
            <dt>Policy</dt>
            <dd>
              {rules(r.policy)}
              <div className="muted small mono">schedule {r.policy.schedule} (server time)</div>
            </dd>
          </div>
          <div>
            <dt>Next run</dt>
            <dd>
              <Time at={r.nextRunAt} empty="not scheduled" />
            </dd>
          </div>
          <div>
            <dt>Last run</dt>
            <dd data-last-result={r.policy.lastResult ?? 'none'}>
              {r.policy.lastResult ? <span className={`badge ${r.policy.lastResult === 'ok' ? 'ok' : r.policy.lastResult === 'warning' ? 'late' : 'error'}`}>{r.policy.lastResult}</span> : null}{' '}
              <Time at={r.policy.lastRunAt} empty="never" />
              {r.policy.lastDetail && <div className="small">{r.policy.lastDetail}</div>}
            </dd>
          </div>
        </dl>
      )}
      {r && can(me, 'admin') && r.keyHeld && (
        <p className="button-row">
          <button type="button" className="small" aria-expanded={editing} onClick={() => setEditing(!editing)}>
            {editing ? 'Cancel' : r.policy ? 'Change policy' : 'Set a policy'}
          </button>
          {r.policy && (
            <button
              type="button"
              className="small danger"
              disabled={off.busy}
              onClick={async () => {
                if (!confirm(`Turn retention off for ${repository}?`)) return;
                if ((await off.run(() => api('DELETE', path))) !== undefined) data.reload();
              }}
            >
              Turn off
            </button>
          )}
        </p>
      )}
      {off.error && <p className="error">{off.error}</p>}
      {editing && r && (
        <RetentionForm
          path={path}
          current={r.policy}
          onSaved={() => {
            setEditing(false);
            data.reload();
          }}
        />
      )}
    </section>
  );
}

function RetentionForm({ path, current, onSaved }: { path: string; current: RetentionPolicy | null; onSaved: () => void }) {
  const start = (v: number | string | null | undefined) => (v === null || v === undefined ? '' : String(v));
  const [values, setValues] = useState<Record<string, string>>(() => ({
    ...Object.fromEntries(COUNTS.map(([k]) => [k, start(current?.[k])])),
    keepWithin: start(current?.keepWithin),
    prefix: start(current?.prefix),
    schedule: current?.schedule ?? '30 3 * * *',
  }));
  const action = useAction();
  const set = (k: string) => (e: { target: { value: string } }) => setValues({ ...values, [k]: e.target.value });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const body: Record<string, unknown> = { schedule: values.schedule };
    for (const [k] of COUNTS) if (values[k] !== '') body[k] = Number(values[k]);
    if (values.keepWithin) body.keepWithin = values.keepWithin;
    if (values.prefix) body.prefix = values.prefix;
    if ((await action.run(() => api('PUT', path, body))) !== undefined) onSaved();
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="retention policy">
      {COUNTS.map(([k, label]) => (
        <label key={k}>
          Keep {label}
          <input name={k} type="number" min="1" value={values[k]} onChange={set(k)} />
        </label>
      ))}
      <label>
        Keep within <span className="muted">(e.g. 30d, 12H)</span>
        <input name="keepWithin" value={values.keepWithin} onChange={set('keepWithin')} />
      </label>
      <label>
        Name prefix <span className="muted">(optional)</span>
        <input name="prefix" value={values.prefix} onChange={set('prefix')} />
      </label>
      <label>
        Schedule <span className="muted">(cron, server time)</span>
        <input name="schedule" value={values.schedule} onChange={set('schedule')} />
      </label>
      <SubmitWithError label="Save policy" action={action} />
    </form>
  );
}
