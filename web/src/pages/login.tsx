// The login page: a password (a local user, or a directory account when LDAP is set up), the
// second factor when asked, and "Sign in with …" for an OpenID provider. A refused sign-on comes
// back from the server's redirect as ?signon_error=SENTENCE, shown here once.
import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type User } from '../api';

interface SsoOffer {
  oidc: { label: string; startUrl: string } | null;
  ldap: { label: string } | null;
  passwordLogins: 'all' | 'break-glass';
}

function takeSignonError(): string | null {
  const params = new URLSearchParams(window.location.search);
  const message = params.get('signon_error');
  if (message !== null) window.history.replaceState(null, '', window.location.pathname);
  return message;
}

export function LoginPage({ onLogin }: { onLogin: (user: User, csrf: string) => void }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [askTotp, setAskTotp] = useState(false);
  const [error, setError] = useState<string | null>(() => takeSignonError());
  const [busy, setBusy] = useState(false);
  const [sso, setSso] = useState<SsoOffer | null>(null);
  const [via, setVia] = useState<'local' | 'ldap'>('local');
  useEffect(() => {
    api<SsoOffer>('GET', '/sso').then(
      (offer) => {
        setSso(offer);
        // Where a directory is set up, most people have an account there; the break-glass admin picks the other.
        if (offer.ldap) setVia('ldap');
      },
      () => setSso(null),
    );
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r =
        via === 'ldap'
          ? await api<{ user: User; csrfToken: string }>('POST', '/sso/ldap/session', { name, password })
          : await api<{ user: User; csrfToken: string }>('POST', '/session', { name, password, ...(askTotp && { totp }) });
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
        {sso?.oidc && (
          <>
            <a className="button sso" href={sso.oidc.startUrl}>
              Sign in with {sso.oidc.label}
            </a>
            <p className="muted small or">or with a user name and password:</p>
          </>
        )}
        {sso?.ldap && (
          <fieldset className="via">
            <legend>Account</legend>
            <label>
              <input type="radio" name="via" value="ldap" checked={via === 'ldap'} onChange={() => setVia('ldap')} /> {sso.ldap.label}
            </label>
            <label>
              <input type="radio" name="via" value="local" checked={via === 'local'} onChange={() => setVia('local')} /> borgkeep account
            </label>
          </fieldset>
        )}
        <label>
          User
          <input name="username" autoComplete="username" value={name} onChange={(e) => setName(e.target.value)} required autoFocus={!sso?.oidc} />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
        </label>
        {askTotp && via === 'local' && (
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
        {sso?.passwordLogins === 'break-glass' ? (
          <p className="muted small">Password logins of borgkeep users are off: only the break-glass account may use one.</p>
        ) : (
          <p className="muted small">
            First start? <code>borgkeep serve</code> printed the password of <code>admin</code> once.
          </p>
        )}
      </form>
    </main>
  );
}
