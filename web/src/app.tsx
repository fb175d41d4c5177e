// The console's shell: who is signed in (GET /session), the login page otherwise, the header
// with the navigation, and the page for the current path.
import { createContext, useContext, useEffect, useRef, useState } from 'react';
import { api, onSessionEnded, setCsrfToken, type User, type UserRole } from './api';
import { LiveProvider, useLive } from './live';
import { Link, navigate, usePath } from './router';
import { LoginPage } from './pages/login';
import { DashboardPage } from './pages/dashboard';
import { RepositoryPage } from './pages/repository';
import { KeysPage } from './pages/keys';
import { PullPage } from './pages/pull';
import { UsersPage } from './pages/users';
import { AlertsPage } from './pages/alerts';
import { SettingsPage } from './pages/settings';
import { AccountPage } from './pages/account';
import { PasswordForm } from './parts/password-form';
import { HistoryPage, SessionPage } from './pages/history';
import { OpenAlertsProvider, useOpenAlerts } from './open-alerts';

interface Me {
  user: User;
  role: UserRole;
}

const MeContext = createContext<Me | null>(null);
export const useMe = () => useContext(MeContext)!;
const RANK: Record<UserRole, number> = { viewer: 1, operator: 2, admin: 3 };
export const can = (me: Me, role: UserRole) => RANK[me.role] >= RANK[role];

export function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  useEffect(() => {
    onSessionEnded(() => setMe(null));
    api<{ user: User; role: UserRole; csrfToken?: string }>('GET', '/session').then(
      (r) => {
        setCsrfToken(r.csrfToken ?? null);
        setMe({ user: r.user, role: r.role });
      },
      () => setMe(null),
    );
  }, []);
  if (me === undefined) return <p className="loading" aria-live="polite">Loading…</p>;
  if (me === null)
    return (
      <LoginPage
        onLogin={(user, csrf) => {
          setCsrfToken(csrf);
          setMe({ user, role: user.role });
        }}
      />
    );
  const logout = async () => {
    await api('DELETE', '/session').catch(() => undefined);
    setCsrfToken(null);
    setMe(null);
    navigate('/');
  };
  const userChanged = (user: User) => setMe((m) => m && { ...m, user });
  // After an admin's reset, choosing a new password is the only thing the API allows.
  if (me.user.mustChangePassword)
    return (
      <main className="login" id="main">
        <div>
          <h1>Choose a new password</h1>
          <p>An admin reset your password. Choose your own before you go on.</p>
          <PasswordForm title="Your new password" onChanged={() => userChanged({ ...me.user, mustChangePassword: false })} />
          <button type="button" className="link" onClick={logout}>
            Log out
          </button>
        </div>
      </main>
    );
  return (
    <MeContext.Provider value={me}>
      <LiveProvider>
        <OpenAlertsProvider>
          <Shell onLogout={logout} onUserChanged={userChanged} />
        </OpenAlertsProvider>
      </LiveProvider>
    </MeContext.Provider>
  );
}

function Shell({ onLogout, onUserChanged }: { onLogout: () => void; onUserChanged: (user: User) => void }) {
  const me = useMe();
  const path = usePath();
  const live = useLive();
  const openAlerts = useOpenAlerts().alerts;
  const nav: Array<[string, string, boolean]> = [
    ['/', 'Repositories', path === '/' || path.startsWith('/repositories/')],
    ['/alerts', 'Alerts', path === '/alerts'],
    ['/keys', 'Keys', path === '/keys'],
    ['/pull', 'Pull backups', path === '/pull'],
    ['/history', 'History', path === '/history' || path.startsWith('/history/')],
    ['/settings/alerts', 'Settings', path === '/settings' || path.startsWith('/settings/')],
    ...(can(me, 'admin') ? [['/users', 'Users', path === '/users'] as [string, string, boolean]] : []),
  ];
  // After a page change, focus moves to the content (as a page load would start over); on the
  // first load it stays at the top, where the skip link is the first stop.
  const firstPath = useRef(path);
  useEffect(() => {
    if (path !== firstPath.current) {
      firstPath.current = '';
      document.getElementById('main')?.focus({ preventScroll: true });
    }
  }, [path]);
  let page;
  const repo = /^\/repositories\/([^/]+)$/.exec(path);
  if (path === '/') page = <DashboardPage />;
  else if (repo) page = <RepositoryPage name={decodeURIComponent(repo[1]!)} />;
  else if (path === '/keys') page = <KeysPage />;
  else if (path === '/pull') page = <PullPage />;
  else if (path === '/alerts') page = <AlertsPage />;
  else if (path === '/history') page = <HistoryPage />;
  else if (/^\/history\/sessions\/[0-9]+$/.test(path)) page = <SessionPage id={Number(path.split('/')[3])} />;
  else if (path === '/settings' || path === '/settings/alerts') page = <SettingsPage tab="alerts" />;
  else if (path === '/settings/jobs') page = <SettingsPage tab="jobs" />;
  else if (path === '/users' && can(me, 'admin')) page = <UsersPage />;
  else if (path === '/account') page = <AccountPage onUserChanged={onUserChanged} />;
  else
    page = (
      <section>
        <h1>Not found</h1>
        <p>
          There is no page at {path}. <Link href="/">Go to the repositories.</Link>
        </p>
      </section>
    );
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href="/" className="brand">
          borgkeep
        </Link>
        <nav aria-label="Main">
          {nav.map(([href, label, current]) => (
            <Link key={href} href={href} aria-current={current ? 'page' : undefined}>
              {label}
              {href === '/alerts' && openAlerts && openAlerts.length > 0 && (
                <span className={`count ${openAlerts.some((a) => a.severity === 'critical') ? 'critical' : ''}`} data-open-alerts={openAlerts.length}>
                  {' '}
                  {openAlerts.length}
                  <span className="sr-only"> open</span>
                </span>
              )}
            </Link>
          ))}
        </nav>
        <span className={`live-dot ${live.connected ? 'on' : ''}`} title={live.connected ? 'live updates on' : 'live updates off'} role="status">
          {live.open.length > 0 ? `${live.open.length} running` : live.connected ? 'live' : 'offline'}
        </span>
        <Link href="/account" className="who" aria-current={path === '/account' ? 'page' : undefined} title="your account: password, second factor, API tokens">
          {me.user.name} <span className="muted">({me.role})</span>
        </Link>
        <button type="button" className="link" onClick={onLogout}>
          Log out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}
