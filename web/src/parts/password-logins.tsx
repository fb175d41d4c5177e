// The admin setting that turns password logins off for everyone but one break-glass account
// (a local admin with a password), for servers where people sign on through an OpenID provider
// or an LDAP directory. Turning it on ends the other local users' console sessions.
import { useState, type FormEvent } from 'react';
import { api, type User } from '../api';
import { useAction, useLoad } from '../hooks';
import { SubmitWithError } from './form-error';

export const SOURCE_WORDS: Record<User['source'], string> = {
  local: 'password',
  oidc: 'OpenID sign-on',
  ldap: 'LDAP directory',
};

export function PasswordLogins({ users }: { users: User[] }) {
  const current = useLoad(() => api<{ onlyFor: string | null }>('GET', '/sso/password-logins'), []);
  const save = useAction();
  const [choice, setChoice] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const candidates = users.filter((u) => u.source === 'local' && u.hasPassword && u.role === 'admin');
  const value = choice ?? current.data?.onlyFor ?? '';
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const r = await save.run(() => api<{ onlyFor: string | null; endedSessions: number }>('PUT', '/sso/password-logins', { onlyFor: value === '' ? null : value }));
    if (r) {
      setDone(
        r.onlyFor === null
          ? 'Password logins are on for every local user.'
          : `Password logins are off except for ${r.onlyFor}; ${r.endedSessions === 1 ? 'one console session' : `${r.endedSessions} console sessions`} ended.`,
      );
      current.reload();
    }
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-labelledby="password-logins">
      <h2 id="password-logins">Password logins</h2>
      <label>
        Who may log in with a password
        <select name="onlyFor" value={value} onChange={(e) => setChoice(e.target.value)}>
          <option value="">every local user</option>
          {candidates.map((u) => (
            <option key={u.id} value={u.name}>
              only {u.name} (break-glass account)
            </option>
          ))}
        </select>
      </label>
      <SubmitWithError label="Save" action={save} />
      {done && (
        <p className="notice" role="status">
          {done}
        </p>
      )}
    </form>
  );
}
