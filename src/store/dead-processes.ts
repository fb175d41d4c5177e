// Sessions left open by a gateway or a storage node that died on another machine (issue 19).
// A process closes the sessions its dead predecessor on the same machine left open when it starts
// (closeStaleSessions, which can ask the machine whether a pid lives); a gateway or node on
// another machine that never comes back would leave its sessions open for ever, and they count
// against their key's sessions at once. So every gateway sharing a PostgreSQL database holds a
// lease of its own, renewed while it runs, and a node renews its heartbeat; the holder of the jobs
// lease closes, as aborted, the open sessions of a gateway whose lease ran out or of a node whose
// heartbeat is DEAD_NODE_AFTER_MS old (and which did not stop cleanly). Sessions of borg-serve
// processes (sshd's forced command) are never touched here: no lease names their pids.

import type { Store } from './database.js';

export const GATEWAY_LEASE_PREFIX = 'gateway ';
/** A gateway's lease lasts this long unless renewed; one that ran out means the gateway is gone. */
export const GATEWAY_LEASE_MS = 30_000;
export const GATEWAY_LEASE_RENEW_MS = 10_000;
/** A node whose heartbeat (every 5 s) is this old, and that did not stop cleanly, is dead. */
export const DEAD_NODE_AFTER_MS = 30_000;

/** The lease that says the gateway (host, pid) still runs. */
export function gatewayLeaseName(host: string, pid: number): string {
  return `${GATEWAY_LEASE_PREFIX}${host}:${pid}`;
}

function parseGatewayLease(name: string): { host: string; pid: number } | null {
  const rest = name.slice(GATEWAY_LEASE_PREFIX.length);
  const colon = rest.lastIndexOf(':');
  const pid = Number(rest.slice(colon + 1));
  return colon > 0 && Number.isSafeInteger(pid) && pid > 0 ? { host: rest.slice(0, colon), pid } : null;
}

/**
 * Closes as aborted the open sessions of every gateway whose lease ran out and of every node dead
 * at `at`, and forgets those gateways' leases. Returns how many sessions it closed and whose
 * (the dead processes that had any).
 */
export async function closeSessionsOfDeadProcesses(
  store: Pick<Store, 'expiredLeases' | 'forgetExpiredLease' | 'listNodes' | 'closeStaleSessions'>,
  at: Date,
): Promise<{ closed: number; processes: string[] }> {
  const dead = new Map<string, string>();
  const key = (host: string, pid: number) => `${pid}@${host}`;
  const leases = await store.expiredLeases(GATEWAY_LEASE_PREFIX);
  for (const name of leases) {
    const p = parseGatewayLease(name);
    if (p) dead.set(key(p.host, p.pid), `gateway ${p.host} (pid ${p.pid})`);
  }
  for (const node of await store.listNodes()) {
    if (node.stoppedAt === null && at.getTime() - node.heartbeatAt.getTime() >= DEAD_NODE_AFTER_MS) dead.set(key(node.host, node.pid), `storage node '${node.name}'`);
  }
  if (dead.size === 0) return { closed: 0, processes: [] };
  // Named: the dead processes that had open sessions (a node down for days is dead at every look).
  const had = new Set<string>();
  const closed = await store.closeStaleSessions((pid, host) => {
    const who = dead.get(key(host, pid));
    if (who === undefined) return true;
    had.add(who);
    return false;
  });
  for (const name of leases) await store.forgetExpiredLease(name);
  return { closed, processes: [...had] };
}
