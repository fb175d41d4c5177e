// Where a new repository goes (issue 19): on the storage node named, or on the node with the most
// free space among those up; with no node registered, in the data directory as on one machine.

import { invalidInput } from '../errors.js';
import { nodeIsUp, type NodeStore } from './node-store.js';
import type { RepositoryStore } from './repository-store.js';

/** The node a new repository is placed on, or null for none (no node registered). */
export async function chooseNode(store: Pick<NodeStore, 'listNodes'>, requested: string | null, now: Date): Promise<string | null> {
  const nodes = await store.listNodes();
  if (requested !== null) {
    if (!nodes.some((n) => n.name === requested)) {
      throw invalidInput(`there is no storage node '${requested}' (borgkeep node list shows the nodes)`);
    }
    return requested;
  }
  if (nodes.length === 0) return null;
  const up = nodes.filter((n) => nodeIsUp(n, now)).sort((a, b) => b.freeBytes - a.freeBytes || a.name.localeCompare(b.name));
  if (up.length === 0) throw invalidInput('no storage node is up to place the repository on: start one (borgkeep node run), or name one with --node');
  return up[0]!.name;
}

/**
 * The repositories whose files are in this process's data directory: on a gateway (`selfNode`
 * null) those on no storage node; on a node its own. A store without placements (SQLite) has all
 * of them in the data directory.
 */
export async function localRepositories(store: Pick<RepositoryStore, 'listRepositoryRecords'> & Partial<Pick<NodeStore, 'repositoryNodes'>>, selfNode: string | null = null) {
  const onNodes = (await store.repositoryNodes?.()) ?? new Map<number, string>();
  return (await store.listRepositoryRecords()).filter((r) => (onNodes.get(r.id) ?? null) === selfNode);
}
