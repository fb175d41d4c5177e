// Where alerts go: mail addresses and webhooks. Add, enable or disable, remove, and "Send test",
// which says in a sentence whether the message went out and, if not, why. Operators change them;
// secrets are write-only (the API says only whether one is set).
import { useState, type FormEvent } from 'react';
import { api, type AlertChannel, type WebhookFormat } from '../api';
import { can, useMe } from '../app';
import { Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { SubmitWithError } from './form-error';

const FORMATS: Array<[WebhookFormat, string]> = [
  ['json', 'JSON, signed with the secret'],
  ['slack', 'Slack'],
  ['discord', 'Discord'],
  ['text', 'plain text (ntfy and the like)'],
];

export function AlertChannels({ hasMailServer }: { hasMailServer: boolean | null }) {
  const me = useMe();
  const channels = useLoad(() => api<{ channels: AlertChannel[] }>('GET', '/alert-channels'), []);
  const list = channels.data?.channels ?? [];
  const operator = can(me, 'operator');
  return (
    <section aria-labelledby="channels-title">
      <h2 id="channels-title">Channels</h2>
      {channels.error && <p className="error">{channels.error.message}</p>}
      {channels.data && list.length === 0 && (
        <div className="empty">
          <p>
            <strong>No channels: add a mail address or webhook so alerts reach you.</strong>{' '}
            {operator ? 'Until then alerts are only shown on the Alerts page.' : 'An operator or admin adds them.'}
          </p>
        </div>
      )}
      {hasMailServer === false && list.some((c) => c.kind === 'email') && (
        <p className="notice">Mail channels need a mail server: an admin sets it below.</p>
      )}
      {list.length > 0 && (
        <ul className="channels">
          {list.map((c) => (
            <ChannelItem key={c.name} c={c} operator={operator} onChange={channels.reload} />
          ))}
        </ul>
      )}
      {operator && <AddChannel onAdded={channels.reload} />}
    </section>
  );
}

function ChannelItem({ c, operator, onChange }: { c: AlertChannel; operator: boolean; onChange: () => void }) {
  const change = useAction();
  const test = useAction();
  const [result, setResult] = useState<{ sent: boolean; error: string | null } | null>(null);
  const path = `/alert-channels/${encodeURIComponent(c.name)}`;
  const sendTest = async () => {
    setResult(null);
    const r = await test.run(() => api<{ sent: boolean; error: string | null }>('POST', `${path}/test`));
    if (r) setResult(r);
  };
  return (
    <li className={c.enabled ? '' : 'disabled'} data-channel={c.name}>
      <div className="grant-line">
        <strong>{c.name}</strong> <span className="badge">{c.kind === 'email' ? 'mail' : `webhook · ${c.format ?? 'json'}`}</span>
        {!c.enabled && <span className="badge late">disabled</span>}
        <span className="mono small">{c.target}</span>
        {c.kind === 'webhook' && <span className="muted small">{c.hasSecret ? 'signed' : 'no secret'}</span>}
        <span className="muted small">
          added <Time at={c.createdAt} />
        </span>
        {operator && (
          <span className="actions">
            <button type="button" className="small" disabled={test.busy} onClick={sendTest}>
              {test.busy ? 'Sending…' : 'Send test'}
            </button>
            <button
              type="button"
              className="small"
              disabled={change.busy}
              onClick={async () => {
                if (await change.run(() => api('PATCH', path, { enabled: !c.enabled }))) onChange();
              }}
            >
              {c.enabled ? 'Disable' : 'Enable'}
            </button>
            <button
              type="button"
              className="small danger"
              disabled={change.busy}
              onClick={async () => {
                if (!confirm(`Remove channel ${c.name}? Alerts stop going there.`)) return;
                if ((await change.run(() => api('DELETE', path))) !== undefined) onChange();
              }}
            >
              Remove
            </button>
          </span>
        )}
      </div>
      <div role="status" className="small">
        {result &&
          (result.sent ? (
            <span className="ok-text">Test message sent to {c.name}: check that it arrived.</span>
          ) : (
            <span className="error">The test message to {c.name} failed: {result.error}</span>
          ))}
      </div>
      {(change.error || test.error) && <p className="error small">{change.error ?? test.error}</p>}
    </li>
  );
}

function AddChannel({ onAdded }: { onAdded: () => void }) {
  const [name, setName] = useState('');
  const [kind, setKind] = useState<'email' | 'webhook'>('webhook');
  const [target, setTarget] = useState('');
  const [format, setFormat] = useState<WebhookFormat>('json');
  const [secret, setSecret] = useState('');
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const body =
      kind === 'email'
        ? { name: name.trim(), kind, target: target.trim() }
        : { name: name.trim(), kind, target: target.trim(), format, ...(secret !== '' && { secret }) };
    if (await action.run(() => api('POST', '/alert-channels', body))) {
      setName('');
      setTarget('');
      setSecret('');
      onAdded();
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="add-channel">
      <h3 id="add-channel">Add a channel</h3>
      <div className="inline-form">
        <label>
          Channel name
          <input name="channelName" value={name} onChange={(e) => setName(e.target.value)} required maxLength={64} placeholder="ops" />
        </label>
        <label>
          Kind
          <select name="channelKind" value={kind} onChange={(e) => setKind(e.target.value as 'email' | 'webhook')}>
            <option value="webhook">webhook</option>
            <option value="email">mail</option>
          </select>
        </label>
      </div>
      {kind === 'email' ? (
        <label>
          Mail addresses <span className="muted">(separated by commas)</span>
          <input name="channelTarget" value={target} onChange={(e) => setTarget(e.target.value)} required placeholder="ops@example.org, oncall@example.org" />
        </label>
      ) : (
        <>
          <label>
            Webhook URL
            <input name="channelTarget" type="url" value={target} onChange={(e) => setTarget(e.target.value)} required placeholder="https://hooks.example.org/borgkeep" />
          </label>
          <div className="inline-form">
            <label>
              Format
              <select name="channelFormat" value={format} onChange={(e) => setFormat(e.target.value as WebhookFormat)}>
                {FORMATS.map(([f, label]) => (
                  <option key={f} value={f}>
                    {label}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Secret <span className="muted">(optional, 16 characters or more; signs each request with X-Borgkeep-Signature)</span>
              <input name="channelSecret" type="password" autoComplete="new-password" minLength={16} value={secret} onChange={(e) => setSecret(e.target.value)} />
            </label>
          </div>
        </>
      )}
      <SubmitWithError label="Add channel" action={action} />
    </form>
  );
}
