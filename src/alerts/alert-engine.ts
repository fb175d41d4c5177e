// Keeps the alerts in the store in step with the conditions that hold now: a condition whose key
// has no open alert opens one (and notifies); an open alert whose condition still holds is sent
// again every `repeatSeconds` (or the condition's own), and at once when it becomes critical; an
// open alert whose condition is gone is resolved (and notifies that). Only alerts of the family
// being evaluated are touched, since the families are evaluated at different rates
// (alert-rules.ts).

import type { AlertRecord, MonitoringStore } from '../store/monitoring-store.js';
import { RULE_FAMILY, type AlertCondition, type AlertFamily, type AlertRule } from './alert-rules.js';
import type { Notifier } from './notifier.js';

export interface AlertEngineDeps {
  store: Pick<MonitoringStore, 'openAlerts' | 'openAlert' | 'updateAlert' | 'resolveAlert'>;
  notifier: Pick<Notifier, 'notify'>;
  now: () => Date;
  /** Repository names for messages (alerts keep the id). */
  repositoryName: (id: number) => Promise<string | null>;
}

export interface Reconciled {
  opened: AlertRecord[];
  repeated: AlertRecord[];
  resolved: AlertRecord[];
}

export function createAlertEngine(deps: AlertEngineDeps) {
  const nameOf = async (a: { repositoryId: number | null }) => (a.repositoryId === null ? null : deps.repositoryName(a.repositoryId));
  return {
    async reconcile(family: AlertFamily, conditions: readonly AlertCondition[], repeatSeconds: number): Promise<Reconciled> {
      const out: Reconciled = { opened: [], repeated: [], resolved: [] };
      const open = new Map<string, AlertRecord>();
      for (const a of await deps.store.openAlerts()) if (RULE_FAMILY[a.rule as AlertRule] === family) open.set(a.key, a);
      const now = deps.now().getTime();
      for (const c of conditions) {
        const current = open.get(c.key);
        open.delete(c.key);
        if (!current) {
          const a = await deps.store.openAlert(c);
          deps.notifier.notify(a, 'opened', await nameOf(a));
          out.opened.push(a);
          continue;
        }
        // A rise to critical (the quota past its second level) is told at once.
        const escalated = current.severity !== c.severity && c.severity === 'critical';
        const due = escalated || now - current.lastNotifiedAt.getTime() >= (c.repeatSeconds ?? repeatSeconds) * 1000;
        if (due || current.summary !== c.summary || current.detail !== c.detail || current.severity !== c.severity) {
          await deps.store.updateAlert(current.id, { summary: c.summary, detail: c.detail, severity: c.severity, notified: due });
        }
        if (due) {
          const a = { ...current, summary: c.summary, detail: c.detail, severity: c.severity };
          deps.notifier.notify(a, 'repeated', await nameOf(a));
          out.repeated.push(a);
        }
      }
      for (const gone of open.values()) {
        const a = await deps.store.resolveAlert(gone.id);
        deps.notifier.notify(a, 'resolved', await nameOf(a));
        out.resolved.push(a);
      }
      return out;
    },
  };
}

export type AlertEngine = ReturnType<typeof createAlertEngine>;
