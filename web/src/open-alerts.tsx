// The open alerts, shared by the navigation's count and the Alerts page. The alert rules run in
// the server (denials every second, the rest every 30 s), so this refetches shortly after the
// live stream reports something (a refusal opens an alert a moment later) and every 15 s.
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { api, type Alert } from './api';
import { useLive } from './live';

interface OpenAlerts {
  alerts: Alert[] | null;
  reload(): void;
}

const OpenAlertsContext = createContext<OpenAlerts>({ alerts: null, reload: () => {} });
const POLL_MS = 15_000;
/** After a live change: the security rules run every second, so two looks catch the new alert. */
const AFTER_CHANGE_MS = [1_200, 3_000];

export function OpenAlertsProvider({ children }: { children: ReactNode }) {
  const live = useLive();
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const latest = useRef(0);
  const reload = useCallback(() => {
    const mine = ++latest.current;
    api<{ alerts: Alert[] }>('GET', '/alerts?state=open&limit=1000').then(
      (r) => {
        if (mine === latest.current) setAlerts(r.alerts);
      },
      () => undefined, // the count stays as it was; the Alerts page shows the error
    );
  }, []);
  useEffect(() => {
    reload();
    const t = setInterval(reload, POLL_MS);
    return () => clearInterval(t);
  }, [reload]);
  useEffect(() => {
    if (live.changes === 0) return;
    const timers = AFTER_CHANGE_MS.map((ms) => setTimeout(reload, ms));
    return () => timers.forEach(clearTimeout);
  }, [live.changes, reload]);
  return <OpenAlertsContext.Provider value={{ alerts, reload }}>{children}</OpenAlertsContext.Provider>;
}

export function useOpenAlerts(): OpenAlerts {
  return useContext(OpenAlertsContext);
}
