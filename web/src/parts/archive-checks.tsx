// A repository's archive checks (borgkeep serve checks each new archive after its backup): the
// rules in words, how many archives passed and failed, and for admins a small form to set or clear
// the rules. Each archive's own verdict is in the archive list below. Bad values get the server's
// sentence, the same the CLI says.
import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { can, useMe } from '../app';
import { Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { SubmitWithError } from './form-error';

interface Rules {
  requiredPaths: string[];
  maxCountChange: number | null;
  maxSizeChange: number | null;
  maxChanged: number | null;
  maxNewData: number | null;
  updatedAt: string;
  updatedBy: string;
}
interface Checks {
  repository: string;
  rules: Rules | null;
  description: string;
  passed: number;
  failed: number;
  skipped: number;
}

const LIMITS = [
  ['maxCountChange', 'File count may change by at most', '%'],
  ['maxSizeChange', 'Size may change by at most', '%'],
  ['maxChanged', 'New or changed files at most', '% of files'],
  ['maxNewData', 'New data at most', '% of bytes'],
] as const;

const archives = (n: number) => `${n} ${n === 1 ? 'archive' : 'archives'}`;

export function ArchiveChecksSection({ repository, onChange }: { repository: string; onChange?: () => void }) {
  const me = useMe();
  const path = `/repositories/${encodeURIComponent(repository)}/archive-checks`;
  const data = useLoad(() => api<{ checks: Checks }>('GET', path), [repository]);
  const [editing, setEditing] = useState(false);
  const clear = useAction();
  const c = data.data?.checks;
  const changed = () => {
    data.reload();
    onChange?.();
  };
  return (
    <section aria-labelledby="archive-checks-title" data-archive-checks={c ? (c.rules ? 'set' : 'none') : 'loading'}>
      <h2 id="archive-checks-title">Archive checks</h2>
      {data.error && <p className="error">{data.error.message}</p>}
      {c && (
        <>
          <p>
            After each backup the server checks the new archive: it must {c.description}. Counts and sizes are compared with the previous archive of the same name prefix (the name without its
            trailing date and time).
          </p>
          {c.rules && (
            <p className="muted small">
              Set by {c.rules.updatedBy} <Time at={c.rules.updatedAt} />.
            </p>
          )}
          <p data-check-counts={`${c.passed} ${c.failed}`}>
            {archives(c.passed)} passed, <span className={c.failed > 0 ? 'alert' : ''}>{archives(c.failed)} failed</span>
            {c.skipped > 0 && <span className="muted"> ({archives(c.skipped)} from before the first check were not checked)</span>}.
          </p>
        </>
      )}
      {c && can(me, 'admin') && (
        <p className="button-row">
          <button type="button" className="small" aria-expanded={editing} onClick={() => setEditing(!editing)}>
            {editing ? 'Cancel' : c.rules ? 'Change rules' : 'Set rules'}
          </button>
          {c.rules && (
            <button
              type="button"
              className="small danger"
              disabled={clear.busy}
              onClick={async () => {
                if (!confirm(`Remove the archive check rules of ${repository}? New archives are still checked for being readable.`)) return;
                if ((await clear.run(() => api('DELETE', path))) !== undefined) changed();
              }}
            >
              Remove rules
            </button>
          )}
        </p>
      )}
      {clear.error && <p className="error">{clear.error}</p>}
      {editing && c && (
        <ChecksForm
          path={path}
          current={c.rules}
          onSaved={() => {
            setEditing(false);
            changed();
          }}
        />
      )}
    </section>
  );
}

function ChecksForm({ path, current, onSaved }: { path: string; current: Rules | null; onSaved: () => void }) {
  const [paths, setPaths] = useState((current?.requiredPaths ?? []).join('\n'));
  const [limits, setLimits] = useState<Record<string, string>>(() => Object.fromEntries(LIMITS.map(([k]) => [k, current?.[k] === null || current?.[k] === undefined ? '' : String(current[k])])));
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const body: Record<string, unknown> = {
      requiredPaths: paths
        .split('\n')
        .map((p) => p.trim())
        .filter((p) => p !== ''),
    };
    for (const [k] of LIMITS) body[k] = limits[k]!.trim() === '' ? null : Number(limits[k]);
    if ((await action.run(() => api('PUT', path, body))) !== undefined) onSaved();
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="archive check rules">
      <label>
        Required paths <span className="muted">(one pattern a line, e.g. etc/passwd or home/*/)</span>
        <textarea name="requiredPaths" rows={3} spellCheck={false} value={paths} onChange={(e) => setPaths(e.target.value)} />
      </label>
      {LIMITS.map(([k, label, unit]) => (
        <label key={k}>
          {label} <span className="muted">({unit}; empty: not checked)</span>
          <input name={k} type="number" min="0" step="any" value={limits[k]} onChange={(e) => setLimits({ ...limits, [k]: e.target.value })} />
        </label>
      ))}
      <SubmitWithError label="Save rules" action={action} />
    </form>
  );
}
