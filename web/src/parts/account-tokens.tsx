// The signed-in user's own API tokens: create one with a role (never above the user's) and an
// expiry, shown once with a Copy button; the list (name, role, created, expires, last used) and
// Revoke. An admin's GET /tokens has everyone's: this view keeps the user's own.
import { useState, type FormEvent } from 'react';
import { api, type UserRole } from '../api';
import { useMe } from '../app';
import { Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { CopyButton } from './copy-button';
import { SubmitWithError } from './form-error';

export interface ApiToken {
  id: number;
  name: string;
  prefix: string;
  user: string;
  role: UserRole;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const ROLES: UserRole[] = ['viewer', 'operator', 'admin'];
const EXPIRY_DAYS: Array<[string, number | null]> = [
  ['in 30 days', 30],
  ['in 90 days', 90],
  ['in a year', 365],
  ['never', null],
];

export function OwnTokens() {
  const me = useMe();
  const tokens = useLoad(() => api<{ tokens: ApiToken[] }>('GET', '/tokens'), []);
  const mine = (tokens.data?.tokens ?? []).filter((t) => t.user === me.user.name && t.revokedAt === null);
  const roles = ROLES.slice(0, ROLES.indexOf(me.role) + 1);
  const [name, setName] = useState('');
  const [role, setRole] = useState<UserRole>('viewer');
  const [days, setDays] = useState('30');
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const create = useAction();
  const revoke = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const expiresAt = days === 'never' ? null : new Date(Date.now() + Number(days) * 86_400_000).toISOString();
    const r = await create.run(() => api<{ token: string; apiToken: ApiToken }>('POST', '/tokens', { name: name.trim(), role, expiresAt }));
    if (r) {
      setCreated({ name: r.apiToken.name, token: r.token });
      setName('');
      tokens.reload();
    }
  };
  return (
    <section className="card" aria-labelledby="tokens-title">
      <h2 id="tokens-title">Your API tokens</h2>
      <p className="muted small">For scripts and automation: send one as <code>Authorization: Bearer bk_…</code>. A token acts with its role, never above yours.</p>
      {tokens.error && <p className="error">{tokens.error.message}</p>}
      {mine.length === 0 ? (
        <p className="muted">No API tokens.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {mine.map((t) => (
                <tr key={t.id} data-token={t.name}>
                  <th scope="row">
                    {t.name} <span className="muted small mono">{t.prefix}…</span>
                  </th>
                  <td>{t.role}</td>
                  <td>
                    <Time at={t.createdAt} />
                  </td>
                  <td>
                    <Time at={t.expiresAt} empty="never" />
                  </td>
                  <td>
                    <Time at={t.lastUsedAt} empty="never" />
                  </td>
                  <td>
                    <button
                      type="button"
                      className="small danger"
                      disabled={revoke.busy}
                      aria-label={`revoke the token ${t.name}`}
                      onClick={async () => {
                        if (!confirm(`Revoke the API token ${t.name}? Scripts using it stop working at once.`)) return;
                        if (await revoke.run(() => api('DELETE', `/tokens/${t.id}`))) {
                          if (created?.name === t.name) setCreated(null);
                          tokens.reload();
                        }
                      }}
                    >
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoke.error && <p className="error" role="alert">{revoke.error}</p>}
      <form className="inline-form" onSubmit={submit} aria-labelledby="new-token-title">
        <h3 id="new-token-title">New token</h3>
        <label>
          Token name
          <input name="tokenName" value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label>
          Token role
          <select name="tokenRole" value={role} onChange={(e) => setRole(e.target.value as UserRole)}>
            {roles.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          Expires
          <select name="tokenExpiry" value={days} onChange={(e) => setDays(e.target.value)}>
            {EXPIRY_DAYS.map(([label, n]) => (
              <option key={label} value={n === null ? 'never' : String(n)}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <SubmitWithError label="Create token" action={create} />
      </form>
      {created && (
        <div className="notice" role="status" aria-label="new API token">
          <p>
            The token {created.name}, shown only now: <code className="mono" data-new-token>{created.token}</code>
          </p>
          <CopyButton text={created.token} label="copy the new token" />{' '}
          <button type="button" className="small" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      )}
    </section>
  );
}
