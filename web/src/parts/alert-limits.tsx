// The alert rules' limits and the mail server. Admins change them; everyone else sees the same
// forms read-only. A blank limit goes back to its default (shown beside each field); the mail
// password is write-only: left blank it is kept.
import { useEffect, useState, type FormEvent } from 'react';
import { api, type AlertSettings, type SmtpServer } from '../api';
import { can, useMe } from '../app';
import { useAction, type Loaded } from '../hooks';
import { FormError } from './form-error';

export interface AlertSettingsAnswer {
  settings: AlertSettings;
  defaults: AlertSettings;
  smtp: SmtpServer | null;
}

type Field = keyof AlertSettings;
/** Each limit as people set it: durations in minutes. */
const FIELDS: Array<{ field: Field; label: string; unit: string; scale: number; min: number; max: number }> = [
  { field: 'repeatSeconds', label: 'Send an open alert again every', unit: 'minutes', scale: 60, min: 1, max: 30 * 1440 },
  { field: 'quotaWarnPercent', label: 'Quota warning at', unit: '% used', scale: 1, min: 1, max: 100 },
  { field: 'quotaCriticalPercent', label: 'Quota critical at', unit: '% used', scale: 1, min: 1, max: 100 },
  { field: 'denialWindowSeconds', label: 'A refusal alert lasts until none came for', unit: 'minutes', scale: 60, min: 1, max: 7 * 1440 },
  { field: 'authFailureThreshold', label: 'Failed logins of one key that raise an alert', unit: 'failures', scale: 1, min: 1, max: 10_000 },
  { field: 'authFailureWindowSeconds', label: '…within', unit: 'minutes', scale: 60, min: 1, max: 1440 },
  { field: 'diskFreePercent', label: 'Data disk alert below', unit: '% free', scale: 1, min: 0, max: 100 },
];

const shown = (v: number, scale: number) => String(Math.round((v / scale) * 100) / 100);

export function AlertThresholds({ loaded }: { loaded: Loaded<AlertSettingsAnswer> }) {
  const me = useMe();
  const admin = can(me, 'admin');
  const data = loaded.data;
  const [values, setValues] = useState<Record<Field, string> | null>(null);
  const [saved, setSaved] = useState(false);
  const action = useAction();
  // Filled from the stored limits when they change, not at every reload of the page's settings
  // (saving the mail server reloads them too): what the admin is typing stays.
  const stored = data ? JSON.stringify(data.settings) : null;
  useEffect(() => {
    if (data) setValues(Object.fromEntries(FIELDS.map((f) => [f.field, shown(data.settings[f.field], f.scale)])) as Record<Field, string>);
  }, [stored]);
  if (!data || !values) return null;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const settings = Object.fromEntries(FIELDS.map((f) => [f.field, values[f.field].trim() === '' ? null : Math.round(Number(values[f.field]) * f.scale)]));
    if (await action.run(() => api('PATCH', '/alert-settings', { settings }))) {
      setSaved(true);
      loaded.reload();
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="limits-title">
      <h2 id="limits-title">Limits</h2>
      {!admin && <p className="muted small">Only admins change these.</p>}
      <fieldset disabled={!admin} className="limits">
        {FIELDS.map((f) => {
          const isDefault = values[f.field] === shown(data.defaults[f.field], f.scale);
          return (
            <label key={f.field}>
              <span>
                {f.label} <span className="muted">({f.unit})</span>
              </span>
              <input
                name={f.field}
                type="number"
                min={f.min}
                max={f.max}
                step="any"
                value={values[f.field]}
                placeholder={shown(data.defaults[f.field], f.scale)}
                onChange={(e) => {
                  setSaved(false);
                  setValues({ ...values, [f.field]: e.target.value });
                }}
              />
              <span className="muted small">{isDefault ? 'the default' : `default ${shown(data.defaults[f.field], f.scale)}; leave blank for it`}</span>
            </label>
          );
        })}
      </fieldset>
      {admin && (
        <button type="submit" disabled={action.busy}>
          Save limits
        </button>
      )}
      <span role="status" className="small ok-text">
        {saved && ' Saved.'}
      </span>
      <FormError error={action.error} />
    </form>
  );
}

type Security = 'starttls' | 'starttls-optional' | 'tls';
const securityOf = (s: SmtpServer | null): Security => (s?.secure ? 'tls' : s && !s.requireTls ? 'starttls-optional' : 'starttls');

export function MailServer({ loaded }: { loaded: Loaded<AlertSettingsAnswer> }) {
  const me = useMe();
  const admin = can(me, 'admin');
  const smtp = loaded.data?.smtp ?? null;
  const [form, setForm] = useState({ host: '', port: '587', security: 'starttls' as Security, user: '', password: '', clearPassword: false, from: '', verifyCertificate: true });
  const [saved, setSaved] = useState<string | null>(null);
  const action = useAction();
  // Filled from the stored mail server when it changes, not at every reload of the page's
  // settings (saving the limits reloads them too): what the admin is typing stays.
  const stored = loaded.data ? JSON.stringify(smtp) : null;
  useEffect(() => {
    if (!loaded.data) return;
    setForm({
      host: smtp?.host ?? '',
      port: String(smtp?.port ?? 587),
      security: securityOf(smtp),
      user: smtp?.user ?? '',
      password: '',
      clearPassword: false,
      from: smtp?.from ?? '',
      verifyCertificate: smtp?.verifyCertificate ?? true,
    });
  }, [stored]);
  if (!loaded.data) return null;
  const set = (change: Partial<typeof form>) => {
    setSaved(null);
    setForm({ ...form, ...change });
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(null);
    const body = {
      host: form.host.trim(),
      port: Number(form.port),
      secure: form.security === 'tls',
      requireTls: form.security !== 'starttls-optional',
      user: form.user.trim() === '' ? null : form.user.trim(),
      from: form.from.trim(),
      verifyCertificate: form.verifyCertificate,
      // Left out: the stored password is kept.
      ...(form.clearPassword ? { password: null } : form.password !== '' && { password: form.password }),
    };
    if (await action.run(() => api('PATCH', '/alert-settings', { smtp: body }))) {
      setSaved('Saved. Send a test to a mail channel above to try it.');
      loaded.reload();
    }
  };
  const remove = async () => {
    if (!confirm('Remove the mail server? Mail channels stop working until one is set again.')) return;
    if (await action.run(() => api('PATCH', '/alert-settings', { smtp: null }))) {
      setSaved('Removed.');
      loaded.reload();
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="smtp-title">
      <h2 id="smtp-title">Mail server</h2>
      <p className="muted small">
        {smtp ? `Mail alerts go out through ${smtp.host}:${smtp.port}.` : 'No mail server yet: mail channels cannot send until one is set.'}
        {!admin && ' Only admins change it.'}
      </p>
      <fieldset disabled={!admin}>
        <div className="inline-form">
          <label>
            Host
            <input name="smtpHost" value={form.host} onChange={(e) => set({ host: e.target.value })} required placeholder="smtp.example.org" />
          </label>
          <label>
            Port
            <input name="smtpPort" type="number" min={1} max={65535} value={form.port} onChange={(e) => set({ port: e.target.value })} required />
          </label>
          <label>
            Encryption
            <select name="smtpSecurity" value={form.security} onChange={(e) => set({ security: e.target.value as Security })}>
              <option value="starttls">STARTTLS, required</option>
              <option value="starttls-optional">STARTTLS when offered</option>
              <option value="tls">TLS from the start (port 465)</option>
            </select>
          </label>
        </div>
        <div className="inline-form">
          <label>
            User <span className="muted">(optional)</span>
            <input name="smtpUser" autoComplete="off" value={form.user} onChange={(e) => set({ user: e.target.value })} />
          </label>
          <label>
            Password <span className="muted">{smtp?.hasPassword ? '(set; leave blank to keep it)' : '(optional)'}</span>
            <input
              name="smtpPassword"
              type="password"
              autoComplete="new-password"
              value={form.password}
              disabled={form.clearPassword}
              onChange={(e) => set({ password: e.target.value })}
            />
          </label>
          <label>
            From
            <input name="smtpFrom" value={form.from} onChange={(e) => set({ from: e.target.value })} required placeholder="borgkeep <backup@example.org>" />
          </label>
        </div>
        <label className="check">
          <input type="checkbox" checked={form.verifyCertificate} onChange={(e) => set({ verifyCertificate: e.target.checked })} /> Verify the server’s certificate
        </label>
        {smtp?.hasPassword && (
          <label className="check">
            <input type="checkbox" checked={form.clearPassword} onChange={(e) => set({ clearPassword: e.target.checked })} /> Remove the stored password
          </label>
        )}
      </fieldset>
      {admin && (
        <div className="button-row">
          <button type="submit" disabled={action.busy}>
            Save mail server
          </button>
          {smtp && (
            <button type="button" className="danger" disabled={action.busy} onClick={remove}>
              Remove mail server
            </button>
          )}
        </div>
      )}
      <p role="status" className="small ok-text">
        {saved}
      </p>
      <FormError error={action.error} />
    </form>
  );
}
