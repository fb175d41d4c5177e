// Keeps the alerts in the store in step with the conditions that hold now: a condition whose key
// has no open alert opens one (and notifies); an open alert whose condition still holds is sent
// again every `repeatSeconds` (or the condition's own), and at once when it becomes critical; an
// open alert whose condition is gone is resolved (and notifies that). Only alerts of the family
// being evaluated are touched, since the families are evaluated at different rates
// (alert-rules.ts).
//
// Handling (issue 15): an acknowledged alert is not sent again (a rise to critical still is: that
// is news), and it resolves, with its notice, like any other; the next time its cause appears it
// is a new alert. A silence (per repository or per key, until a time) keeps its alerts from every
// channel: they open, change and resolve in the store and the console, but send nothing; an alert
// that opened under a silence and still holds when the silence ends is sent then, as opened.
//
// One alert per cause: conditions with the same key are one alert (the more severe text wins),
// and reconciliations run one at a time, so two evaluations cannot both open the same key (the
// store's unique index on open keys is the last guard). Must never send for a silenced cause.

import type { AlertRecord, AlertSilence, MonitoringStore } from '../store/monitoring-store.js';
import { RULE_FAMILY, type AlertCondition, type AlertFamily, type AlertRule } from './alert-rules.js';
import type { Notifier } from './notifier.js';

export interface AlertEngineDeps {
  store: Pick<MonitoringStore, 'openAlerts' | 'openAlert' | 'updateAlert' | 'resolveAlert' | 'listSilences'>;
  notifier: Pick<Notifier, 'notify'>;
  now: () => Date;
  /** Repository names for messages (alerts keep the id). */
  repositoryName: (id: number) => Promise<string | null>;
}

export interface Reconciled {
  opened: AlertRecord[];
  repeated: AlertRecord[];
  resolved: AlertRecord[];
  /** Not sent because a silence covers them (opened, repeats due, or resolved). */
  silenced: AlertRecord[];
}

/** Whether one of the silences covers an alert or a condition (its repository or its key). */
export function silencedBy(silences: readonly AlertSilence[], a: { repositoryId: number | null; keyId?: number | null }): AlertSilence | undefined {
  return silences.find((s) => (s.repositoryId !== null && s.repositoryId === a.repositoryId) || (s.keyId !== null && s.keyId === (a.keyId ?? null)));
}

/** One condition per key: the critical one, else the first. */
function onePerKey(conditions: readonly AlertCondition[]): AlertCondition[] {
  const byKey = new Map<string, AlertCondition>();
  for (const c of conditions) {
    const seen = byKey.get(c.key);
    if (!seen || (seen.severity !== 'critical' && c.severity === 'critical')) byKey.set(c.key, c);
  }
  return [...byKey.values()];
}

export function createAlertEngine(deps: AlertEngineDeps) {
  const nameOf = async (a: { repositoryId: number | null }) => (a.repositoryId === null ? null : deps.repositoryName(a.repositoryId));
  let queue: Promise<unknown> = Promise.resolve();

  async function reconcileNow(family: AlertFamily, all: readonly AlertCondition[], repeatSeconds: number): Promise<Reconciled> {
    const out: Reconciled = { opened: [], repeated: [], resolved: [], silenced: [] };
    const open = new Map<string, AlertRecord>();
    for (const a of await deps.store.openAlerts()) if (RULE_FAMILY[a.rule as AlertRule] === family && !open.has(a.key)) open.set(a.key, a);
    const nowDate = deps.now();
    const now = nowDate.getTime();
    const silences = await deps.store.listSilences({ activeAt: nowDate, limit: 10_000 });
    for (const c of onePerKey(all)) {
      const current = open.get(c.key);
      open.delete(c.key);
      const silenced = silencedBy(silences, c) !== undefined;
      if (!current) {
        const a = await deps.store.openAlert({ ...c, keyId: c.keyId ?? null, notified: !silenced });
        if (silenced) out.silenced.push(a);
        else {
          deps.notifier.notify(a, 'opened', await nameOf(a));
          out.opened.push(a);
        }
        continue;
      }
      // A rise to critical (the quota past its second level) is told at once.
      const escalated = current.severity !== c.severity && c.severity === 'critical';
      // Opened under a silence that has ended: it is sent now, as opened.
      const neverSent = current.notifications === 0 && current.acknowledgedAt === null;
      const repeatDue = current.acknowledgedAt === null && now - current.lastNotifiedAt.getTime() >= (c.repeatSeconds ?? repeatSeconds) * 1000;
      const wanted = neverSent || escalated || repeatDue;
      const due = wanted && !silenced;
      if (due || current.summary !== c.summary || current.detail !== c.detail || current.severity !== c.severity) {
        await deps.store.updateAlert(current.id, { summary: c.summary, detail: c.detail, severity: c.severity, notified: due });
      }
      const a = { ...current, summary: c.summary, detail: c.detail, severity: c.severity };
      if (due) {
        deps.notifier.notify(a, neverSent ? 'opened' : 'repeated', await nameOf(a));
        (neverSent ? out.opened : out.repeated).push(a);
      } else if (wanted) out.silenced.push(a);
    }
    for (const gone of open.values()) {
      const a = await deps.store.resolveAlert(gone.id);
      // Nothing to resolve for the channels when nothing was sent, or while a silence holds.
      if (gone.notifications === 0 || silencedBy(silences, gone)) out.silenced.push(a);
      else {
        deps.notifier.notify(a, 'resolved', await nameOf(a));
        out.resolved.push(a);
      }
    }
    return out;
  }

  return {
    reconcile(family: AlertFamily, conditions: readonly AlertCondition[], repeatSeconds: number): Promise<Reconciled> {
      const run = queue.then(() => reconcileNow(family, conditions, repeatSeconds));
      queue = run.catch(() => undefined);
      return run;
    },
  };
}

export type AlertEngine = ReturnType<typeof createAlertEngine>;
