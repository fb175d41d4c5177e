// Settings: where alerts go and when they are raised (channels, limits, the mail server), and
// the scheduler's jobs. Two tabs, each its own address, so a link can point at either.
import { api } from '../api';
import { useLoad } from '../hooks';
import { Link } from '../router';
import { AlertChannels } from '../parts/alert-channels';
import { AlertThresholds, MailServer, type AlertSettingsAnswer } from '../parts/alert-limits';
import { JobsList } from '../parts/jobs-list';

export type SettingsTab = 'alerts' | 'jobs';

export function SettingsPage({ tab }: { tab: SettingsTab }) {
  return (
    <>
      <h1>Settings</h1>
      <nav className="tabs" aria-label="Settings">
        <Link href="/settings/alerts" aria-current={tab === 'alerts' ? 'page' : undefined}>
          Alerts
        </Link>
        <Link href="/settings/jobs" aria-current={tab === 'jobs' ? 'page' : undefined}>
          Jobs
        </Link>
      </nav>
      {tab === 'alerts' ? <AlertsSettings /> : <JobsList />}
    </>
  );
}

function AlertsSettings() {
  const settings = useLoad(() => api<AlertSettingsAnswer>('GET', '/alert-settings'), []);
  return (
    <>
      {settings.error && <p className="error">{settings.error.message}</p>}
      <AlertChannels hasMailServer={settings.data ? settings.data.smtp !== null : null} />
      <AlertThresholds loaded={settings} />
      <MailServer loaded={settings} />
    </>
  );
}
