// Delivers alert messages to every enabled channel, in the background: nothing that raises an
// alert (and no backup) ever waits for a mail server or a webhook. Each delivery is a row in the
// store; a failed send is retried with growing pauses and, when the last try fails too, marked
// failed with the reason and logged, so the console shows which channel is broken.

import type { AlertChannel, AlertRecord, DeliveryEvent, MonitoringStore } from '../store/monitoring-store.js';
import type { AlertMessage, SendAlert } from './channels.js';

/** Pauses before the 2nd, 3rd, ... try: about 16 minutes in all. */
export const RETRY_DELAYS_MS = [2_000, 10_000, 60_000, 300_000, 600_000];

export interface NotifierLog {
  error(fields: object, message: string): void;
}

export interface NotifierDeps {
  store: Pick<MonitoringStore, 'listChannels' | 'addDelivery' | 'updateDelivery'>;
  send: SendAlert;
  server: string;
  now: () => Date;
  log: NotifierLog;
  retryDelaysMs?: readonly number[];
}

export interface Notifier {
  /** Sends to every enabled channel in the background. */
  notify(alert: AlertRecord, event: DeliveryEvent, repositoryName: string | null): void;
  /** One test message to one channel, no retries: resolves with the error, or null when it went out. */
  test(channel: AlertChannel): Promise<string | null>;
  /** Resolves when no delivery is under way (tests, shutdown). */
  idle(): Promise<void>;
  /** Stops retrying; deliveries still waiting are marked failed. */
  stop(): void;
}

export function createNotifier(deps: NotifierDeps): Notifier {
  const delays = deps.retryDelaysMs ?? RETRY_DELAYS_MS;
  const running = new Set<Promise<void>>();
  const stopper = new AbortController();

  const message = (alert: AlertRecord, event: DeliveryEvent, repository: string | null): AlertMessage => ({
    event,
    server: deps.server,
    sentAt: deps.now(),
    alert: {
      id: alert.id,
      rule: alert.rule,
      severity: alert.severity,
      repository,
      summary: alert.summary,
      detail: alert.detail,
      openedAt: alert.openedAt,
      resolvedAt: alert.resolvedAt,
    },
  });

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      stopper.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });

  async function deliver(channel: AlertChannel, alert: AlertRecord, event: DeliveryEvent, repository: string | null): Promise<void> {
    const id = await deps.store.addDelivery({ alertId: alert.id, channelId: channel.id, channelName: channel.name, event });
    let lastError = '';
    for (let attempt = 1; attempt <= delays.length + 1; attempt++) {
      if (stopper.signal.aborted) {
        lastError = `${lastError ? `${lastError}; ` : ''}the server stopped before it could be sent`;
        break;
      }
      try {
        await deps.send(channel, message(alert, event, repository));
        await deps.store.updateDelivery(id, { state: 'sent', attempts: attempt, lastError: null });
        return;
      } catch (error) {
        lastError = (error as Error).message;
        await deps.store.updateDelivery(id, { state: 'pending', attempts: attempt, lastError });
      }
      if (attempt <= delays.length) await pause(delays[attempt - 1]);
    }
    await deps.store.updateDelivery(id, { state: 'failed', attempts: delays.length + 1, lastError });
    deps.log.error({ channel: channel.name, alert: alert.id, event, error: lastError }, `alert delivery to channel '${channel.name}' failed: ${lastError}`);
  }

  const track = (p: Promise<void>) => {
    const tracked = p.catch((error: unknown) => deps.log.error({ error: (error as Error).message }, 'alert delivery could not be recorded')).finally(() => running.delete(tracked));
    running.add(tracked);
  };

  return {
    notify(alert, event, repository) {
      track(
        (async () => {
          const channels = (await deps.store.listChannels()).filter((c) => c.enabled);
          await Promise.all(channels.map((c) => deliver(c, alert, event, repository)));
        })(),
      );
    },
    async test(channel) {
      const at = deps.now();
      const id = await deps.store.addDelivery({ alertId: null, channelId: channel.id, channelName: channel.name, event: 'test' });
      const probe: AlertRecord = {
        id: 0,
        key: 'test',
        rule: 'test',
        severity: 'warning',
        repositoryId: null,
        summary: `test message to channel '${channel.name}'`,
        detail: 'Sent from the alert settings to check that this channel reaches you.',
        openedAt: at,
        lastNotifiedAt: at,
        notifications: 1,
        resolvedAt: null,
        keyId: null,
        acknowledgedAt: null,
        acknowledgedBy: null,
      };
      try {
        const m = message(probe, 'test', null);
        await deps.send(channel, { ...m, alert: { ...m.alert, id: null } });
        await deps.store.updateDelivery(id, { state: 'sent', attempts: 1, lastError: null });
        return null;
      } catch (error) {
        await deps.store.updateDelivery(id, { state: 'failed', attempts: 1, lastError: (error as Error).message });
        return (error as Error).message;
      }
    },
    async idle() {
      while (running.size > 0) await Promise.all([...running]);
    },
    stop() {
      stopper.abort();
    },
  };
}
