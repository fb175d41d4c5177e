import { useState, type FormEvent } from 'react';
import { api, ApiError, type User } from '../api';

export function LoginPage({ onLogin }: { onLogin: (user: User, csrf: string) => void }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [askTotp, setAskTotp] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await api<{ user: User; csrfToken: string }>('POST', '/session', { name, password, ...(askTotp && { totp }) });
      onLogin(r.user, r.csrfToken);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'BK_ERR_TOTP_REQUIRED') {
        setAskTotp(true);
        setError(null);
      } else setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login" id="main">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">borgkeep</h1>
        <p className="muted">Log in to the console.</p>
        <label>
          User
          <input name="username" autoComplete="username" value={name} onChange={(e) => setName(e.target.value)} required autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
        </label>
        {askTotp && (
          <label>
            Code from your authenticator app, or a recovery code
            <input
              name="totp"
              autoComplete="one-time-code"
              value={totp}
              onChange={(e) => setTotp(e.target.value)}
              required
              autoFocus
            />
          </label>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
        <p className="muted small">
          First start? <code>borgkeep serve</code> printed the password of <code>admin</code> once.
        </p>
      </form>
    </main>
  );
}
