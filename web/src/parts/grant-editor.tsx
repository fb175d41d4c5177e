// Editing what a key may do on a repository: a grant's role, backups per day, address ranges and
// expiry (PATCH /grants), and a grant for a key on one more repository (POST /grants). The
// server checks the terms and answers bad ones in the CLI's sentences, which the form shows as
// they come; a prune grant's archive rules are never sent, so an edit leaves them as they are.
// A changed role, narrower ranges or an expiry ends the key's running sessions on that
// repository within a second (the guard's grant watch); every new session uses the new terms.
import { useState, type FormEvent } from 'react';
import { api, type Grant, type GrantRole, type Repository } from '../api';
import { useAction, useLoad } from '../hooks';
import { SubmitWithError } from './form-error';

/** The archive rules a grant may carry besides the terms edited here (prune only). */
export type GrantWithRules = Grant & { minAgeSeconds?: number | null; keepLast?: number | null; prefix?: string | null; maxRemovalsPerDay?: number | null; verifyObjects?: boolean };

const ROLE_OPTIONS: [GrantRole, string][] = [
  ['append', 'append (backups only)'],
  ['read', 'read (list and extract)'],
  ['prune', 'prune'],
  ['full', 'full (needed for borg init)'],
];

/** A datetime-local input's value for an instant, in the browser's time zone. */
function localInput(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** What the form's text fields mean to the API: empty is "no limit". */
function terms(writes: string, ranges: string, expires: string) {
  const cidrs = ranges.split(/[\s,]+/).filter((c) => c !== '');
  const w = writes.trim();
  // Not a number at all: the server's sentence for a bad count, said here (JSON has no NaN).
  if (w !== '' && !Number.isFinite(Number(w))) throw new Error(`backups per day (writes per day) must be a whole number of at least 1, not ${w}`);
  return {
    writesPerDay: w === '' ? null : Number(w),
    fromCidrs: cidrs.length === 0 ? null : cidrs,
    // datetime-local has no zone: it is the browser's local time, sent as an instant.
    expiresAt: expires === '' ? null : new Date(expires).toISOString(),
  };
}

function TermFields({ writes, setWrites, ranges, setRanges, expires, setExpires }: { writes: string; setWrites: (v: string) => void; ranges: string; setRanges: (v: string) => void; expires: string; setExpires: (v: string) => void }) {
  return (
    <>
      <label>
        Backups a day <span className="muted">(empty: no limit)</span>
        <input name="writesPerDay" inputMode="numeric" value={writes} onChange={(e) => setWrites(e.target.value)} />
      </label>
      <label>
        Source addresses <span className="muted">(address ranges such as 192.0.2.0/24, separated by commas; empty: any)</span>
        <input name="fromCidrs" value={ranges} onChange={(e) => setRanges(e.target.value)} spellCheck={false} />
      </label>
      <label>
        Expires <span className="muted">(your local time; empty: never)</span>
        <input name="expiresAt" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />
      </label>
    </>
  );
}

export function GrantEditor({ grant, onSaved, onCancel }: { grant: GrantWithRules; onSaved: () => void; onCancel: () => void }) {
  const [role, setRole] = useState<GrantRole>(grant.role);
  const [writes, setWrites] = useState(grant.writesPerDay === null ? '' : String(grant.writesPerDay));
  const [ranges, setRanges] = useState((grant.fromCidrs ?? []).join(', '));
  const [expires, setExpires] = useState(localInput(grant.expiresAt));
  const action = useAction();
  const id = `edit-${grant.keyId}-${grant.repositoryName}`;
  const rules = [
    grant.minAgeSeconds != null && `minimum age ${grant.minAgeSeconds} s`,
    grant.keepLast != null && `keep the last ${grant.keepLast}`,
    grant.prefix != null && `prefix ${grant.prefix}`,
    grant.maxRemovalsPerDay != null && `at most ${grant.maxRemovalsPerDay} removed a day`,
  ].filter((r): r is string => r !== false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const saved = await action.run(() =>
      api('PATCH', `/grants/${encodeURIComponent(String(grant.keyId))}/${encodeURIComponent(grant.repositoryName)}`, { role, ...terms(writes, ranges, expires) }),
    );
    if (saved) onSaved();
  };
  return (
    <form className="card grant-editor" onSubmit={submit} aria-labelledby={`${id}-title`} onKeyDown={(e) => e.key === 'Escape' && onCancel()}>
      <h3 id={`${id}-title`}>
        Edit the grant of {grant.keyName} on {grant.repositoryName}
      </h3>
      <RoleField role={role} setRole={setRole} autoFocus />
      <TermFields writes={writes} setWrites={setWrites} ranges={ranges} setRanges={setRanges} expires={expires} setExpires={setExpires} />
      {rules.length > 0 && (
        <p className="muted small">
          Archive rules ({rules.join(', ')}) {role === 'prune' ? 'stay as they are' : 'belong to the prune role and go with it'}; change them with <code>borgkeep grant</code>.
        </p>
      )}
      <p className="muted small">A changed role, fewer addresses or an expiry end this key’s running sessions on {grant.repositoryName}; the next session uses the new terms.</p>
      <div className="actions">
        <button type="button" className="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <SubmitWithError label="Save grant" action={action} />
    </form>
  );
}

/** The role of a grant, as both forms ask for it. */
function RoleField({ role, setRole, autoFocus = false }: { role: GrantRole; setRole: (r: GrantRole) => void; autoFocus?: boolean }) {
  return (
    <label>
      Role
      <select name="role" value={role} onChange={(e) => setRole(e.target.value as GrantRole)} autoFocus={autoFocus}>
        {ROLE_OPTIONS.map(([value, label]) => (
          <option key={value} value={value}>
            {label}
          </option>
        ))}
      </select>
    </label>
  );
}

/** A grant for a key on a repository it has none on. */
export function AddGrantForKey({ keyId, keyName, granted, onAdded, onCancel }: { keyId: number; keyName: string; granted: string[]; onAdded: () => void; onCancel: () => void }) {
  const repos = useLoad(() => api<{ repositories: Repository[] }>('GET', '/repositories'), []);
  const candidates = (repos.data?.repositories ?? []).filter((r) => !granted.includes(r.name));
  const [repository, setRepository] = useState('');
  const [role, setRole] = useState<GrantRole>('append');
  const [writes, setWrites] = useState('');
  const [ranges, setRanges] = useState('');
  const [expires, setExpires] = useState('');
  const action = useAction();
  const id = `add-grant-${keyId}`;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const chosen = repository || candidates[0]?.name;
    if (!chosen) return;
    const added = await action.run(() => api('POST', '/grants', { key: String(keyId), repository: chosen, role, ...terms(writes, ranges, expires) }));
    if (added) onAdded();
  };
  return (
    <form className="card grant-editor" onSubmit={submit} aria-labelledby={`${id}-title`} onKeyDown={(e) => e.key === 'Escape' && onCancel()}>
      <h3 id={`${id}-title`}>Grant {keyName} a role on another repository</h3>
      {repos.data && candidates.length === 0 ? (
        <p className="muted">This key has a grant on every repository.</p>
      ) : (
        <>
          <label>
            Repository
              <select name="repository" value={repository} onChange={(e) => setRepository(e.target.value)} autoFocus>
              {candidates.map((r) => (
                <option key={r.id} value={r.name}>
                  {r.name}
                </option>
              ))}
            </select>
          </label>
          <RoleField role={role} setRole={setRole} />
          <TermFields writes={writes} setWrites={setWrites} ranges={ranges} setRanges={setRanges} expires={expires} setExpires={setExpires} />
        </>
      )}
      <div className="actions">
        <button type="button" className="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
      {candidates.length > 0 && <SubmitWithError label="Add grant" action={action} />}
    </form>
  );
}
