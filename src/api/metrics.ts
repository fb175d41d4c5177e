// Prometheus metrics (`GET /metrics`, text format, prom-client). Per repository they come from
// the ledger at each scrape, so they cover every session whichever front-end ran it (the
// embedded gateway or sshd's forced command, which runs in its own process); gateway
// connections, failed logins and guard frames per method are counted in this process (the
// embedded gateway). Every name starts with borgkeep_. The scrape may need a bearer token.

import { timingSafeEqual } from 'node:crypto';
import { Counter, Gauge, Registry } from 'prom-client';

import type { Store } from '../store/database.js';
import type { SizeOf } from './features/repository-size.js';
import { nodeIsUp } from '../store/node-store.js';

type MetricsStore = Pick<Store, 'paths' | 'listRepositoryStatuses' | 'sessionTotals' | 'openAlerts'> & Partial<Pick<Store, 'listNodes'>>;

export interface ServerMetrics {
  readonly registry: Registry;
  /** For the embedded gateway (GatewayEvents). */
  connection(): void;
  authFailure(knownKey: boolean): void;
  /** For the guard: one frame of a borg RPC method decided on. */
  frame(method: string): void;
  render(): Promise<string>;
  readonly contentType: string;
}

export function createServerMetrics(deps: { store: MetricsStore; sizeOf: SizeOf }): ServerMetrics {
  const registry = new Registry();
  const connections = new Counter({ name: 'borgkeep_gateway_connections_total', help: 'TCP connections to the embedded SSH gateway', registers: [registry] });
  const authFailures = new Counter({
    name: 'borgkeep_gateway_auth_failures_total',
    help: 'logins the embedded SSH gateway refused, by whether the key is registered (a revoked key, a bad signature) or unknown',
    labelNames: ['key'],
    registers: [registry],
  });
  const frames = new Counter({ name: 'borgkeep_guard_frames_total', help: 'borg RPC calls the guard decided on in this process, by method', labelNames: ['method'], registers: [registry] });

  const perRepository = (name: string, help: string) => new Gauge({ name, help, labelNames: ['repository'], registers: [registry] });
  const lastBackup = perRepository('borgkeep_repository_last_backup_timestamp_seconds', 'end of the last session that committed a backup: new objects besides the manifest; a prune or a compaction alone is none (Unix time)');
  const size = perRepository('borgkeep_repository_size_bytes', 'bytes the repository directory holds on disk');
  const quota = perRepository('borgkeep_repository_quota_bytes', 'the storage quota of the repository');
  const expected = perRepository('borgkeep_repository_expected_interval_seconds', 'how often the repository expects a backup');
  const bytesIn = perRepository('borgkeep_repository_received_bytes_total', 'bytes received from clients over all sessions (counter; from the ledger)');
  const bytesOut = perRepository('borgkeep_repository_sent_bytes_total', 'bytes sent to clients over all sessions (counter; from the ledger)');
  const denials = perRepository('borgkeep_repository_denials_total', 'calls the guard refused (counter; from the ledger)');
  const sessions = new Gauge({
    name: 'borgkeep_repository_sessions_total',
    help: 'sessions by result: ok, denied, aborted, error, open (counter but for open; from the ledger)',
    labelNames: ['repository', 'result'],
    registers: [registry],
  });
  const alertsOpen = new Gauge({ name: 'borgkeep_alerts_open', help: 'alerts open now, by rule', labelNames: ['rule'], registers: [registry] });
  const perNode = (name: string, help: string) => new Gauge({ name, help, labelNames: ['node'], registers: [registry] });
  const nodeUp = perNode('borgkeep_node_up', 'whether the storage node is up: 1 while it renews its heartbeat, 0 when it stopped or has not reported for 15 seconds');
  const nodeFree = perNode('borgkeep_node_free_bytes', "free bytes of the storage node's disk, as it last reported");
  const nodeCapacity = perNode('borgkeep_node_capacity_bytes', "size of the storage node's disk");
  const nodeHeartbeat = perNode('borgkeep_node_heartbeat_timestamp_seconds', "the storage node's last heartbeat (Unix time)");

  async function collect(): Promise<void> {
    const [statuses, totals, alerts, nodes] = await Promise.all([
      deps.store.listRepositoryStatuses({ denialsSince: new Date(0) }),
      deps.store.sessionTotals(),
      deps.store.openAlerts(),
      deps.store.listNodes?.() ?? [],
    ]);
    for (const g of [lastBackup, size, quota, expected, bytesIn, bytesOut, denials, sessions, alertsOpen, nodeUp, nodeFree, nodeCapacity, nodeHeartbeat]) g.reset();
    const at = new Date();
    for (const n of nodes) {
      nodeUp.set({ node: n.name }, nodeIsUp(n, at) ? 1 : 0);
      nodeFree.set({ node: n.name }, n.freeBytes);
      nodeCapacity.set({ node: n.name }, n.capacityBytes);
      nodeHeartbeat.set({ node: n.name }, n.heartbeatAt.getTime() / 1000);
    }
    const names = new Map<number, string>();
    await Promise.all(
      statuses.map(async (s) => {
        const name = s.repository.name;
        names.set(s.repository.id, name);
        if (s.lastBackupAt) lastBackup.set({ repository: name }, s.lastBackupAt.getTime() / 1000);
        if (s.repository.quotaBytes !== null) quota.set({ repository: name }, s.repository.quotaBytes);
        expected.set({ repository: name }, s.repository.expectedIntervalSeconds);
        denials.set({ repository: name }, s.denialsSince);
        const bytes = await deps.sizeOf(deps.store.paths.repository(s.repository.dirName), s.lastWriteAt);
        if (bytes !== null) size.set({ repository: name }, bytes);
      }),
    );
    for (const t of totals) {
      const repository = names.get(t.repositoryId);
      if (repository === undefined) continue;
      sessions.set({ repository, result: t.result }, t.sessions);
      bytesIn.inc({ repository }, t.bytesIn);
      bytesOut.inc({ repository }, t.bytesOut);
    }
    for (const a of alerts) alertsOpen.inc({ rule: a.rule });
  }

  return {
    registry,
    contentType: registry.contentType,
    connection: () => connections.inc(),
    authFailure: (knownKey) => authFailures.inc({ key: knownKey ? 'registered' : 'unknown' }),
    frame: (method) => frames.inc({ method }),
    async render() {
      await collect();
      return registry.metrics();
    },
  };
}

/** Whether an Authorization header carries the metrics token (compared in constant time). */
export function metricsAuthorized(token: string | null, header: string | undefined): boolean {
  if (token === null) return true;
  const given = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '');
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
