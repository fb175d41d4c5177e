// Monitoring as `borgkeep serve` runs it: the config file's alert section applied to the store,
// the notifier with its channels, the alert engine and rules, the metrics, and the scheduler
// with the server's jobs. One place that wires them; serve-command.ts starts and stops it.

import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

import { createAlertEngine } from '../alerts/alert-engine.js';
import { SMTP_SETTINGS, type AlertConfig } from '../alerts/alert-config.js';
import { createChannelSender, type SmtpSettings } from '../alerts/channels.js';
import { ALERT_SETTINGS, createMonitor } from '../alerts/monitor.js';
import { createNotifier, type Notifier } from '../alerts/notifier.js';
import { createServerMetrics, type ServerMetrics } from '../api/metrics.js';
import { createAuditService } from '../audit/audit-service.js';
import type { GatewayEvents } from '../gateway/ssh-gateway.js';
import type { Store } from '../store/database.js';
import { GATEWAY_LEASE_MS, GATEWAY_LEASE_RENEW_MS, closeSessionsOfDeadProcesses, gatewayLeaseName } from '../store/dead-processes.js';
import { createScheduler, type Scheduler } from './scheduler.js';
import { nodeJobs, serverJobs } from './server-jobs.js';
import type { SizeOf } from '../api/features/repository-size.js';
import type { RetentionService } from '../retention/retention-service.js';
import type { PullService } from '../pull/pull-service.js';
import type { Vault } from '../vault/vault.js';

export interface MonitoringLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface MonitoringDeps {
  store: Store;
  log: MonitoringLog;
  sizeOf: SizeOf;
  directorySize: (path: string) => Promise<number | null>;
  config: AlertConfig | undefined;
  /** Repository name -> file holding its passphrase, for the daily audit (config file). */
  auditPassphraseFiles: Readonly<Record<string, string>>;
  /** The server's retention runs (src/retention); none: no retention job. */
  retention?: Pick<RetentionService, 'runDue'>;
  /** serve's key vault, for the daily verification (src/verify); none: no verify job. */
  vault?: Vault;
  /** The server's pull service (src/pull): hosts' schedules queue jobs; none: no pull schedule job. */
  pull?: Pick<PullService, 'queueDue'>;
  now?: () => Date;
}

export interface Monitoring {
  scheduler: Scheduler;
  notifier: Notifier;
  metrics: ServerMetrics;
  gatewayEvents: GatewayEvents;
  stop(): Promise<void>;
}

/** Writes the config file's alert section into the store: at every start, the file wins. */
async function applyConfig(store: Store, config: AlertConfig | undefined): Promise<void> {
  if (!config) return;
  if (config.settings) await store.setSetting(ALERT_SETTINGS, { ...((await store.getSetting<object>(ALERT_SETTINGS)) ?? {}), ...config.settings });
  if (config.smtp) await store.setSetting(SMTP_SETTINGS, config.smtp);
  for (const c of config.channels ?? []) {
    const existing = (await store.listChannels()).find((x) => x.name === c.name);
    if (existing && existing.kind !== c.kind) await store.removeChannel(c.name);
    if (existing && existing.kind === c.kind) await store.updateChannel(c.name, { target: c.target, format: c.format, secret: c.secret, enabled: c.enabled ?? true });
    else await store.addChannel(c);
  }
}

/** The verify job's look at one repository: skipped when there is nothing the server can verify. */
function dailyVerify(store: Store, vault: Vault): (name: string) => Promise<string | null> {
  let service: import('../verify/verify-service.js').VerifyService | null = null;
  return async (name) => {
    const repository = await store.getRepository(name);
    const path = store.paths.repository(repository.dirName);
    if (!existsSync(join(path, 'config'))) return null;
    const [{ createVerifyService, VerifyError }, { createRepositoryKeySource, readCurrentManifestEnvelope }, { browseArchiveReferences }, { objectMode }, { parseRepoConfig }] = await Promise.all([
      import('../verify/verify-service.js'),
      import('../vault/repository-key.js'),
      import('../verify/archive-references.js'),
      import('../repository/borg-key.js'),
      import('../repository/repo-config.js'),
    ]);
    // An encrypted repository whose key the vault does not hold is not the job's failure: the
    // console shows it has never been verified.
    if (!vault.has(repository.dirName)) {
      const envelope = await readCurrentManifestEnvelope(path, parseRepoConfig(readFileSync(join(path, 'config'), 'utf8'))).catch(() => null);
      if (!envelope || objectMode(envelope) !== 'none') return null;
    }
    service ??= createVerifyService({ store, repositoryKey: createRepositoryKeySource(vault), archiveReferences: browseArchiveReferences });
    try {
      const r = await service.verify(name, { all: false, actor: 'borgkeep (daily verify)' });
      return r.verdict === 'intact' ? `intact (${r.objectsRead} ${r.objectsRead === 1 ? 'object' : 'objects'})` : `damaged (${r.findings.length} ${r.findings.length === 1 ? 'finding' : 'findings'})`;
    } catch (error) {
      if (error instanceof VerifyError) throw new Error(error.message);
      throw error;
    }
  };
}

/** The archive checks job: every repository the server can read with the vault's keys (src/checks). */
function archiveChecks(store: Store, vault: Vault): () => Promise<string> {
  let service: import('../checks/archive-check-service.js').ArchiveCheckService | null = null;
  return async () => {
    if (!service) {
      const [{ createArchiveCheckService }, { createRepositoryKeySource }] = await Promise.all([import('../checks/archive-check-service.js'), import('../vault/repository-key.js')]);
      service = createArchiveCheckService({ store, repositoryKey: createRepositoryKeySource(vault) });
    }
    return service.checkAll();
  };
}

/** The daily audit of one repository: structural, unless the config file gives its passphrase file. */
function dailyAudit(store: Store, audits: ReturnType<typeof createAuditService>, passphraseFiles: Readonly<Record<string, string>>) {
  return async (name: string): Promise<string> => {
    const repository = await store.getRepository(name);
    if (!existsSync(join(store.paths.repository(repository.dirName), 'config'))) return 'not initialised';
    const file = passphraseFiles[name];
    const passphrase = file ? readFileSync(file, 'utf8').replace(/\r?\n$/, '') : null;
    const { report } = await audits.audit(name, { passphrase, keyFile: null, actor: 'borgkeep (daily audit)' });
    return report.verdict === 'clean' ? (report.manifestsRead ? 'clean' : 'clean (structural)') : `suspicious from transaction ${report.firstSuspiciousTransaction}`;
  };
}

/**
 * A storage node's scheduled jobs (issue 19): statistics, audits and verification of the
 * repositories it holds, named for it (`audits@store-1`), run by the node itself next to the files.
 * Their verdicts are events in the database, which the gateways' alert jobs read as for any.
 */
export async function startNodeJobs(deps: { store: Store; log: MonitoringLog; selfNode: string; vault: Vault; directorySize: (path: string) => Promise<number | null>; now?: () => Date }) {
  const { store } = deps;
  const scheduler = createScheduler({ store, now: deps.now ?? (() => new Date()), log: deps.log });
  const jobs = nodeJobs({ store, selfNode: deps.selfNode, directorySize: deps.directorySize, audit: dailyAudit(store, createAuditService(store), {}), verify: dailyVerify(store, deps.vault) });
  for (const job of jobs) scheduler.add(job);
  await scheduler.start();
  return { scheduler, stop: () => scheduler.stop() };
}

/** The lease of the scheduled jobs, how long its holder keeps it without renewing, and how often the others ask for it. */
export const JOBS_LEASE = 'jobs';
export const JOBS_LEASE_MS = 60_000;
export const JOBS_LEASE_RETRY_MS = 5_000;

export async function startMonitoring(deps: MonitoringDeps): Promise<Monitoring> {
  const { store, log } = deps;
  const now = deps.now ?? (() => new Date());
  await applyConfig(store, deps.config);
  const notifier = createNotifier({
    store,
    send: createChannelSender({ smtp: async () => (await store.getSetting<SmtpSettings>(SMTP_SETTINGS)) ?? null }),
    server: hostname(),
    now,
    log,
  });
  const names = async (id: number) => (await store.listRepositoryRecords()).find((r) => r.id === id)?.name ?? null;
  const engine = createAlertEngine({ store, notifier, now, repositoryName: names });
  const monitor = createMonitor({ store, engine, now, sizeOf: deps.sizeOf });
  const audits = createAuditService(store);
  // On PostgreSQL several gateways may share the database: one of them, the jobs lease's holder,
  // runs the scheduled jobs, so an alert is mailed once and a retention run happens once.
  const holder = `${hostname()}:${process.pid}`;
  // Asked before every run (the security alerts run every second): renewed a third of the way
  // into the lease, and a gateway without it asks again after a few seconds. Jobs due together
  // (the catch-up runs at start) share one asking.
  let asked = { at: -Infinity, held: false };
  let asking: Promise<boolean> | null = null;
  const holdsJobs = store.watchChanges
    ? async () => {
        const at = Date.now();
        if (at - asked.at < (asked.held ? JOBS_LEASE_MS / 3 : JOBS_LEASE_RETRY_MS)) return asked.held;
        asking ??= store
          .holdLease(JOBS_LEASE, holder, JOBS_LEASE_MS)
          .then((held) => {
            asked = { at, held };
            return held;
          })
          .finally(() => {
            asking = null;
          });
        return asking;
      }
    : undefined;
  // Each gateway sharing the database holds a lease of its own while it runs: when one dies on
  // another machine, the jobs lease's holder closes the sessions it left open (dead-processes.ts).
  const gatewayLease = gatewayLeaseName(hostname(), process.pid);
  const renewGatewayLease = () =>
    store.holdLease(gatewayLease, holder, GATEWAY_LEASE_MS).catch((error: unknown) => {
      log.warn({ event: 'gateway-lease', error: (error as Error).message }, "this gateway's lease could not be renewed");
      return false;
    });
  let gatewayLeaseTimer: NodeJS.Timeout | null = null;
  if (holdsJobs) {
    await renewGatewayLease();
    gatewayLeaseTimer = setInterval(() => void renewGatewayLease(), GATEWAY_LEASE_RENEW_MS).unref();
  }
  const deadSessions = async () => {
    const { closed, processes } = await closeSessionsOfDeadProcesses(store, now());
    if (closed === 0) return 'none';
    log.warn({ event: 'dead-sessions', closed, processes }, `closed ${closed} session(s) left open by ${processes.join(', ')}, which stopped answering, as aborted`);
    return `${closed} closed`;
  };
  const scheduler = createScheduler({ store, now, log, ...(holdsJobs && { holdsJobs }) });
  const jobs = serverJobs({
    store,
    monitor,
    directorySize: deps.directorySize,
    ...(deps.retention && { retention: () => deps.retention!.runDue() }),
    ...(deps.pull && { pullSchedules: () => deps.pull!.queueDue() }),
    ...(deps.vault && { verify: dailyVerify(store, deps.vault) }),
    ...(deps.vault && { archiveChecks: archiveChecks(store, deps.vault) }),
    audit: dailyAudit(store, audits, deps.auditPassphraseFiles),
    ...(holdsJobs && { deadSessions }),
  });
  for (const job of jobs) scheduler.add(job);
  await scheduler.start();

  const metrics = createServerMetrics({ store, sizeOf: deps.sizeOf });
  const gatewayEvents: GatewayEvents = {
    connection: () => metrics.connection(),
    authFailure: (address, key, reason) => {
      metrics.authFailure(key !== null);
      // Unknown keys are every client's other keys being offered; only registered keys count.
      if (key) void store.recordAuthFailure({ keyId: key.id, address, reason }).catch((error: unknown) => log.error({ error: (error as Error).message }, 'could not record a failed login'));
    },
  };
  return {
    scheduler,
    notifier,
    metrics,
    gatewayEvents,
    async stop() {
      await scheduler.stop();
      if (gatewayLeaseTimer) clearInterval(gatewayLeaseTimer);
      if (holdsJobs) await Promise.all([store.releaseLease(JOBS_LEASE, holder), store.releaseLease(gatewayLease, holder)]).catch(() => undefined);
      notifier.stop();
      await notifier.idle();
    },
  };
}
