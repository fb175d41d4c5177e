// Console users (admin only): add (a generated password is shown once), change role, reset a
// password (generated, shown once; the user chooses their own at the next login), remove.
import { useState, type FormEvent } from 'react';
import { api, type User, type UserRole } from '../api';
import { useMe } from '../app';
import { Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { SubmitWithError } from '../parts/form-error';
import { PasswordLogins, SOURCE_WORDS } from '../parts/password-logins';

export function UsersPage() {
  const me = useMe();
  const users = useLoad(() => api<{ users: User[] }>('GET', '/users'), []);
  const change = useAction();
  const [name, setName] = useState('');
  const [role, setRole] = useState<UserRole>('viewer');
  const [created, setCreated] = useState<{ name: string; password: string } | null>(null);
  const [reset, setReset] = useState<{ name: string; password: string } | null>(null);
  const add = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const r = await add.run(() => api<{ user: User; password?: string }>('POST', '/users', { name: name.trim(), role }));
    if (r) {
      setCreated(r.password ? { name: r.user.name, password: r.password } : null);
      setName('');
      users.reload();
    }
  };
  return (
    <>
      <h1>Users</h1>
      {users.error && <p className="error">{users.error.message}</p>}
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Signs in with</th>
              <th scope="col">Second factor</th>
              <th scope="col">Added</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(users.data?.users ?? []).map((u) => (
              <tr key={u.id} data-user={u.name}>
                <th scope="row">{u.name}</th>
                <td>
                  <select
                    aria-label={`role of ${u.name}`}
                    value={u.role}
                    disabled={change.busy || u.id === me.user.id || u.source !== 'local'}
                    title={u.source !== 'local' ? 'set at every sign-on from the group mapping in the config file' : undefined}
                    onChange={async (e) => {
                      if (await change.run(() => api('PATCH', `/users/${encodeURIComponent(u.name)}`, { role: e.target.value }))) users.reload();
                    }}
                  >
                    <option value="admin">admin</option>
                    <option value="operator">operator</option>
                    <option value="viewer">viewer</option>
                  </select>
                </td>
                <td data-source={u.source}>{SOURCE_WORDS[u.source]}</td>
                <td>
                  {u.source !== 'local' ? <span className="muted">at the sign-on</span> : u.totpEnabled ? 'on' : <span className="muted">off</span>}
                  {u.mustChangePassword && <span className="muted small"> · must choose a new password</span>}
                </td>
                <td>
                  <Time at={u.createdAt} />
                </td>
                <td>
                  {u.id !== me.user.id && (
                    <button
                      type="button"
                      className="small"
                      onClick={async () => {
                        if (!confirm(`Reset the password of ${u.name}? Their console sessions end, and they choose a new password at the next login.`)) return;
                        const r = await change.run(() => api<{ user: User; password?: string }>('POST', `/users/${encodeURIComponent(u.name)}/password`, {}));
                        if (r?.password) setReset({ name: r.user.name, password: r.password });
                        users.reload();
                      }}
                    >
                      Reset password
                    </button>
                  )}{' '}
                  {u.id !== me.user.id && (
                    <button
                      type="button"
                      className="small danger"
                      onClick={async () => {
                        if (!confirm(`Remove user ${u.name} with their sessions and API tokens?`)) return;
                        if (await change.run(() => api('DELETE', `/users/${encodeURIComponent(u.name)}`))) users.reload();
                      }}
                    >
                      Remove
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {change.error && (
        <p className="error" role="alert">
          {change.error}
        </p>
      )}
      {reset && (
        <p className="notice" role="status">
          New password of {reset.name}, shown only now: <code className="mono">{reset.password}</code>. Give it to them: they choose their own at the next login.
        </p>
      )}
      <form className="card inline-form" onSubmit={submit} aria-labelledby="add-user">
        <h2 id="add-user">Add a user</h2>
        <label>
          Name
          <input name="userName" value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label>
          Role
          <select name="userRole" value={role} onChange={(e) => setRole(e.target.value as UserRole)}>
            <option value="viewer">viewer (read only)</option>
            <option value="operator">operator (repositories, keys, audits)</option>
            <option value="admin">admin (everything)</option>
          </select>
        </label>
        <SubmitWithError label="Add" action={add} />
      </form>
      <PasswordLogins users={users.data?.users ?? []} />
      {created && (
        <p className="notice" role="status">
          Password of {created.name}, shown only now: <code className="mono">{created.password}</code>
        </p>
      )}
    </>
  );
}
