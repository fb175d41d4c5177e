// Changing one's own password: the current one, the new one twice. Used on the account page and
// as the only thing a user sees after an admin reset their password. Never keeps a password
// after the request.
import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { useAction } from '../hooks';
import { SubmitWithError } from './form-error';

export const MIN_PASSWORD_LENGTH = 10;

export function PasswordForm({ onChanged, title = 'Change your password' }: { onChanged: () => void; title?: string }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [done, setDone] = useState(false);
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setDone(false);
    // The same sentence the API gives, before asking it.
    if (next.length < MIN_PASSWORD_LENGTH) return action.setError(`a password needs at least ${MIN_PASSWORD_LENGTH} characters`);
    if (next !== again) return action.setError('the two new passwords differ');
    const ok = await action.run(async () => {
      await api('POST', '/me/password', { currentPassword: current, newPassword: next });
      return true;
    });
    if (ok) {
      setCurrent('');
      setNext('');
      setAgain('');
      setDone(true);
      onChanged();
    }
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-labelledby="password-title">
      <h2 id="password-title">{title}</h2>
      <label>
        Current password
        <input name="currentPassword" type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} required />
      </label>
      <label>
        New password <span className="muted small">(at least {MIN_PASSWORD_LENGTH} characters)</span>
        <input name="newPassword" type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} required />
      </label>
      <label>
        New password again
        <input name="newPasswordAgain" type="password" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} required />
      </label>
      <SubmitWithError label="Change password" action={action} />
      {done && (
        <p className="notice" role="status">
          Your password is changed. Your other console sessions have ended.
        </p>
      )}
    </form>
  );
}
