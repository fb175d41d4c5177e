// Storage nodes (migration 0029, issue 19): the machines that hold repositories, which node holds
// which repository, and the keys gateways and nodes log in to nodes with. A node renews its
// heartbeat while it runs; one whose heartbeat is older than NODE_DOWN_AFTER_MS is down.

import { iso, num } from './rows.js';
import type { StoreDeps } from './store-deps.js';

/** A node that has not renewed its heartbeat for this long is down. */
export const NODE_DOWN_AFTER_MS = 15_000;
/** How often a running node renews its heartbeat (and reports its free space). */
export const NODE_HEARTBEAT_MS = 5_000;

/** What a node says of itself when it starts. */
export interface NodeRegistration {
  readonly name: string;
  /** host:port of the node's SSH server, which only gateways and other nodes may log in to. */
  readonly address: string;
  /** The node's SSH host key, "type base64": gateways accept no other. */
  readonly hostKey: string;
  /** The key the node logs in to other nodes with (moving a repository), "type base64". */
  readonly clientKey: string;
  readonly borgVersion: string | null;
  readonly capacityBytes: number;
  readonly freeBytes: number;
  readonly host: string;
  readonly pid: number;
}

export interface StorageNode extends NodeRegistration {
  readonly startedAt: Date;
  readonly heartbeatAt: Date;
  /** Set by a clean stop; null while it runs (or when it died). */
  readonly stoppedAt: Date | null;
}

export interface Placement {
  readonly node: string;
  /** The node a `repo move` is copying the repository to, while it does. */
  readonly movingTo: string | null;
}

export interface NodeStore {
  /** Adds the node, or takes over its row at a restart (a new start, heartbeat now). */
  registerNode(node: NodeRegistration): Promise<void>;
  /** Renews a running node's heartbeat with its disk's figures. */
  nodeHeartbeat(name: string, disk: { capacityBytes: number; freeBytes: number }): Promise<void>;
  /** A clean stop: the node is down at once, without waiting for its heartbeat to age. */
  nodeStopped(name: string): Promise<void>;
  listNodes(): Promise<StorageNode[]>;
  findNode(name: string): Promise<StorageNode | undefined>;
  /** Records a key a gateway logs in to nodes with ("type base64"). */
  registerFleetKey(publicKey: string, name: string): Promise<void>;
  /** Whether the key ("type base64") is a gateway's or a node's: the only keys a node lets in. */
  isFleetKey(publicKey: string): Promise<boolean>;
  /** The node holding the repository; undefined: the data directory of the process serving it. */
  repositoryPlacement(repositoryId: number): Promise<Placement | undefined>;
  /** Places the repository on `node` (null: back to no node), ending any move. */
  placeRepository(repositoryId: number, node: string | null): Promise<void>;
  /** Marks a move under way (or over, null); false when another move of it is under way already. */
  markMoving(repositoryId: number, to: string | null): Promise<boolean>;
  /** Every repository's node, by repository id. */
  repositoryNodes(): Promise<Map<number, string>>;
}

/** Whether the node is up at `at`: running, and its heartbeat recent. */
export function nodeIsUp(node: StorageNode, at: Date): boolean {
  return node.stoppedAt === null && at.getTime() - node.heartbeatAt.getTime() < NODE_DOWN_AFTER_MS;
}

/** Each node as the CLI and the API show it: up or down at `at`, its disk, how many repositories it holds. */
export async function nodeOverview(store: Pick<NodeStore, 'listNodes' | 'repositoryNodes'>, at: Date) {
  const [nodes, placed] = await Promise.all([store.listNodes(), store.repositoryNodes()]);
  const counts = new Map<string, number>();
  for (const n of placed.values()) counts.set(n, (counts.get(n) ?? 0) + 1);
  return nodes.map((n) => ({
    name: n.name,
    address: n.address,
    up: nodeIsUp(n, at),
    heartbeatAt: n.heartbeatAt.toISOString(),
    capacityBytes: n.capacityBytes,
    freeBytes: n.freeBytes,
    repositories: counts.get(n.name) ?? 0,
    borgVersion: n.borgVersion,
  }));
}

export function createNodeStore({ db, now }: StoreDeps): NodeStore {
  const toNode = (r: {
    name: string; address: string; host_key: string; client_key: string; borg_version: string | null; capacity_bytes: number; free_bytes: number;
    started_at: string; heartbeat_at: string; stopped_at: string | null; host: string; pid: number;
  }): StorageNode => ({
    name: r.name,
    address: r.address,
    hostKey: r.host_key,
    clientKey: r.client_key,
    borgVersion: r.borg_version,
    capacityBytes: num(r.capacity_bytes),
    freeBytes: num(r.free_bytes),
    startedAt: new Date(r.started_at),
    heartbeatAt: new Date(r.heartbeat_at),
    stoppedAt: r.stopped_at === null ? null : new Date(r.stopped_at),
    host: r.host,
    pid: num(r.pid),
  });
  return {
    async registerNode(n) {
      const at = iso(now());
      const row = {
        address: n.address,
        host_key: n.hostKey,
        client_key: n.clientKey,
        borg_version: n.borgVersion,
        capacity_bytes: n.capacityBytes,
        free_bytes: n.freeBytes,
        started_at: at,
        heartbeat_at: at,
        stopped_at: null,
        host: n.host,
        pid: n.pid,
      };
      await db.transaction().execute(async (trx) => {
        const found = await trx.selectFrom('nodes').select('name').where('name', '=', n.name).executeTakeFirst();
        if (found) await trx.updateTable('nodes').set(row).where('name', '=', n.name).execute();
        else await trx.insertInto('nodes').values({ name: n.name, ...row }).execute();
      });
    },
    async nodeHeartbeat(name, disk) {
      await db
        .updateTable('nodes')
        .set({ heartbeat_at: iso(now()), capacity_bytes: disk.capacityBytes, free_bytes: disk.freeBytes, stopped_at: null })
        .where('name', '=', name)
        .execute();
    },
    async nodeStopped(name) {
      await db.updateTable('nodes').set({ stopped_at: iso(now()) }).where('name', '=', name).execute();
    },
    async listNodes() {
      return (await db.selectFrom('nodes').selectAll().orderBy('name').execute()).map(toNode);
    },
    async findNode(name) {
      const row = await db.selectFrom('nodes').selectAll().where('name', '=', name).executeTakeFirst();
      return row && toNode(row);
    },
    async registerFleetKey(publicKey, name) {
      const at = iso(now());
      await db.transaction().execute(async (trx) => {
        const found = await trx.selectFrom('fleet_keys').select('public_key').where('public_key', '=', publicKey).executeTakeFirst();
        if (found) await trx.updateTable('fleet_keys').set({ name, seen_at: at }).where('public_key', '=', publicKey).execute();
        else await trx.insertInto('fleet_keys').values({ public_key: publicKey, name, seen_at: at }).execute();
      });
    },
    async isFleetKey(publicKey) {
      const gateway = await db.selectFrom('fleet_keys').select('name').where('public_key', '=', publicKey).executeTakeFirst();
      if (gateway) return true;
      return (await db.selectFrom('nodes').select('name').where('client_key', '=', publicKey).executeTakeFirst()) !== undefined;
    },
    async repositoryPlacement(repositoryId) {
      const row = await db.selectFrom('repository_nodes').select(['node', 'moving_to']).where('repository_id', '=', repositoryId).executeTakeFirst();
      return row && { node: row.node, movingTo: row.moving_to };
    },
    async placeRepository(repositoryId, node) {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('repository_nodes').where('repository_id', '=', repositoryId).execute();
        if (node !== null) await trx.insertInto('repository_nodes').values({ repository_id: repositoryId, node, moving_to: null }).execute();
      });
    },
    async markMoving(repositoryId, to) {
      return db.transaction().execute(async (trx) => {
        const row = await trx.selectFrom('repository_nodes').select('moving_to').where('repository_id', '=', repositoryId).executeTakeFirst();
        if (!row) return false;
        if (to !== null && row.moving_to !== null) return false;
        await trx.updateTable('repository_nodes').set({ moving_to: to }).where('repository_id', '=', repositoryId).execute();
        return true;
      });
    },
    async repositoryNodes() {
      const rows = await db.selectFrom('repository_nodes').select(['repository_id', 'node']).execute();
      return new Map(rows.map((r) => [num(r.repository_id), r.node]));
    },
  };
}
