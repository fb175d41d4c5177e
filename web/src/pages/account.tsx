// The account page of the signed-in user: their password, second factor with recovery codes, and
// their own API tokens. Secrets (a new token, recovery codes) appear once and are never stored in
// the browser.
import { api, type User } from '../api';
import { useMe } from '../app';
import { OwnTokens } from '../parts/account-tokens';
import { SecondFactor } from '../parts/account-totp';
import { PasswordForm } from '../parts/password-form';

export function AccountPage({ onUserChanged }: { onUserChanged: (user: User) => void }) {
  const me = useMe();
  const refresh = () => {
    void api<{ user: User }>('GET', '/session').then((r) => onUserChanged(r.user), () => undefined);
  };
  return (
    <>
      <h1>Your account</h1>
      <p>
        Signed in as <strong>{me.user.name}</strong>, role {me.role}.
      </p>
      <PasswordForm onChanged={refresh} />
      <SecondFactor user={me.user} onChanged={refresh} />
      <OwnTokens />
    </>
  );
}
