// `borgkeep repo move NAME --to NODE` (issue 19): the command's checks and its part in the move
// (gateway/repository-move.ts). It logs in to both nodes with this data directory's fleet key.

import { hostname } from 'node:os';

import { BorgkeepError, invalidInput, notFound } from '../errors.js';
import type { Store } from '../store/database.js';
import { nodeIsUp } from '../store/node-store.js';
import type { CliContext } from './cli-context.js';

export interface Moved {
  readonly repository: string;
  readonly from: string;
  readonly to: string;
  readonly files: number;
  readonly bytes: number;
  /** Whether the source moved its old copy to its trash. */
  readonly sourceCleared: boolean;
}

export async function moveRepositoryToNode(ctx: CliContext, store: Store, name: string, to: string): Promise<Moved> {
  if (!store.watchChanges) throw invalidInput('storage nodes need PostgreSQL: this installation keeps its database in SQLite, with every repository in its data directory');
  const repository = await store.findRepository(name);
  if (!repository) throw notFound(`there is no repository '${name}'`);
  const placement = await store.repositoryPlacement(repository.id);
  if (!placement) throw invalidInput(`repository '${name}' is in a data directory, not on a storage node; only repositories on nodes can be moved`);
  if (placement.node === to) throw invalidInput(`repository '${name}' is on storage node '${to}' already`);
  const [source, target] = await Promise.all([store.findNode(placement.node), store.findNode(to)]);
  if (!target) throw invalidInput(`there is no storage node '${to}' (borgkeep node list shows the nodes)`);
  for (const node of [source, target]) {
    if (!node || !nodeIsUp(node, ctx.now())) throw invalidInput(`storage node '${node?.name ?? placement.node}' is down; both nodes must be up to move a repository`);
  }
  if (!(await store.markMoving(repository.id, to))) throw invalidInput(`repository '${name}' is being moved already`);
  const [{ default: ssh2 }, { createNodeConnector, loadOrCreateFleetKey }, move] = await Promise.all([
    import('ssh2'),
    import('../gateway/node-connector.js'),
    import('../gateway/repository-move.js'),
  ]);
  const key = loadOrCreateFleetKey(store.paths.root);
  await store.registerFleetKey(key.publicKey, `borgkeep CLI on ${hostname()}`);
  const connector = createNodeConnector({ Client: ssh2.Client, key });
  try {
    const channels = {
      source: await connector.execOn(source!, `${move.EXPORT_COMMAND} ${repository.dirName}`),
      target: await connector.execOn(target, `${move.IMPORT_COMMAND} ${repository.dirName}`),
    };
    const done = await move.moveBetween(channels, () => store.placeRepository(repository.id, to));
    return { repository: name, from: placement.node, to, ...done };
  } catch (error) {
    await store.markMoving(repository.id, null).catch(() => undefined);
    if (error instanceof BorgkeepError) throw error;
    // A node that could not be reached (node-connector.ts words it without addresses).
    throw invalidInput(`the repository was not moved: ${(error as Error).message}; it stays where it was`);
  } finally {
    connector.close();
  }
}
