// Alerts: the open ones first (severity, repository, what happened, when it opened and was last
// sent), the resolved ones below, and for each the messages to every channel: sent, still being
// retried, or failed and why.
import { useEffect } from 'react';
import { api, type Alert, type AlertChannel, type Delivery } from '../api';
import { can, useMe } from '../app';
import { Time } from '../format';
import { useLoad } from '../hooks';
import { useOpenAlerts } from '../open-alerts';
import { Link } from '../router';
import { Acknowledge, AlertText, Silences } from '../parts/alert-handling';

const RULES: Record<string, string> = {
  'backup-late': 'late backup',
  'waiting-init': 'waits for borg init',
  quota: 'quota',
  denial: 'refused by the guard',
  refusal: 'refused by policy',
  'key-change': 'repository key replaced',
  'compaction-deferred': 'compaction deferred',
  'pull-failed': 'pull backup failed',
  'verify-damage': 'damage found by verification',
  'archive-check': 'archive failed its checks',
  'audit-suspicious': 'suspicious audit',
  'auth-failures': 'failed logins',
  'disk-space': 'disk space',
};

export function AlertsPage() {
  const me = useMe();
  const open = useOpenAlerts();
  // Fresh on arrival; after that the shared list refreshes itself.
  const reloadOpen = open.reload;
  useEffect(reloadOpen, [reloadOpen]);
  // Resolved ones change when an open one goes away.
  const resolved = useLoad(() => api<{ alerts: Alert[] }>('GET', '/alerts?state=resolved&limit=50'), [open.alerts?.length]);
  const channels = useLoad(() => api<{ channels: AlertChannel[] }>('GET', '/alert-channels'), []);
  const enabled = (channels.data?.channels ?? []).filter((c) => c.enabled);
  return (
    <>
      <h1>Alerts</h1>
      {channels.data && enabled.length === 0 && (
        <p className="notice" role="note">
          {channels.data.channels.length === 0 ? 'No channels: alerts are only shown here.' : 'Every channel is disabled: alerts are only shown here.'}{' '}
          {can(me, 'operator') ? (
            <>
              <Link href="/settings/alerts">Add a mail address or webhook</Link> so they reach you.
            </>
          ) : (
            'Ask an operator to add a mail address or webhook so they reach you.'
          )}
        </p>
      )}
      <section aria-labelledby="open-title">
        <h2 id="open-title">Open</h2>
        {open.alerts === null ? (
          <p className="loading">Loading…</p>
        ) : open.alerts.length === 0 ? (
          <p className="muted">
            Nothing is wrong right now. Refusals and failed logins of known keys become alerts within seconds; late backups, quotas, audit verdicts and disk
            space within half a minute. The limits are in <Link href="/settings/alerts">Settings</Link>.
          </p>
        ) : (
          <ul className="alerts">
            {open.alerts.map((a) => (
              <AlertItem key={a.id} a={a} changed={reloadOpen} />
            ))}
          </ul>
        )}
      </section>
      <Silences changed={reloadOpen} />
      <section aria-labelledby="resolved-title">
        <h2 id="resolved-title">Resolved</h2>
        {resolved.error && <p className="error">{resolved.error.message}</p>}
        {resolved.data &&
          (resolved.data.alerts.length === 0 ? (
            <p className="muted">None yet. An alert resolves by itself when its cause is gone, and a resolution notice goes to the same channels.</p>
          ) : (
            <ul className="alerts">
              {resolved.data.alerts.map((a) => (
                <AlertItem key={a.id} a={a} changed={reloadOpen} />
              ))}
            </ul>
          ))}
      </section>
    </>
  );
}

function AlertItem({ a, changed }: { a: Alert; changed: () => void }) {
  const isOpen = a.resolvedAt === null;
  return (
    <li className={`alert-item ${isOpen ? a.severity : 'resolved'}`} data-alert={a.id} data-rule={a.rule} data-state={isOpen ? 'open' : 'resolved'}>
      <div className="alert-head">
        <span className={`badge sev-${isOpen ? a.severity : 'resolved'}`}>{isOpen ? a.severity : 'resolved'}</span>{' '}
        <span className="muted small">{RULES[a.rule] ?? a.rule}</span>
        {isOpen && a.silenced && (
          <>
            {' '}
            <span className="badge never">silenced</span>
          </>
        )}
        {a.repository && (
          <>
            {' · '}
            <Link href={`/repositories/${encodeURIComponent(a.repository)}`}>{a.repository}</Link>
          </>
        )}
      </div>
      <p className="alert-summary">
        <AlertText text={a.summary} />
      </p>
      <p className="muted small alert-detail">
        <AlertText text={a.detail} />
      </p>
      <p className="small">
        opened <Time at={a.openedAt} />
        {' · '}last notified <Time at={a.lastNotifiedAt} /> ({a.notifications} {a.notifications === 1 ? 'time' : 'times'})
        {a.resolvedAt && (
          <>
            {' · '}resolved <Time at={a.resolvedAt} />
          </>
        )}
      </p>
      <Acknowledge alert={a} onDone={changed} />
      {isOpen ? (
        <Deliveries alert={a} />
      ) : (
        <details>
          <summary className="small">Messages sent</summary>
          <Deliveries alert={a} />
        </details>
      )}
    </li>
  );
}

/** The messages of one alert, per channel, oldest first (as the alert opened, repeated, resolved). */
function Deliveries({ alert }: { alert: Alert }) {
  // Refetched when the alert was sent again or resolved; pending ones are looked at again shortly.
  const list = useLoad(() => api<{ deliveries: Delivery[] }>('GET', `/alerts/${alert.id}/deliveries`), [alert.id, alert.notifications, alert.resolvedAt]);
  const pending = (list.data?.deliveries ?? []).some((d) => d.state === 'pending');
  useRetryWhile(pending, list.reload, list.data);
  if (list.error) return <p className="error small">{list.error.message}</p>;
  if (!list.data) return null;
  const byChannel = new Map<string, Delivery[]>();
  for (const d of [...list.data.deliveries].sort((x, y) => x.id - y.id)) byChannel.set(d.channel, [...(byChannel.get(d.channel) ?? []), d]);
  if (byChannel.size === 0) return <p className="muted small">Not sent anywhere: there was no enabled channel when it opened.</p>;
  return (
    <ul className="deliveries" aria-label="messages per channel">
      {[...byChannel].map(([channel, ds]) => (
        <li key={channel} data-channel={channel}>
          <strong>{channel}</strong>:{' '}
          {ds.map((d, i) => (
            <span key={d.id} className="delivery" data-state={d.state}>
              {i > 0 && ', '}
              {d.event} <span className={`badge ${d.state === 'sent' ? 'ok' : d.state === 'failed' ? 'late' : 'open'}`}>{d.state}</span>
              {d.attempts > 1 && <span className="muted"> after {d.attempts} attempts</span>}
              {d.finishedAt && (
                <span className="muted">
                  {' '}
                  <Time at={d.finishedAt} />
                </span>
              )}
              {d.lastError && <span className="error"> ({d.lastError})</span>}
            </span>
          ))}
        </li>
      ))}
    </ul>
  );
}

/** Looks again in 2 s while `active` (a delivery is still being retried), each time `data` changes. */
function useRetryWhile(active: boolean, reload: () => void, data: unknown) {
  useEffect(() => {
    if (!active) return;
    const t = setTimeout(reload, 2_000);
    return () => clearTimeout(t);
  }, [active, reload, data]);
}
